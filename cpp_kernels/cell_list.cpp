// Cell-list neighbour search. Atoms are binned in reduced (cell) coordinates, so triclinic cells
// need no special case: along a periodic axis a neighbour bin beyond the grid is a periodic image
// (as many images as the search radius needs, so small cells work), along a non-periodic axis the
// grid spans the atoms' extent, which may exceed the cell. The search runs on a bin-sorted copy
// of the positions (cache locality) and writes its results in the original atom order.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <vector>

#if defined(__AVX512F__) && defined(__AVX512VL__)
#include <immintrin.h>
#endif

#include "cell_grid.hpp"
#include "kernels.hpp"
#include "threads.hpp"

namespace mlclass {

namespace {

// Smallest |M u|^2 over the box lo <= u <= hi (G = M^T M). A convex quadratic takes its minimum over
// a box inside one of its faces (the box itself included), where it is the face's unconstrained
// minimum, so trying the 27 faces (each coordinate free, at lo or at hi) finds it.
double min_norm2_in_box(const double G[3][3], const double lo[3], const double hi[3]) {
    double best = kInf;
    for (int face = 0; face < 27; ++face) {
        int state[3] = {face % 3, face / 3 % 3, face / 9};  // 0: free, 1: at lo, 2: at hi
        double u[3];
        int free_axes[3], nf = 0;
        for (int d = 0; d < 3; ++d) {
            if (state[d] == 0) free_axes[nf++] = d, u[d] = 0.0;
            else u[d] = state[d] == 1 ? lo[d] : hi[d];
        }
        // G_FF u_F = -G_FX u_X by Gaussian elimination (G_FF is positive definite: no pivoting)
        double A[3][4];
        for (int r = 0; r < nf; ++r) {
            double rhs = 0.0;
            for (int d = 0; d < 3; ++d)
                if (state[d] != 0) rhs -= G[free_axes[r]][d] * u[d];
            for (int c = 0; c < nf; ++c) A[r][c] = G[free_axes[r]][free_axes[c]];
            A[r][nf] = rhs;
        }
        for (int p = 0; p < nf; ++p)
            for (int r = p + 1; r < nf; ++r) {
                const double f = A[r][p] / A[p][p];
                for (int c = p; c <= nf; ++c) A[r][c] -= f * A[p][c];
            }
        bool inside = true;
        for (int r = nf - 1; r >= 0; --r) {
            double v = A[r][nf];
            for (int c = r + 1; c < nf; ++c) v -= A[r][c] * u[free_axes[c]];
            v /= A[r][r];
            u[free_axes[r]] = v;
            const int d = free_axes[r];
            const double slack = 1e-12 * (std::abs(lo[d]) + std::abs(hi[d]) + 1.0);
            inside = inside && v >= lo[d] - slack && v <= hi[d] + slack;
        }
        if (!inside) continue;
        double norm2 = 0.0;
        for (int a = 0; a < 3; ++a)
            for (int b = 0; b < 3; ++b) norm2 += u[a] * G[a][b] * u[b];
        best = std::min(best, norm2);
    }
    return std::max(best, 0.0);
}

}  // namespace



CellGrid::CellGrid(int64_t n_atoms, const double* positions, const double* cell, const bool* periodic) : n(n_atoms) {
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c) M[r][c] = cell[4 * r + c];
    det = M[0][0] * (M[1][1] * M[2][2] - M[1][2] * M[2][1]) - M[0][1] * (M[1][0] * M[2][2] - M[1][2] * M[2][0]) +
          M[0][2] * (M[1][0] * M[2][1] - M[1][1] * M[2][0]);
    double scale = 0.0;
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c) scale = std::max(scale, std::abs(M[r][c]));
    if (!(std::abs(det) > 1e-12 * scale * scale * scale) || !std::isfinite(det))
        throw std::invalid_argument("the simulation cell is degenerate (its cell vectors span no volume)");
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c) {
            const int r1 = (c + 1) % 3, r2 = (c + 2) % 3, c1 = (r + 1) % 3, c2 = (r + 2) % 3;
            inv[r][c] = (M[r1][c1] * M[r2][c2] - M[r1][c2] * M[r2][c1]) / det;
        }
    for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b) G[a][b] = M[0][a] * M[0][b] + M[1][a] * M[1][b] + M[2][a] * M[2][b];
    for (int d = 0; d < 3; ++d) {
        pbc[d] = periodic[d];
        width[d] = 1.0 / std::sqrt(inv[d][0] * inv[d][0] + inv[d][1] * inv[d][1] + inv[d][2] * inv[d][2]);
    }
    const double origin[3] = {cell[3], cell[7], cell[11]};

    // Reduced coordinates; periodic axes are wrapped into [0, 1) together with the positions.
    x.resize(n); y.resize(n); z.resize(n); sx.resize(n); sy.resize(n); sz.resize(n);
    double lo_[3] = {kInf, kInf, kInf}, hi_[3] = {-kInf, -kInf, -kInf};
    ThreadErrors errors;
#pragma omp parallel for schedule(static) reduction(min : lo_[:3]) reduction(max : hi_[:3])
    for (int64_t i = 0; i < n; ++i) errors.run([&] {
        double p[3], s[3];
        for (int c = 0; c < 3; ++c) p[c] = positions[3 * i + c];
        for (int d = 0; d < 3; ++d)
            s[d] = inv[d][0] * (p[0] - origin[0]) + inv[d][1] * (p[1] - origin[1]) + inv[d][2] * (p[2] - origin[2]);
        for (int d = 0; d < 3; ++d) {
            if (pbc[d]) {
                double image = std::floor(s[d]);
                s[d] -= image;
                if (s[d] >= 1.0) s[d] -= 1.0, image += 1.0;  // s was a tiny negative number
                if (image != 0.0)
                    for (int c = 0; c < 3; ++c) p[c] -= M[c][d] * image;
            }
            lo_[d] = std::min(lo_[d], s[d]);
            hi_[d] = std::max(hi_[d], s[d]);
        }
        x[i] = p[0]; y[i] = p[1]; z[i] = p[2];
        sx[i] = s[0]; sy[i] = s[1]; sz[i] = s[2];
    });
    errors.rethrow();
    for (int d = 0; d < 3; ++d) {
        lo[d] = pbc[d] ? 0.0 : lo_[d];
        extent[d] = pbc[d] ? 1.0 : std::max(hi_[d] - lo_[d], 1e-9 / width[d]);  // all atoms in a plane
    }
}

double CellGrid::volume() const {
    return std::abs(det) * extent[0] * extent[1] * extent[2];
}

void CellGrid::bin(const double target_width[3]) {
    // Bounded number of bins whatever the caller asks for (sparse clusters, tiny cutoffs).
    const int64_t max_bins = 4 * n + 64;
    for (double scale = 1.0;; scale *= 1.25) {
        for (int d = 0; d < 3; ++d)
            nb[d] = int(std::clamp(std::floor(extent[d] * width[d] / (scale * target_width[d])), 1.0, double(1 << 20)));
        if (n_bins() <= max_bins) break;
    }
    for (int d = 0; d < 3; ++d) h[d] = extent[d] / nb[d];

    // Counting sort by bin.
    Buffer<int64_t> bin_of(n);
    start.assign(n_bins() + 1, 0);
    const Buffer<double>* s[3] = {&sx, &sy, &sz};
    ThreadErrors errors;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) errors.run([&] {
        int64_t b[3];
        for (int d = 0; d < 3; ++d)
            b[d] = std::clamp(int64_t(std::floor(((*s[d])[i] - lo[d]) / h[d])), int64_t(0), int64_t(nb[d] - 1));
        bin_of[i] = (b[2] * nb[1] + b[1]) * nb[0] + b[0];
    });
    errors.rethrow();
    for (int64_t i = 0; i < n; ++i) ++start[bin_of[i] + 1];
    for (int64_t b = 0; b < n_bins(); ++b) start[b + 1] += start[b];
    Buffer<int64_t> next(start.begin(), start.end() - 1);
    atom.resize(n);
    for (int64_t i = 0; i < n; ++i) atom[next[bin_of[i]]++] = i;
    Buffer<double> sorted(n);  // after each swap it holds the unsorted buffer, the next one's space
    for (Buffer<double>* v : {&x, &y, &z, &sx, &sy, &sz}) {
#pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < n; ++k) errors.run([&] { sorted[k] = (*v)[atom[k]]; });
        errors.rethrow();
        v->swap(sorted);
    }
}

// ---------------------------------------------------------------------------------------------
// k nearest neighbours: shells of bins (Chebyshev distance s = 0, 1, ...) around the atom's bin
// are searched until the k-th distance is below the distance from the atom to the searched
// region's boundary (perpendicular distances to its faces), so no unsearched atom can be closer.

namespace {

// The visits of one bin, shell by shell, extended on demand and shared by the atoms of the bin.
struct ShellCache {
    std::vector<Visit> visits;
    std::vector<size_t> shell_end;  // visits of shell s: shell_end[s - 1] (or 0) .. shell_end[s] - 1

    void reset() { visits.clear(); shell_end.clear(); }
    void add_shell(const CellGrid& g, const int b[3]) {
        const int s = int(shell_end.size());
        int first[3], last[3];
        for (int d = 0; d < 3; ++d) {
            first[d] = g.pbc[d] ? -s : std::max(-s, -b[d]);
            last[d] = g.pbc[d] ? s : std::min(s, g.nb[d] - 1 - b[d]);
        }
        if (double(last[0] - first[0] + 1) * (last[1] - first[1] + 1) * (last[2] - first[2] + 1) > kMaxVisits)
            throw std::invalid_argument("the nearest-neighbour search would visit more than " + std::to_string(int64_t(kMaxVisits)) +
                                        " bins and periodic images from one bin (a periodic cell far smaller than the "
                                        "distance to the neighbours asked for)");
        Visit v;
        for (int o2 = first[2]; o2 <= last[2]; ++o2)
            for (int o1 = first[1]; o1 <= last[1]; ++o1)
                for (int o0 = first[0]; o0 <= last[0]; ++o0) {
                    if (std::max({std::abs(o0), std::abs(o1), std::abs(o2)}) != s) continue;
                    const int o[3] = {o0, o1, o2};
                    if (g.neighbor(b, o, v)) visits.push_back(v);
                }
        shell_end.push_back(visits.size());
    }
};

struct Candidate {
    double d2;
    int64_t j;  // sorted index
    size_t e;   // its visit in the shell cache (an index: the cache may grow while an atom is searched)
};

// Distance from a point (reduced coordinates si) in bin b to the faces of the block of bins
// b - s .. b + s: no atom outside the block is closer. Infinite once the block covers all atoms.
double reach(const CellGrid& g, const int b[3], const double si[3], int s) {
    double r = kInf;
    for (int d = 0; d < 3; ++d) {
        if (g.pbc[d] || b[d] - s > 0) r = std::min(r, (si[d] - (g.lo[d] + (b[d] - s) * g.h[d])) * g.width[d]);
        if (g.pbc[d] || b[d] + s < g.nb[d] - 1) r = std::min(r, (g.lo[d] + (b[d] + s + 1) * g.h[d] - si[d]) * g.width[d]);
    }
    return r;
}

// General search by insertion into a sorted list of k, shell after shell. Returns the number found,
// and in `zeros` how many atoms it met at distance zero (the atom itself among them).
int search_shells(const CellGrid& g, int64_t i, const int b[3], int k, ShellCache& cache, Candidate* best,
                  int64_t& zeros) {
    const double xi = g.x[i], yi = g.y[i], zi = g.z[i];
    const double si[3] = {g.sx[i], g.sy[i], g.sz[i]};
    int count = 0;
    double worst = kInf;
    zeros = 0;
    for (int s = 0;; ++s) {
        if (size_t(s) == cache.shell_end.size()) cache.add_shell(g, b);
        for (size_t e = s == 0 ? 0 : cache.shell_end[s - 1]; e < cache.shell_end[s]; ++e) {
            const Visit& v = cache.visits[e];
            const double px = xi - v.shift[0], py = yi - v.shift[1], pz = zi - v.shift[2];
            for (int64_t j = v.begin; j < v.end; ++j) {
                const double dx = g.x[j] - px, dy = g.y[j] - py, dz = g.z[j] - pz;
                const double d2 = dx * dx + dy * dy + dz * dz;
                if (d2 == 0.0) ++zeros;
                if (!(d2 < worst) || d2 == 0.0) continue;
                int p = count < k ? count++ : k - 1;
                for (; p > 0 && best[p - 1].d2 > d2; --p) best[p] = best[p - 1];
                best[p] = Candidate{d2, j, e};
                if (count == k) worst = best[k - 1].d2;
            }
        }
        const double r = reach(g, b, si, s);
        if (r == kInf || (count == k && r > 0.0 && worst <= r * r)) return count;
    }
}

// Output rows are in the original atom order, so consecutive (bin-sorted) atoms write far apart:
// ask for the cache lines of a later atom's row early.
inline void prefetch_row(int64_t* neighbors, double* vectors, int64_t first, int64_t count) {
    for (int64_t m = 0; m < count; m += 8) __builtin_prefetch(neighbors + first + m, 1);
    for (int64_t m = 0; m < 3 * count; m += 8) __builtin_prefetch(vectors + 3 * first + m, 1);
}

// The k nearest of atom `atom` (rows neighbors[0..count), vectors[0..3 count), by increasing
// distance): neighbours at the same distance (within 1e-10, relative) are put in an order drawn
// from a hash of the two atom indices. In a perfect lattice rounding would order them alike on
// neighbouring atoms, and a descriptor over the first few of a shell (the 4 nearest of an fcc
// atom's 12) would see a pattern along the lattice that thermal motion never makes; a hashed order
// is what motion too small to matter gives. Rows without ties (thermal structures) are unchanged.
inline uint64_t pair_hash(int64_t i, int64_t j) {
    uint64_t h = uint64_t(i) * 0x9E3779B97F4A7C15ull ^ uint64_t(j) * 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 29);
}

void order_ties(int64_t atom, int count, int64_t* neighbors, double* vectors) {
    auto d2 = [&](int m) { const double* v = vectors + 3 * m; return v[0] * v[0] + v[1] * v[1] + v[2] * v[2]; };
    for (int first = 0; first + 1 < count;) {
        int end = first + 1;
        while (end < count && d2(end) - d2(first) <= 2e-10 * d2(end)) ++end;
        for (int m = first + 1; m < end; ++m)  // insertion sort of the run by hash
            for (int q = m; q > first && pair_hash(atom, neighbors[q]) < pair_hash(atom, neighbors[q - 1]); --q) {
                std::swap(neighbors[q], neighbors[q - 1]);
                for (int c = 0; c < 3; ++c) std::swap(vectors[3 * q + c], vectors[3 * (q - 1) + c]);
            }
        first = end;
    }
}

struct Pick {
    double d2;
    uint32_t c;  // candidate index in the block
};

constexpr size_t kRankSorted = 64;  // at most this many gathered candidates are put in order by their ranks

// The candidates within radius2 (not at distance zero: the atom itself), in candidate order: their
// squared distances and candidate indices; returns how many. Both arrays need block.size + 8
// entries (the vector loop stores whole registers). Where AVX-512 is there, 8 candidates at a time:
// a branchless scalar loop spent most of the search's time here.
size_t gather_within(const Block& block, double radius2, double* __restrict d2_out, uint32_t* __restrict c_out) {
    size_t count = 0, c = 0;
#if defined(__AVX512F__) && defined(__AVX512VL__)
    const __m512d limit = _mm512_set1_pd(radius2), zero = _mm512_setzero_pd();
    __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (; c + 8 <= block.size; c += 8) {
        const __m512d d2 = _mm512_loadu_pd(block.d2.data() + c);
        const __mmask8 keep = _mm512_cmp_pd_mask(d2, limit, _CMP_LE_OQ) & _mm512_cmp_pd_mask(d2, zero, _CMP_NEQ_UQ);
        _mm512_storeu_pd(d2_out + count, _mm512_maskz_compress_pd(keep, d2));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(c_out + count), _mm256_maskz_compress_epi32(keep, index));
        count += size_t(__builtin_popcount(keep));
        index = _mm256_add_epi32(index, _mm256_set1_epi32(8));
    }
#endif
    for (; c < block.size; ++c) {
        const double d2 = block.d2[c];
        d2_out[count] = d2;
        c_out[count] = uint32_t(c);
        count += (d2 <= radius2) & (d2 != 0.0);
    }
    return count;
}

// Work space of select_nearest, per thread.
struct Gathered {
    Buffer<double> d2;
    Buffer<uint32_t> c;
    Buffer<Pick> picks;
    void fit(size_t candidates) {
        if (d2.size() < candidates + 8) d2.resize(candidates + 8), c.resize(candidates + 8), picks.resize(candidates + 8);
    }
};

// Fast path for the usual case: of the candidates in the 3 x 3 x 3 block of bins around the
// atom's bin (distances in block.d2), those within radius2 are gathered; if there are at least k
// of them and radius2 does not exceed the squared reach of the block, the k nearest are among them
// (sorted into out[0..k), ties in candidate order). Returns false otherwise.
bool select_nearest(const Block& block, int k, double radius2, Gathered& g, Pick* out) {
    const size_t count = gather_within(block, radius2, g.d2.data(), g.c.data());
    if (count < size_t(k)) return false;
    const double* d2 = g.d2.data();
    if (count <= kRankSorted) {
        // Usually a few more than k: each one's rank (the closer ones, and the equally close gathered
        // before it) puts it in place, without the branches a sort mispredicts.
        for (size_t m = 0; m < count; ++m) {
            const double own = d2[m];
            size_t rank = 0;
            for (size_t q = 0; q < count; ++q) rank += (d2[q] < own) | ((d2[q] == own) & (q < m));
            if (rank < size_t(k)) out[rank] = Pick{own, g.c[m]};
        }
        return true;
    }
    Pick* picks = g.picks.data();
    for (size_t m = 0; m < count; ++m) picks[m] = Pick{d2[m], g.c[m]};
    const auto closer = [](const Pick& p, const Pick& q) { return p.d2 < q.d2 || (p.d2 == q.d2 && p.c < q.c); };
    std::nth_element(picks, picks + k - 1, picks + count, closer);  // the k-th in place, closer ones before it
    std::sort(picks, picks + k - 1, closer);
    std::copy(picks, picks + k, out);
    return true;
}

}  // namespace

SpatialBins BinGrid::view() const {
    SpatialBins v;
    v.order = order.data();
    v.start = start.data();
    for (int d = 0; d < 3; ++d) v.shape[d] = shape[d], v.periodic[d] = periodic[d];
    return v;
}

namespace {

// Hands the grid's bins on to the caller (the grid is done with them).
void take_bins(CellGrid& g, BinGrid& bins) {
    bins.order = std::move(g.atom);
    bins.start = std::move(g.start);
    for (int d = 0; d < 3; ++d) {
        bins.shape[d] = g.nb[d];
        bins.periodic[d] = g.pbc[d];
    }
}

}  // namespace

BinGrid spatial_bins(int64_t n, const double* positions, const double* cell, const bool* pbc, double width) {
    BinGrid bins;
    if (n == 0) {
        bins.start.assign(2, 0);
        return bins;
    }
    CellGrid g(n, positions, cell, pbc);
    const double w = std::max(width, std::cbrt(g.volume() / double(n)));
    const double widths[3] = {w, w, w};
    g.bin(widths);
    take_bins(g, bins);
    return bins;
}

void nearest_neighbors(int64_t n, const double* positions, const double* cell, const bool* pbc, int k,
                       int64_t* neighbors, double* vectors, BinGrid* bins) {
    if (n == 0) return;
    CellGrid g(n, positions, cell, pbc);
    // Bins about as wide as the radius of the sphere holding k atoms at the mean density (at least
    // two atoms per bin), so that the block of 3 x 3 x 3 bins around an atom usually holds its k
    // nearest neighbours; the factor 1.2 was tuned on thermal fcc and bcc (k = 12, 24, 40; 0.8
    // made k = 40 1.7x slower, as the block then often missed some and the shell search took over).
    const double per_bin = std::max(2.0, 1.2 * 3.0 * k / (4.0 * M_PI));
    const double width = std::cbrt(per_bin * g.volume() / double(n));
    const double widths[3] = {width, width, width};
    g.bin(widths);

    Coincidence coincidence;
    ThreadErrors errors;
#pragma omp parallel
    {
        ShellCache cache;
        std::vector<Visit> visits;
        Block block;
        Buffer<Pick> buffer;
        Gathered gathered;
        Buffer<Candidate> best;
        errors.run([&] { best.resize(k); });
        // The k-th distance of the previous atom, widened: usually a tighter radius than the
        // block's reach for gathering candidates, so that fewer need sorting.
        double guess2 = kInf;
#pragma omp for schedule(dynamic, 16)
        for (int64_t bin = 0; bin < g.n_bins(); ++bin) {
            if (g.start[bin] == g.start[bin + 1]) continue;
            errors.run([&] {
                int b[3];
                g.decode(bin, b);
                cache.reset();
                visits.clear();
                for (int o2 = -1; o2 <= 1; ++o2)
                    for (int o1 = -1; o1 <= 1; ++o1) g.add_row(b, Row{o1, o2, -1, 1}, visits);
                block.build(g, bin, visits);
                buffer.resize(std::max(size_t(k), size_t(1)));
                gathered.fit(block.size);
                for (int64_t i = g.start[bin]; i < g.start[bin + 1]; ++i) {
                    if (i + 4 < n) prefetch_row(neighbors, vectors, g.atom[i + 4] * k, k);
                    const double xi = g.x[i], yi = g.y[i], zi = g.z[i];
                    const double si[3] = {g.sx[i], g.sy[i], g.sz[i]};
                    const double r = reach(g, b, si, 1), r2 = r * r;
                    bool done = false;
                    int64_t zeros = 0;  // the atom itself, and any other atom at its position
                    if (r > 0.0 && r < kInf) {
                        block.distances(xi, yi, zi, r2, zeros);  // the block reaches r: it holds them all
                        done = guess2 < r2 && select_nearest(block, k, guess2, gathered, buffer.data());
                        if (!done) done = select_nearest(block, k, r2, gathered, buffer.data());
                        if (done) guess2 = 1.2 * buffer[k - 1].d2;
                    }
                    const int64_t row = g.atom[i] * k;
                    if (done) {
                        if (zeros > 1) coincidence.note(g.atom[i]);
                        for (int m = 0; m < k; ++m) {
                            const size_t c = buffer[m].c;
                            neighbors[row + m] = g.atom[block.j[c]];
                            double* out = vectors + 3 * (row + m);
                            out[0] = block.x[c] - xi;
                            out[1] = block.y[c] - yi;
                            out[2] = block.z[c] - zi;
                        }
                        order_ties(g.atom[i], k, neighbors + row, vectors + 3 * row);
                        continue;
                    }
                    const int count = search_shells(g, i, b, k, cache, best.data(), zeros);
                    if (zeros > 1) coincidence.note(g.atom[i]);
                    for (int m = 0; m < k; ++m) {
                        double* out = vectors + 3 * (row + m);
                        if (m < count) {
                            const Candidate& c = best[m];
                            const double* shift = cache.visits[c.e].shift;
                            neighbors[row + m] = g.atom[c.j];
                            out[0] = g.x[c.j] + shift[0] - xi;
                            out[1] = g.y[c.j] + shift[1] - yi;
                            out[2] = g.z[c.j] + shift[2] - zi;
                        } else {
                            neighbors[row + m] = -1;
                            out[0] = out[1] = out[2] = 0.0;
                        }
                    }
                    order_ties(g.atom[i], count, neighbors + row, vectors + 3 * row);
                }
            });
        }
    }
    errors.rethrow();
    coincidence.check(positions);
    if (bins) take_bins(g, *bins);
}

// ---------------------------------------------------------------------------------------------
// Cutoff search: every bin visits a fixed stencil of bin offsets, pruned to the offsets whose bins
// can hold a pair within the cutoff (exact minimum distance between the two parallelepipeds).

std::vector<Row> stencil(const CellGrid& g, double cutoff) {
    double reach[3], visits = 1.0;
    int longest = 0;
    for (int d = 0; d < 3; ++d) {
        reach[d] = std::ceil(cutoff / (g.h[d] * g.width[d]));
        if (!g.pbc[d]) reach[d] = std::min(reach[d], double(g.nb[d] - 1));
        visits *= 2.0 * reach[d] + 1.0;
        if (reach[d] / g.nb[d] > reach[longest] / g.nb[longest]) longest = d;
    }
    if (!(visits <= kMaxVisits)) {
        char text[320];
        std::snprintf(text, sizeof text,
                      "the search radius (%.6g) reaches across %.3g periodic images of the cell along cell vector %d: "
                      "%.3g bins and images to visit from every bin, more than the limit of %.0e (a cell far smaller "
                      "than the search radius)",
                      cutoff, reach[longest] / g.nb[longest], longest + 1, visits, kMaxVisits);
        throw std::invalid_argument(text);
    }
    const int r0 = int(reach[0]), r1 = int(reach[1]), r2 = int(reach[2]);
    std::vector<Row> rows;
    for (int o2 = -r2; o2 <= r2; ++o2)
        for (int o1 = -r1; o1 <= r1; ++o1) {
            Row row{o1, o2, r0 + 1, -r0 - 1};
            for (int o0 = -r0; o0 <= r0; ++o0) {
                const int o[3] = {o0, o1, o2};
                double lo[3], hi[3];  // reduced separations of points in the two bins
                for (int d = 0; d < 3; ++d) lo[d] = (o[d] - 1) * g.h[d], hi[d] = (o[d] + 1) * g.h[d];
                if (min_norm2_in_box(g.G, lo, hi) <= cutoff * cutoff * (1.0 + 1e-9))
                    row.first = std::min(row.first, o0), row.last = std::max(row.last, o0);
            }
            if (row.first <= row.last) rows.push_back(row);
        }
    return rows;
}

CutoffSearch::CutoffSearch(int64_t n, const double* positions, const double* cell, const bool* pbc, double cutoff)
    : positions_(positions), cutoff_(cutoff) {
    if (!(cutoff > 0.0) || !std::isfinite(cutoff)) throw std::invalid_argument("the cutoff must be positive and finite");
    grid_ = std::make_unique<CellGrid>(n, positions, cell, pbc);
    if (n == 0) return;
    const CellGrid& g = *grid_;
    // The bonds to expect at the mean density, the sphere cut to the atoms' extent along open
    // axes (a slab of thickness t << cutoff: pi cutoff^2 t per atom), refused before any search if
    // they could not be held.
    double sphere = 4.0 / 3.0 * M_PI * cutoff * cutoff * cutoff;
    for (int d = 0; d < 3; ++d)
        if (!g.pbc[d]) sphere *= std::min(1.0, 0.75 * g.extent[d] * g.width[d] / cutoff);
    double bonds = double(n) * double(n) / g.volume() * sphere;
    if (!(pbc[0] || pbc[1] || pbc[2])) bonds = std::min(bonds, double(n) * double(n - 1));
    require_memory(bonds * (sizeof(int64_t) + 3 * sizeof(double)),
                   "the cutoff search (about " + std::to_string(int64_t(std::min(bonds, 9e18))) + " bonds)");
    // Bins as wide as the cutoff, so that a bin's candidates are its 3 x 3 x 3 block (more for
    // small periodic cells). Finer bins fit the sphere more tightly but every bin copies its block
    // of candidates, which then serves fewer atoms: measured slower for 3 and 6 A in fcc Cu. Not
    // below one atom per bin on average (tiny cutoffs).
    const double width = std::max(cutoff, std::cbrt(grid_->volume() / double(n)));
    const double widths[3] = {width, width, width};
    grid_->bin(widths);
}

CutoffSearch::~CutoffSearch() = default;

BinGrid CutoffSearch::take_bins() {
    BinGrid bins;
    if (grid_->n == 0) {
        bins.start.assign(2, 0);
        return bins;
    }
    mlclass::take_bins(*grid_, bins);
    return bins;
}


void CutoffSearch::count(int64_t* offsets) const {
    const CellGrid& g = *grid_;
    const double cutoff2 = cutoff_ * cutoff_;
    offsets[0] = 0;
    Coincidence coincidence;
    for_each_atom(g, cutoff_, [&](int64_t i, Block& block) {
        // the atom itself, at distance zero, is among the candidates
        int64_t zeros;
        offsets[g.atom[i] + 1] = block.distances(g.x[i], g.y[i], g.z[i], cutoff2, zeros) - 1;
        if (zeros > 1) coincidence.note(g.atom[i]);
    });
    coincidence.check(positions_);
    for (int64_t i = 0; i < g.n; ++i) offsets[i + 1] += offsets[i];
}

void CutoffSearch::fill(const int64_t* offsets, int64_t* neighbors, double* vectors) const {
    const CellGrid& g = *grid_;
    const double cutoff2 = cutoff_ * cutoff_;
    constexpr int64_t ahead = 4;
    for_each_atom(g, cutoff_, [&](int64_t i, Block& block) {
        if (i + ahead < g.n) {
            const int64_t later = g.atom[i + ahead];
            prefetch_row(neighbors, vectors, offsets[later], offsets[later + 1] - offsets[later]);
        }
        const double xi = g.x[i], yi = g.y[i], zi = g.z[i];
        block.distances(xi, yi, zi, cutoff2);  // the same arithmetic as in count()
        block.d2[block.self + (i - block.first)] = kInf;  // the atom itself
        // branch-free selection of the candidate indices, then the bonds
        const double* __restrict d2 = block.d2.data();
        uint32_t* __restrict pick = block.pick.data();
        size_t count = 0;
        for (size_t c = 0; c < block.size; ++c) {
            pick[count] = uint32_t(c);
            count += d2[c] <= cutoff2;
        }
        const int64_t first = offsets[g.atom[i]];
        count = std::min(count, size_t(offsets[g.atom[i] + 1] - first));  // never past the row (equal anyway)
        const double *bx = block.x.data(), *by = block.y.data(), *bz = block.z.data();
        const int64_t *bj = block.j.data(), *atom = g.atom.data();
        int64_t* __restrict nb_out = neighbors + first;
        double* __restrict vec_out = vectors + 3 * first;
        for (size_t m = 0; m < count; ++m) {
            const uint32_t c = pick[m];
            nb_out[m] = atom[bj[c]];
            vec_out[3 * m] = bx[c] - xi;
            vec_out[3 * m + 1] = by[c] - yi;
            vec_out[3 * m + 2] = bz[c] - zi;
        }
    });
}

}  // namespace mlclass
