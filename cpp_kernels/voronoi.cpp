// Voronoi cells from the atoms' positions: each atom's Voronoi neighbours and face areas.
//
// With atom i at the origin, the face shared with a candidate atom j (vector v_j) lies in the
// bisector plane x . v_j = |v_j|^2 / 2 and is the part of that plane inside the half-spaces
// x . v_k <= |v_k|^2 / 2 of all other candidates k. It is found by clipping a square of that plane
// by these half-spaces (Sutherland-Hodgman) in 2-d coordinates (a, b) of an orthonormal basis
// (u, w) of the plane, origin at its foot point v_j / 2: the lines nearest the foot point first,
// until the next line lies beyond the polygon's farthest vertex.
//
// Each face is built once, by the atom of lower index, and handed to the other atom reversed;
// faces towards an atom's own periodic images are built by the atom itself.
//
// The candidates are the atoms within a radius R of atom i. No atom farther than 2 r, twice the
// distance r of a face's farthest vertex from i, can cut the face, so a face is final if
// 2 r <= R ("security radius", as in voro++); otherwise the atom is redone with a larger R. That
// does not show faces towards atoms beyond R (of higher index, so that nobody builds them), but
// they show in the whole cell once assembled: the faces next to a missing one reach beyond R / 2.
// So an atom whose assembled cell reaches beyond R / 2 is redone, too.
// We also tried voro++'s way, cutting a polyhedron plane by plane: on thermally disordered fcc it
// was 10% slower than the face-by-face construction (when each cell built all its faces). But each
// face here is clipped by all candidates, so an atom costs candidates^2: next to a large empty
// region (a slab in vacuum) that is thousands squared, and the cells are refused (CellsTooLarge) in
// favour of voro++ (OVITO's Voronoi analysis), which tests a plane against the cell's few vertices.
#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
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
    double far2;  // squared distance of its farthest vertex from either atom
};

// One thread's faces, in chunks that never move (no growth copies; the faces of one atom are
// contiguous). Aligned so that two threads' stores never share a cache line.
struct alignas(64) VoronoiCells::FaceStore {
    static constexpr size_t kChunk = 4096;  // faces (200 kB)
    std::vector<std::unique_ptr<Face[]>> chunks;
    size_t used = kChunk;                    // of the last chunk

    const Face* add(const std::vector<Face>& faces) {
        if (faces.empty()) return nullptr;   // (a thread's first atom may build none)
        if (used + faces.size() > kChunk) {  // a new chunk (larger for an atom with more faces)
            chunks.emplace_back(new Face[std::max(kChunk, faces.size())]);
            used = 0;
        }
        Face* out = chunks.back().get() + used;
        std::copy(faces.begin(), faces.end(), out);
        used += faces.size();
        return out;
    }
};

namespace {

using Face = VoronoiCells::Face;

// A vertex of a face polygon.
struct Point {
    double a, b;
};

// Keeps the part of the convex polygon in[0..m) where c1 a + c2 b <= c0 (vertices on the line
// stay), written to out; returns the new vertex count. Returns -1 (and leaves `out` alone) if the
// half-plane holds the whole polygon.
int clip(const Point* in, int m, double c1, double c2, double c0, double* d, Point* out) {
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
        if (dp <= 0.0) out[kept++] = in[k];
        if ((dp < 0.0 && dq > 0.0) || (dp > 0.0 && dq < 0.0)) {
            const double t = dp / (dp - dq);
            out[kept++] = {in[k].a + t * (in[next].a - in[k].a), in[k].b + t * (in[next].b - in[k].b)};
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
    Buffer<double> x, y, z, d2;
    Buffer<int64_t> j;  // original index
    size_t size() const { return d2.size(); }
};

struct Scratch {
    Candidates cand;
    Buffer<std::pair<double, uint32_t>> sorter;
    Buffer<double> c1, c2, c0;        // the candidates' half-planes in the plane of one face
    Buffer<double> line;              // distance of their lines from the face's foot point
    Buffer<Point> polygon, clipped;   // each clip adds at most one vertex
    Buffer<double> distance;          // of the polygon's vertices from a line
    std::vector<Face> faces;          // built by the atom being done
    std::vector<Visit> visits;
    Block block;
};

// The face of candidate c, clipped from a square of half-width `half` by the other candidates;
// false if there is none. A face that reaches the square's edge has its far vertex there.
bool face_of(size_t c, double half, Scratch& s, double& face_area, double& far2) {
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
    polygon[0] = {-half, -half}, polygon[1] = {half, -half}, polygon[2] = {half, half}, polygon[3] = {-half, half};
    int m = 4;
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
        const int kept = clip(polygon, m, s.c1[k], s.c2[k], s.c0[k], s.distance.data(), clipped);
        if (kept < 0) continue;
        if (kept == 0) return false;
        std::swap(polygon, clipped);
        m = kept;
        reach2 = 0.0;
        for (int p = 0; p < m; ++p) reach2 = std::max(reach2, polygon[p].a * polygon[p].a + polygon[p].b * polygon[p].b);
    }
    face_area = area(polygon, m);
    far2 = 0.25 * cand.d2[c] + reach2;
    return true;
}

// The faces that atom `atom` builds (towards candidates of higher index and its own images), from
// its candidates within `radius` (s.cand), in s.faces. Returns 0, or the radius the candidates must
// reach instead if that was not enough.
double build_faces(int64_t atom, double radius, Scratch& s) {
    s.faces.clear();
    const size_t count = s.cand.size();
    if (s.c1.size() < count) s.c1.resize(count), s.c2.resize(count), s.c0.resize(count), s.line.resize(count);
    if (s.polygon.size() < count + 4)
        s.polygon.resize(count + 4), s.clipped.resize(count + 4), s.distance.resize(count + 4);
    // A face reaching beyond this square is not final (its far vertex lies beyond radius / 2).
    const double half = 0.5 * radius * (1.0 + 1e-6);
    for (size_t c = 0; c < count; ++c) {
        if (s.cand.j[c] < atom) continue;
        double face_area, far2;
        if (!face_of(c, half, s, face_area, far2)) continue;
        if (4.0 * far2 > radius * radius) return 2.0 * std::sqrt(far2) * (1.0 + 1e-9);
        s.faces.push_back(Face{s.cand.j[c], {s.cand.x[c], s.cand.y[c], s.cand.z[c]}, face_area, far2});
    }
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
    if (s.sorter.size() > kMaxCandidates)
        throw CellsTooLarge("the Voronoi cell of particle " + std::to_string(g.atom[i]) + " needs more than " +
                            std::to_string(kMaxCandidates) + " candidate neighbours (it borders a large empty region)");
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

// Radii come in steps of sqrt(2) from the first one, so that their stencils and candidate blocks
// serve several atoms.
int level_for(double radius, double radius0) {
    return std::max(1, int(std::ceil(2.0 * std::log2(radius / radius0) - 1e-9)));
}

}  // namespace

VoronoiCells::VoronoiCells(int64_t n, const double* positions, const double* cell, const bool* pbc) {
    for (int d = 0; d < 3; ++d)
        if (!pbc[d]) throw std::invalid_argument("Voronoi cells need a cell periodic in all three directions");
    stores_.resize(max_threads());
    built_.resize(n);
    own_.resize(n);
    radius_.resize(n);
    if (n == 0) {
        incoming_offsets_.assign(1, 0);
        return;
    }
    CellGrid g(n, positions, cell, pbc);
    // First radius: 2 r_max of an fcc cell with room for thermal disorder (fcc: 2 r_max = a,
    // 1.59 mean spacings; bcc: 1.41). Atoms that need more are redone, each with what it needs.
    const double spacing = std::cbrt(g.volume() / double(n));
    const double radius0 = 1.8 * spacing;
    const double widths[3] = {radius0, radius0, radius0};
    g.bin(widths);
    // No cell of a periodic system reaches beyond the atom's own nearest images.
    const double largest = 2.0 * (std::sqrt(g.G[0][0]) + std::sqrt(g.G[1][1]) + std::sqrt(g.G[2][2])) + radius0;
    const int levels = 1 + int(std::ceil(2.0 * std::log2(largest / radius0)));
    std::vector<std::vector<Row>> rows(levels);  // stencils of the radii, made when first needed
    rows[0] = stencil(g, radius0);

    // One try at the faces of sorted atom i (into s.faces) at radius level `level`, s.block holding
    // the candidates of its bin at level `block_level` (updated). Returns 0, or the radius needed.
    std::mutex rows_mutex;
    Coincidence coincidence;
    auto attempt = [&](int64_t i, int64_t bin, int level, Scratch& s, int& block_level) {
        if (level != block_level) {
            int b[3];
            g.decode(bin, b);
            {
                std::lock_guard<std::mutex> lock(rows_mutex);
                if (rows[level].empty()) rows[level] = stencil(g, radius0 * std::exp2(0.5 * level));
            }
            s.visits.clear();
            for (const Row& row : rows[level]) g.add_row(b, row, s.visits);
            s.block.build(g, bin, s.visits);
            block_level = level;
        }
        const double radius = radius0 * std::exp2(0.5 * level);
        if (gather(g, i, s.block, radius, s) > 0 && level == 0) coincidence.note(g.atom[i]);  // once per atom
        return build_faces(g.atom[i], radius, s);
    };
    // Wider tries after one at `level` that needed `needed`; returns the level that was enough, or
    // `levels` if none was.
    auto escalate = [&](int64_t i, int64_t bin, int level, double needed, Scratch& s, int& block_level) {
        while (needed > 0.0) {
            level = std::max(level + 1, level_for(needed, radius0));
            if (level >= levels) return levels;
            needed = attempt(i, bin, level, s, block_level);
        }
        return level;
    };
    // Keeps the faces atom `atom` built at `level` (in the calling thread's buffer).
    auto keep = [&](int64_t atom, int level, const Scratch& s) {
        built_[atom] = stores_[this_thread()].add(s.faces);
        own_[atom] = int64_t(s.faces.size());
        radius_[atom] = radius0 * std::exp2(0.5 * level);
    };

    int64_t unbounded = 0;
    ThreadErrors errors;
#pragma omp parallel reduction(+ : unbounded)
    {
        Scratch s;     // candidates of the bin's atoms at the first radius
        Scratch wide;  // for the few atoms that need a larger one
#pragma omp for schedule(dynamic, 16)
        for (int64_t bin = 0; bin < g.n_bins(); ++bin) {
            if (g.start[bin] == g.start[bin + 1]) continue;
            errors.run([&] {
                int block_level = -1, wide_level = -1;
                for (int64_t i = g.start[bin]; i < g.start[bin + 1]; ++i) {
                    const double needed = attempt(i, bin, 0, s, block_level);
                    const int level = needed > 0.0 ? escalate(i, bin, 0, needed, wide, wide_level) : 0;
                    if (level >= levels) ++unbounded;
                    else keep(g.atom[i], level, level > 0 ? wide : s);
                }
            });
        }
    }
    errors.rethrow();
    coincidence.check(positions);
    if (unbounded > 0) throw std::invalid_argument(std::to_string(unbounded) + " Voronoi cell(s) could not be closed");

    // Assemble every cell from its own faces and those built by its neighbours; redo the atoms
    // whose cell reaches beyond half their radius.
    Buffer<int64_t> sorted_index(n);
    for (int64_t i = 0; i < n; ++i) sorted_index[g.atom[i]] = i;
    for (;;) {
        assemble();
        std::vector<std::pair<int64_t, double>> redo;  // atom, the radius it needs
        for (int64_t atom = 0; atom < n; ++atom) {
            if (!(reach2_[atom] > 0.25 * radius_[atom] * radius_[atom]) && counts_[atom] > 0) continue;
            redo.emplace_back(atom, counts_[atom] > 0 ? 2.0 * std::sqrt(reach2_[atom]) * (1.0 + 1e-9) : 2.0 * radius_[atom]);
        }
        if (redo.empty()) break;
#pragma omp parallel reduction(+ : unbounded)
        {
            Scratch s;
#pragma omp for schedule(dynamic, 1)
            for (size_t r = 0; r < redo.size(); ++r) errors.run([&] {
                const auto [atom, needed] = redo[r];
                const int64_t i = sorted_index[atom];
                const int64_t bin = std::upper_bound(g.start.begin(), g.start.end(), i) - g.start.begin() - 1;
                int block_level = -1;
                const int level = escalate(i, bin, 0, needed, s, block_level);  // beyond its radius: needed > radius_
                if (level >= levels) ++unbounded;
                else keep(atom, level, s);
            });
        }
        errors.rethrow();
        if (unbounded > 0)
            throw std::invalid_argument(std::to_string(unbounded) + " Voronoi cell(s) could not be closed");
    }
}

template <typename Body>
void VoronoiCells::for_each_face(int64_t atom, Body&& body) const {
    const Face* f = built_[atom];
    for (int64_t m = 0; m < own_[atom]; ++m) body(f[m], atom);
    for (int64_t k = incoming_offsets_[atom]; k < incoming_offsets_[atom + 1]; ++k) body(*incoming_[k].face, incoming_[k].source);
}

// For every atom: the faces built by neighbours of lower index (incoming_), its number of faces
// (counts_, without degenerate slivers), the largest distance of a vertex (reach2_) and the
// sliver threshold (tiny_).
void VoronoiCells::assemble() {
    const int64_t n = int64_t(own_.size());
    incoming_offsets_.assign(n + 1, 0);
    for (int64_t atom = 0; atom < n; ++atom) {
        const Face* f = built_[atom];
        for (int64_t m = 0; m < own_[atom]; ++m)
            if (f[m].j != atom) ++incoming_offsets_[f[m].j + 1];
    }
    for (int64_t atom = 0; atom < n; ++atom) incoming_offsets_[atom + 1] += incoming_offsets_[atom];
    incoming_.resize(incoming_offsets_[n]);
    Buffer<int64_t> cursor(incoming_offsets_.begin(), incoming_offsets_.end() - 1);
    for (int64_t atom = 0; atom < n; ++atom) {
        const Face* f = built_[atom];
        for (int64_t m = 0; m < own_[atom]; ++m)
            if (f[m].j != atom) incoming_[cursor[f[m].j]++] = {atom, f + m};
    }
    counts_.resize(n), reach2_.resize(n), tiny_.resize(n);
    ThreadErrors errors;
#pragma omp parallel for schedule(static)
    for (int64_t atom = 0; atom < n; ++atom) errors.run([&] {
        double largest = 0.0, reach2 = 0.0;
        for_each_face(atom, [&](const Face& f, int64_t) {
            largest = std::max(largest, f.area);
            reach2 = std::max(reach2, f.far2);
        });
        // Planes that touch the cell only at a vertex or along an edge (the second shell of ideal
        // fcc) leave a degenerate sliver of round-off size: not a face.
        const double tiny = 1e-12 * largest;
        int64_t count = 0;
        for_each_face(atom, [&](const Face& f, int64_t) { count += f.area > tiny; });
        counts_[atom] = count, reach2_[atom] = reach2, tiny_[atom] = tiny;
    });
    errors.rethrow();
}

void VoronoiCells::count(int64_t* offsets) const {
    const int64_t n = int64_t(counts_.size());
    offsets[0] = 0;
    for (int64_t i = 0; i < n; ++i) offsets[i + 1] = offsets[i] + counts_[i];
}

void VoronoiCells::fill(const int64_t* offsets, int64_t* neighbors, double* vectors, double* areas) const {
    const int64_t n = int64_t(counts_.size());
    ThreadErrors errors;
#pragma omp parallel for schedule(static)
    for (int64_t atom = 0; atom < n; ++atom) errors.run([&] {
        int64_t b = offsets[atom];
        for_each_face(atom, [&](const Face& f, int64_t source) {
            if (!(f.area > tiny_[atom])) return;
            // a face built by the neighbour: towards that neighbour, from this atom's side
            const bool reversed = source != atom;
            neighbors[b] = reversed ? source : f.j;
            const double sign = reversed ? -1.0 : 1.0;
            vectors[3 * b] = sign * f.v[0], vectors[3 * b + 1] = sign * f.v[1], vectors[3 * b + 2] = sign * f.v[2];
            areas[b] = f.area;
            ++b;
        });
    });
    errors.rethrow();
}

VoronoiCells::~VoronoiCells() = default;

}  // namespace mlclass
