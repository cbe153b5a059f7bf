// Voronoi face areas from each atom's list of Voronoi neighbours.
//
// With atom i at the origin, the face shared with neighbour j lies in the bisector plane
// x . v_j = |v_j|^2 / 2 and is the part of that plane inside the half-spaces x . v_k <= |v_k|^2 / 2
// of all other neighbours k. It is found by clipping a square of that plane, larger than the cell,
// by each of these half-spaces in turn (Sutherland-Hodgman). The clipping is done in 2-d
// coordinates (a, b) of an orthonormal basis (u, w) of the plane, origin at its foot point v_j / 2.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.hpp"
#include "threads.hpp"

namespace mlclass {

namespace {

struct Point {
    double a, b;
};

// A half-plane c1 a + c2 b <= c0 of the face plane.
struct HalfPlane {
    double c1, c2, c0;
};

// Keeps the part of the convex polygon in[0..m) where c1 a + c2 b <= c0 (vertices on the line
// stay), written to out; returns the new vertex count. Returns -1 (and leaves `out` alone) if
// the half-plane holds the whole polygon, which is the common case once the nearest neighbours
// have cut the face down to size.
int clip(const Point* in, int m, const HalfPlane& h, double* d, Point* out) {
    bool cuts = false;
    for (int k = 0; k < m; ++k) {
        d[k] = h.c1 * in[k].a + h.c2 * in[k].b - h.c0;
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

struct Scratch {
    std::vector<double> length;  // of the atom's bond vectors
    std::vector<int64_t> order;  // bonds of the atom, nearest first (they cut the most)
    std::vector<HalfPlane> planes;
    std::vector<Point> polygon, clipped;  // each clip adds at most one vertex: 4 + bonds
    std::vector<double> distance;         // of the polygon's vertices from a plane
};

// Area of the face of bond j among the bonds [begin, end) of one atom. Returns false if the
// face reaches the edge of the starting square even after enlarging it: the neighbours do not
// close the cell.
bool face_area(const double* vectors, int64_t j, double max_length, Scratch& s, double& result) {
    const double* n = vectors + 3 * j;
    const double len = std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
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

    // x = v_j / 2 + a u + b w lies inside plane k if a (u.v_k) + b (w.v_k) <= (|v_k|^2 - v_j.v_k) / 2
    s.planes.clear();
    for (int64_t k : s.order) {
        if (k == j) continue;
        const double* v = vectors + 3 * k;
        s.planes.push_back({ux * v[0] + uy * v[1] + uz * v[2], wx * v[0] + wy * v[1] + wz * v[2],
                            0.5 * (v[0] * v[0] + v[1] * v[1] + v[2] * v[2] - n[0] * v[0] - n[1] * v[1] - n[2] * v[2])});
    }
    // The cell lies within a few neighbour distances of the atom; if the face still touches the
    // starting square, the square was too small: enlarge it and start again.
    const size_t capacity = s.planes.size() + 4;
    if (s.polygon.size() < capacity) s.polygon.resize(capacity), s.clipped.resize(capacity), s.distance.resize(capacity);
    for (double half = 2.0 * max_length; half < 1e6 * max_length; half *= 8.0) {
        Point* polygon = s.polygon.data();
        Point* clipped = s.clipped.data();
        polygon[0] = {-half, -half}, polygon[1] = {half, -half}, polygon[2] = {half, half}, polygon[3] = {-half, half};
        int m = 4;
        for (const HalfPlane& h : s.planes) {
            const int kept = clip(polygon, m, h, s.distance.data(), clipped);
            if (kept < 0) continue;
            std::swap(polygon, clipped);
            m = kept;
            if (m == 0) break;
        }
        const double edge = half * (1.0 - 1e-9);
        bool touches = false;
        for (int k = 0; k < m; ++k) touches |= std::abs(polygon[k].a) >= edge || std::abs(polygon[k].b) >= edge;
        if (!touches) {
            result = area(polygon, m);
            return true;
        }
    }
    return false;
}

}  // namespace

void voronoi_face_areas(int64_t n_atoms, const int64_t* offsets, const double* vectors, double* areas) {
    int64_t zero_length = 0, open_cells = 0, first_open = -1;
#pragma omp parallel reduction(+ : zero_length, open_cells)
    {
        Scratch s;
#pragma omp for schedule(dynamic, 256)
        for (int64_t i = 0; i < n_atoms; ++i) {
            const int64_t begin = offsets[i], end = offsets[i + 1];
            std::vector<double>& length = s.length;
            length.resize(end - begin);
            double max_length = 0.0;
            bool ok = true;
            for (int64_t b = begin; b < end; ++b) {
                const double* v = vectors + 3 * b;
                length[b - begin] = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
                max_length = std::max(max_length, length[b - begin]);
                if (length[b - begin] == 0.0) ++zero_length, ok = false;
            }
            if (!ok) {
                std::fill(areas + begin, areas + end, 0.0);
                continue;
            }
            s.order.resize(end - begin);
            std::iota(s.order.begin(), s.order.end(), begin);
            std::sort(s.order.begin(), s.order.end(),
                      [&](int64_t x, int64_t y) { return length[x - begin] < length[y - begin]; });
            for (int64_t j = begin; j < end; ++j) {
                if (!face_area(vectors, j, max_length, s, areas[j])) {
                    areas[j] = 0.0;
                    ok = false;
                }
            }
            if (!ok) {
                ++open_cells;
#pragma omp critical(voronoi_first_open)
                if (first_open < 0 || i < first_open) first_open = i;
            }
        }
    }
    if (zero_length > 0) throw_zero_length_bonds(zero_length);
    if (open_cells > 0)
        throw std::invalid_argument(std::to_string(open_cells) + " Voronoi cell(s) are not closed by their neighbours " +
                                    "(first: atom " + std::to_string(first_open) +
                                    "): the neighbour list lacks some of the Voronoi neighbours");
}

}  // namespace mlclass
