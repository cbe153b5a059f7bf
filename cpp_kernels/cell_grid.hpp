// The cell grid shared by the neighbour searches (cell_list.cpp) and the Voronoi cells
// (voronoi.cpp). Both translation units are compiled with -ffp-contract=off, so the inline code
// here is the same machine arithmetic in both (and distances equal OVITO's bit for bit).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "threads.hpp"

namespace mlclass {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Atoms of one bin, or of a run of neighbouring bins along the first axis (contiguous in the
// sorted atoms), as seen from another bin: their range and the image shift to add to them.
struct Visit {
    int64_t begin, end;
    double shift[3];
    bool home;  // no image shift: the atom itself may be among these
};

// Bins b + (first..last, o1, o2) relative to a bin b: a run along the first axis, whose bins are
// contiguous in the sorted atoms (one visit per periodic image it touches).
struct Row {
    int o1, o2, first, last;
};

// Index t wrapped into 0 .. n - 1, and the number of periods removed (no division in the usual cases).
inline int wrap(int t, int n, int& image) {
    if (t >= 0 && t < n) return image = 0, t;
    if (t < 0 && t >= -n) return image = -1, t + n;
    if (t >= n && t < 2 * n) return image = 1, t - n;
    image = t >= 0 ? t / n : -((-t + n - 1) / n);
    return t - image * n;
}

struct CellGrid {
    int64_t n = 0;
    double M[3][3], inv[3][3], G[3][3];  // cell vectors as columns, M^-1, metric M^T M
    double det;
    bool pbc[3];
    double width[3];     // perpendicular distance per unit of reduced coordinate along each axis
    double lo[3], extent[3], h[3];  // grid start, length and bin width, in reduced coordinates
    int nb[3] = {1, 1, 1};
    Buffer<double> x, y, z;     // wrapped positions (bin-sorted once bin() has run)
    Buffer<double> sx, sy, sz;  // their reduced coordinates
    Buffer<int64_t> atom;       // original index of each sorted atom
    Buffer<int64_t> start;      // atoms of bin b: start[b] .. start[b + 1] - 1

    CellGrid(int64_t n_atoms, const double* positions, const double* cell, const bool* periodic);
    double volume() const;           // of the region the grid spans
    void bin(const double target_width[3]);  // bins of about these widths (Cartesian), then sorts the atoms
    int64_t n_bins() const { return int64_t(nb[0]) * nb[1] * nb[2]; }
    void decode(int64_t bin, int b[3]) const {
        b[0] = int(bin % nb[0]);
        b[1] = int(bin / nb[0] % nb[1]);
        b[2] = int(bin / (int64_t(nb[0]) * nb[1]));
    }

    // Bin b + o with the shift of its periodic image; false if it lies beyond a non-periodic edge
    // or holds no atoms.
    bool neighbor(const int b[3], const int o[3], Visit& v) const {
        int t[3], image[3];
        for (int d = 0; d < 3; ++d) {
            t[d] = b[d] + o[d];
            image[d] = 0;
            if (pbc[d]) {
                t[d] = wrap(t[d], nb[d], image[d]);
            } else if (t[d] < 0 || t[d] >= nb[d]) {
                return false;
            }
        }
        const int64_t bin = (int64_t(t[2]) * nb[1] + t[1]) * nb[0] + t[0];
        v.begin = start[bin];
        v.end = start[bin + 1];
        set_shift(v, image);
        return v.end > v.begin;
    }

    void set_shift(Visit& v, const int image[3]) const {
        for (int c = 0; c < 3; ++c) v.shift[c] = M[c][0] * image[0] + M[c][1] * image[1] + M[c][2] * image[2];
        v.home = image[0] == 0 && image[1] == 0 && image[2] == 0;
    }

    // Appends the non-empty visits of a row of bins around bin b.
    void add_row(const int b[3], const Row& r, std::vector<Visit>& out) const {
        int t[3], image[3] = {0, 0, 0};
        t[1] = b[1] + r.o1;
        t[2] = b[2] + r.o2;
        for (int d = 1; d < 3; ++d) {
            if (pbc[d]) t[d] = wrap(t[d], nb[d], image[d]);
            else if (t[d] < 0 || t[d] >= nb[d]) return;
        }
        int first = b[0] + r.first, last = b[0] + r.last;
        if (!pbc[0]) first = std::max(first, 0), last = std::min(last, nb[0] - 1);
        const int64_t row = (int64_t(t[2]) * nb[1] + t[1]) * nb[0];
        Visit v;
        while (first <= last) {
            const int u = wrap(first, nb[0], image[0]);
            const int run = std::min(last - first, nb[0] - 1 - u);  // further bins of this image
            v.begin = start[row + u];
            v.end = start[row + u + run + 1];
            set_shift(v, image);
            if (v.end > v.begin) out.push_back(v);
            first += run + 1;
        }
    }
};


// The candidates of one bin: the atoms of the bins it visits, with their image shifts applied, as
// contiguous arrays shared by all atoms of the bin, so that each atom's distance loop is one
// simple loop that vectorises.
struct Block {
    Buffer<double> x, y, z;
    Buffer<int64_t> j;  // sorted index
    Buffer<double> d2;  // squared distances from the atom being searched
    Buffer<uint32_t> pick;
    size_t size = 0;
    int64_t first = 0;       // the bin's first atom
    int64_t self = -1;       // its candidate index without image shift

    void build(const CellGrid& g, int64_t bin, const std::vector<Visit>& visits) {
        size = 0;
        for (const Visit& v : visits) size += v.end - v.begin;
        if (size > std::numeric_limits<uint32_t>::max())  // (pick holds 32-bit indices)
            throw std::invalid_argument("more than 2^32 candidate neighbours for the atoms of one bin");
        if (x.size() < size)
            x.resize(size), y.resize(size), z.resize(size), j.resize(size), d2.resize(size), pick.resize(size);
        first = g.start[bin];
        // raw restrict pointers: the copies vectorise
        double* __restrict bx = x.data();
        double* __restrict by = y.data();
        double* __restrict bz = z.data();
        int64_t* __restrict bj = j.data();
        const double *gx = g.x.data(), *gy = g.y.data(), *gz = g.z.data();
        size_t c = 0;
        for (const Visit& v : visits) {
            if (v.home && v.begin <= first && first < v.end) self = int64_t(c + (first - v.begin));
            const double sx = v.shift[0], sy = v.shift[1], sz = v.shift[2];
            const int64_t len = v.end - v.begin;
            for (int64_t a = 0; a < len; ++a) {
                bx[c + a] = gx[v.begin + a] + sx;
                by[c + a] = gy[v.begin + a] + sy;
                bz[c + a] = gz[v.begin + a] + sz;
                bj[c + a] = v.begin + a;
            }
            c += len;
        }
    }

    // d2[c] for all candidates; returns how many are within radius2, and in `zeros` how many are
    // at distance zero (the atom itself among them).
    int64_t distances(double xi, double yi, double zi, double radius2, int64_t& zeros) {
        const double *cx = x.data(), *cy = y.data(), *cz = z.data();
        double* __restrict out = d2.data();
        int64_t within = 0, zero = 0;
        for (size_t c = 0; c < size; ++c) {
            const double dx = cx[c] - xi, dy = cy[c] - yi, dz = cz[c] - zi;
            out[c] = dx * dx + dy * dy + dz * dz;
            within += out[c] <= radius2;
            zero += out[c] == 0.0;
        }
        zeros = zero;
        return within;
    }
    int64_t distances(double xi, double yi, double zi, double radius2) {
        int64_t unused;  // the compiler drops its count
        return distances(xi, yi, zi, radius2, unused);
    }
};


// Most bins (with their periodic images) a search may visit from one bin: a bound on the
// stencil's size and its time (reached only by cells far smaller than the search radius).
constexpr double kMaxVisits = 1e7;

// The rows of bins that can hold a pair within the cutoff, from the exact minimum distance
// between two bins (parallelepipeds). Refuses (ValueError) more than kMaxVisits bins.
std::vector<Row> stencil(const CellGrid& g, double cutoff);

// Runs body(i, block) for every sorted atom i, bins spread over the threads; `block` holds the
// candidates of the atom's bin.
template <typename Body>
void for_each_atom(const CellGrid& g, double cutoff, Body&& body) {
    if (g.n == 0) return;
    const std::vector<Row> rows = stencil(g, cutoff);
    ThreadErrors errors;
#pragma omp parallel
    {
        std::vector<Visit> visits;
        Block block;
#pragma omp for schedule(dynamic, 16)
        for (int64_t bin = 0; bin < g.n_bins(); ++bin) {
            if (g.start[bin] == g.start[bin + 1]) continue;
            errors.run([&] {
                int b[3];
                g.decode(bin, b);
                visits.clear();
                for (const Row& row : rows) g.add_row(b, row, visits);
                block.build(g, bin, visits);
                for (int64_t i = g.start[bin]; i < g.start[bin + 1]; ++i) body(i, block);
            });
        }
    }
    errors.rethrow();
}


}  // namespace mlclass
