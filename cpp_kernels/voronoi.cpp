// Voronoi cells from the atoms' positions: each atom's Voronoi neighbours and face areas.
//
// With atom i at the origin, the face shared with a candidate atom j (vector v_j) lies in the
// bisector plane x . v_j = |v_j|^2 / 2 and is the part of that plane inside the half-spaces
// x . v_k <= |v_k|^2 / 2 of all other candidates k. It is found by clipping a square of that plane
// by these half-spaces (Sutherland-Hodgman) in 2-d coordinates (a, b) of an orthonormal basis
// (u, w) of the plane, origin at its foot point v_j / 2: the lines nearest the foot point first,
// until the next line lies beyond the polygon's farthest vertex.
//
// The candidates are the atoms within a radius R of atom i. No atom farther than 2 r_max, twice
// the distance of the cell's farthest vertex, can cut the cell, so the cell is final if
// 2 r_max <= R ("security radius", as in voro++); otherwise the atom is redone with a larger R.
// We also tried voro++'s way, cutting a polyhedron plane by plane: on thermally disordered fcc it
// was 10% slower than this face-by-face construction.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "cell_grid.hpp"
#include "kernels.hpp"
#include "threads.hpp"

namespace mlclass {

struct VoronoiCells::Face {
    int64_t j;
    double v[3];
    double area;
};

namespace {

using Face = VoronoiCells::Face;

// A vertex of a face polygon and the plane of the edge that starts at it (towards the next
// vertex): a candidate index, or kSquare for an edge of the starting square.
struct Point {
    double a, b;
    int plane;
};
constexpr int kSquare = -1;

// Keeps the part of the convex polygon in[0..m) where c1 a + c2 b <= c0 (vertices on the line
// stay), written to out, the new edge labelled `plane`; returns the new vertex count. Returns -1
// (and leaves `out` alone) if the half-plane holds the whole polygon.
int clip(const Point* in, int m, double c1, double c2, double c0, int plane, double* d, Point* out) {
    bool cuts = false;
    for (int k = 0; k < m; ++k) {
        d[k] = c1 * in[k].a + c2 * in[k].b - c0;
        cuts |= d[k] > 0.0;
    }
    if (!cuts) return -1;
    int kept = 0;
    for (int k = 0; k < m; ++k) {
        const int next = k + 1 == m ? 0 : k + 1;
        const double dp = d[k], dq = d[next];
        if (dp <= 0.0) out[kept++] = {in[k].a, in[k].b, dq > 0.0 ? plane : in[k].plane};
        if ((dp < 0.0 && dq > 0.0) || (dp > 0.0 && dq < 0.0)) {
            const double t = dp / (dp - dq);
            out[kept++] = {in[k].a + t * (in[next].a - in[k].a), in[k].b + t * (in[next].b - in[k].b),
                           dp < 0.0 ? plane : in[k].plane};
        }
    }
    return kept;
}

// Area of a convex polygon (fan of triangles from its first vertex).
double area(const Point* polygon, int m) {
    double twice = 0.0;
    for (int k = 1; k + 1 < m; ++k) {
        const double a1 = polygon[k].a - polygon[0].a, b1 = polygon[k].b - polygon[0].b;
        const double a2 = polygon[k + 1].a - polygon[0].a, b2 = polygon[k + 1].b - polygon[0].b;
        twice += a1 * b2 - a2 * b1;
    }
    return 0.5 * std::abs(twice);
}

// The candidates of one atom, nearest first, as columns (the per-face plane set-up vectorises).
struct Candidates {
    std::vector<double> x, y, z, d2;
    std::vector<int64_t> j;  // original index
    size_t size() const { return d2.size(); }
};

struct Scratch {
    Candidates cand;
    std::vector<std::pair<double, uint32_t>> sorter;
    std::vector<double> c1, c2, c0;       // the candidates' half-planes in the plane of one face
    std::vector<double> line;             // distance of their lines from the face's foot point
    std::vector<Point> polygon, clipped;  // each clip adds at most one vertex
    std::vector<double> distance;         // of the polygon's vertices from a line
    std::vector<Face> faces;              // of the cell being built
    std::vector<int> face_of_candidate;   // index in `faces`, or -1
    std::vector<int> edge_planes;         // planes of the faces' edges, for the closure test
    std::vector<Visit> visits;
    Block block;
};

enum class FaceResult { kNone, kFace, kOpen };

// The face of candidate c, clipped from a square of half-width `half` by the other candidates.
// kOpen: the face reaches the square's edge (the candidates do not close the cell within it).
// On kFace, `face_area` and the squared distance of its farthest vertex `far2` are set and the
// planes of its edges (of length above `min_edge`) appended to s.edge_planes.
FaceResult face_of(size_t c, double half, double min_edge, Scratch& s, double& face_area, double& far2) {
    const Candidates& cand = s.cand;
    const size_t count = cand.size();
    const double n[3] = {cand.x[c], cand.y[c], cand.z[c]};
    const double len = std::sqrt(cand.d2[c]);
    const double nx = n[0] / len, ny = n[1] / len, nz = n[2] / len;
    // u: normal times the coordinate axis least parallel to it; w = normal x u
    double ux, uy, uz;
    if (std::abs(nx) <= std::abs(ny) && std::abs(nx) <= std::abs(nz)) {
        ux = 0.0, uy = nz, uz = -ny;
    } else if (std::abs(ny) <= std::abs(nz)) {
        ux = -nz, uy = 0.0, uz = nx;
    } else {
        ux = ny, uy = -nx, uz = 0.0;
    }
    const double ulen = std::sqrt(ux * ux + uy * uy + uz * uz);
    ux /= ulen, uy /= ulen, uz /= ulen;
    const double wx = ny * uz - nz * uy, wy = nz * ux - nx * uz, wz = nx * uy - ny * ux;

    // x = v_c / 2 + a u + b w lies inside plane k if a (u.v_k) + b (w.v_k) <= (|v_k|^2 - v_c.v_k) / 2
    {
        const double *x = cand.x.data(), *y = cand.y.data(), *z = cand.z.data(), *d2 = cand.d2.data();
        double* __restrict c1 = s.c1.data();
        double* __restrict c2 = s.c2.data();
        double* __restrict c0 = s.c0.data();
        // and the signed squared distance of each line from the foot point (no square root)
        double* __restrict line = s.line.data();
#pragma omp simd
        for (size_t k = 0; k < count; ++k) {
            const double a = ux * x[k] + uy * y[k] + uz * z[k];
            const double b = wx * x[k] + wy * y[k] + wz * z[k];
            const double d = 0.5 * (d2[k] - (n[0] * x[k] + n[1] * y[k] + n[2] * z[k]));
            c1[k] = a, c2[k] = b, c0[k] = d;
            const double norm2 = a * a + b * b;
            // a plane parallel to this one (norm2 = 0) either removes everything or nothing
            line[k] = norm2 > 0.0 ? d * std::abs(d) / norm2 : (d < 0.0 ? -kInf : kInf);
        }
    }
    Point* polygon = s.polygon.data();
    Point* clipped = s.clipped.data();
    polygon[0] = {-half, -half, kSquare}, polygon[1] = {half, -half, kSquare};
    polygon[2] = {half, half, kSquare}, polygon[3] = {-half, half, kSquare};
    int m = 4;
    const double foot2 = 0.25 * cand.d2[c];
    double reach2 = 2.0 * half * half;  // largest a^2 + b^2 over the polygon
    // Lines nearest the foot point first: they cut the most, so the polygon is soon final. A line
    // farther from the foot point than the polygon's farthest vertex misses it, and so do all
    // lines after it.
    double* __restrict line = s.line.data();
    line[c] = kInf;
    for (;;) {
        double nearest = kInf;  // the nearest line and its position, without branches
        size_t k = 0;
        for (size_t q = 0; q < count; ++q) {
            const bool nearer = line[q] < nearest;
            nearest = nearer ? line[q] : nearest;
            k = nearer ? q : k;
        }
        if (nearest == kInf || nearest > reach2) break;
        line[k] = kInf;
        const int kept = clip(polygon, m, s.c1[k], s.c2[k], s.c0[k], int(k), s.distance.data(), clipped);
        if (kept < 0) continue;
        if (kept == 0) return FaceResult::kNone;
        std::swap(polygon, clipped);
        m = kept;
        reach2 = 0.0;
        for (int p = 0; p < m; ++p) reach2 = std::max(reach2, polygon[p].a * polygon[p].a + polygon[p].b * polygon[p].b);
    }
    for (int p = 0; p < m; ++p) {
        const Point& q = polygon[p + 1 == m ? 0 : p + 1];
        const double da = q.a - polygon[p].a, db = q.b - polygon[p].b;
        if (da * da + db * db <= min_edge * min_edge) continue;  // degenerate edge
        if (polygon[p].plane == kSquare) return FaceResult::kOpen;
        s.edge_planes.push_back(polygon[p].plane);
    }
    face_area = area(polygon, m);
    far2 = foot2 + reach2;
    return FaceResult::kFace;
}

// The cell of an atom from its candidates within `radius` (s.cand, nearest first): its faces in
// s.faces. Returns 0, or the radius the candidates must reach instead if that was not enough.
//
// Candidates beyond twice the farthest vertex found so far are skipped. That is safe if the faces
// found close up (every edge of a found face lies on another found face: they are the whole surface
// of the cell); otherwise the cell is redone without skipping.
double build_cell(double radius, Scratch& s, bool skip = true) {
    s.faces.clear();
    s.edge_planes.clear();
    const size_t count = s.cand.size();
    s.face_of_candidate.assign(count, -1);
    if (s.c1.size() < count) s.c1.resize(count), s.c2.resize(count), s.c0.resize(count), s.line.resize(count);
    if (s.polygon.size() < count + 4)
        s.polygon.resize(count + 4), s.clipped.resize(count + 4), s.distance.resize(count + 4);
    // Points of a secure cell lie within radius / 2 of the atom: a face reaching beyond that
    // square proves the radius too small.
    const double half = 0.5 * radius * (1.0 + 1e-6);
    const double min_edge = 1e-9 * radius;
    double far2 = 0.0, largest = 0.0;
    bool skipped = false;
    for (size_t c = 0; c < count; ++c) {
        if (skip && s.cand.d2[c] > 4.0 * far2 * (1.0 + 1e-9) && !s.faces.empty()) {
            skipped = true;
            break;
        }
        double face_area, face_far2;
        const FaceResult result = face_of(c, half, min_edge, s, face_area, face_far2);
        if (result == FaceResult::kOpen) return 2.0 * radius;
        if (result == FaceResult::kNone) continue;
        s.face_of_candidate[c] = int(s.faces.size());
        s.faces.push_back(Face{s.cand.j[c], {s.cand.x[c], s.cand.y[c], s.cand.z[c]}, face_area});
        far2 = std::max(far2, face_far2);
        largest = std::max(largest, face_area);
    }
    if (skipped)
        for (int plane : s.edge_planes)
            if (s.face_of_candidate[plane] < 0) return build_cell(radius, s, false);
    if (4.0 * far2 > radius * radius) return 2.0 * std::sqrt(far2) * (1.0 + 1e-9);
    // Planes that touch the cell only at a vertex or along an edge (the second shell of ideal
    // fcc) leave a degenerate sliver of round-off size: not a face.
    const double tiny = 1e-12 * largest;
    s.faces.erase(std::remove_if(s.faces.begin(), s.faces.end(), [&](const Face& f) { return f.area <= tiny; }),
                  s.faces.end());
    return 0.0;
}

// Candidates of sorted atom i within `radius`, from the block of its bin (which must cover the
// radius), nearest first. Returns the number of other atoms found at distance zero.
int64_t gather(const CellGrid& g, int64_t i, Block& block, double radius, Scratch& s) {
    const double xi = g.x[i], yi = g.y[i], zi = g.z[i];
    block.distances(xi, yi, zi, radius * radius);
    const int64_t self = block.self + (i - block.first);
    int64_t coincident = 0;
    s.sorter.clear();
    for (size_t c = 0; c < block.size; ++c) {
        const double d2 = block.d2[c];
        if (!(d2 <= radius * radius) || int64_t(c) == self) continue;
        if (d2 == 0.0) {
            ++coincident;
            continue;
        }
        s.sorter.emplace_back(d2, uint32_t(c));
    }
    std::sort(s.sorter.begin(), s.sorter.end());
    Candidates& cand = s.cand;
    const size_t count = s.sorter.size();
    cand.x.resize(count), cand.y.resize(count), cand.z.resize(count), cand.d2.resize(count), cand.j.resize(count);
    for (size_t k = 0; k < count; ++k) {
        const uint32_t c = s.sorter[k].second;
        cand.x[k] = block.x[c] - xi, cand.y[k] = block.y[c] - yi, cand.z[k] = block.z[c] - zi;
        cand.d2[k] = s.sorter[k].first;
        cand.j[k] = g.atom[block.j[c]];
    }
    return coincident;
}

}  // namespace

VoronoiCells::VoronoiCells(int64_t n, const double* positions, const double* cell, const bool* pbc) {
    for (int d = 0; d < 3; ++d)
        if (!pbc[d]) throw std::invalid_argument("Voronoi cells need a cell periodic in all three directions");
    faces_.resize(max_threads());
    where_.resize(n);
    counts_.resize(n);
    if (n == 0) return;
    CellGrid g(n, positions, cell, pbc);
    // First radius: 2 r_max of an fcc cell with room for thermal disorder (fcc: 2 r_max = a,
    // 1.59 mean spacings; bcc: 1.41). Atoms that need more are redone, each with what it needs.
    const double spacing = std::cbrt(g.volume() / double(n));
    const double radius0 = 1.8 * spacing;
    const double widths[3] = {radius0, radius0, radius0};
    g.bin(widths);
    const std::vector<Row> rows = stencil(g, radius0);

    // Wider radii come in steps of sqrt(2), so that their stencils and candidate blocks serve
    // several atoms. No cell of a periodic system reaches beyond the atom's own nearest images.
    const double largest = 2.0 * (std::sqrt(g.G[0][0]) + std::sqrt(g.G[1][1]) + std::sqrt(g.G[2][2])) + radius0;
    const int levels = 1 + int(std::ceil(2.0 * std::log2(largest / radius0)));

    int64_t coincident = 0, unbounded = 0;
#pragma omp parallel reduction(+ : coincident, unbounded)
    {
        const int thread = this_thread();
        std::vector<Face>& out = faces_[thread];
        Scratch s;
        Scratch wide;  // for the few atoms that need a larger radius
        std::vector<std::vector<Row>> wide_rows(levels);  // stencils, made when first needed
#pragma omp for schedule(dynamic, 16)
        for (int64_t bin = 0; bin < g.n_bins(); ++bin) {
            if (g.start[bin] == g.start[bin + 1]) continue;
            int b[3];
            g.decode(bin, b);
            s.visits.clear();
            for (const Row& row : rows) g.add_row(b, row, s.visits);
            s.block.build(g, bin, s.visits);
            int wide_level = 0;  // of wide.block (built for this bin), 0 = none
            for (int64_t i = g.start[bin]; i < g.start[bin + 1]; ++i) {
                coincident += gather(g, i, s.block, radius0, s);
                Scratch* used = &s;
                for (double needed = build_cell(radius0, s); needed > 0.0;) {
                    const int level = std::max(1, int(std::ceil(2.0 * std::log2(needed / radius0) - 1e-9)));
                    if (level >= levels) {
                        ++unbounded;
                        used->faces.clear();
                        break;
                    }
                    if (level != wide_level) {
                        if (wide_rows[level].empty()) wide_rows[level] = stencil(g, radius0 * std::exp2(0.5 * level));
                        wide.visits.clear();
                        for (const Row& row : wide_rows[level]) g.add_row(b, row, wide.visits);
                        wide.block.build(g, bin, wide.visits);
                        wide_level = level;
                    }
                    const double radius = radius0 * std::exp2(0.5 * level);
                    gather(g, i, wide.block, radius, wide);
                    used = &wide;
                    needed = build_cell(radius, wide);
                    if (needed > 0.0) needed = std::max(needed, radius * 1.2);  // the next level at least
                }
                const int64_t atom = g.atom[i];
                where_[atom] = {thread, int64_t(out.size())};
                counts_[atom] = int64_t(used->faces.size());
                out.insert(out.end(), used->faces.begin(), used->faces.end());
            }
        }
    }
    if (coincident > 0) throw_zero_length_bonds(coincident);
    if (unbounded > 0)
        throw std::invalid_argument(std::to_string(unbounded) + " Voronoi cell(s) could not be closed");
}

void VoronoiCells::count(int64_t* offsets) const {
    const int64_t n = int64_t(counts_.size());
    offsets[0] = 0;
    for (int64_t i = 0; i < n; ++i) offsets[i + 1] = offsets[i] + counts_[i];
}

void VoronoiCells::fill(const int64_t* offsets, int64_t* neighbors, double* vectors, double* areas) const {
    const int64_t n = int64_t(counts_.size());
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
        const Face* f = faces_[where_[i].thread].data() + where_[i].first;
        for (int64_t m = 0; m < counts_[i]; ++m) {
            const int64_t b = offsets[i] + m;
            neighbors[b] = f[m].j;
            vectors[3 * b] = f[m].v[0], vectors[3 * b + 1] = f[m].v[1], vectors[3 * b + 2] = f[m].v[2];
            areas[b] = f[m].area;
        }
    }
}

VoronoiCells::~VoronoiCells() = default;

}  // namespace mlclass
