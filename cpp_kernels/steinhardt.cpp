// Steinhardt bond-order invariants q_l, w^_l and their neighbour averages (Lechner & Dellago 2008).
#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <vector>

#include "kernels.hpp"
#include "spherical_harmonics.hpp"
#include "threads.hpp"

namespace mlclass {

namespace {

// The coupling rows of one degree with the same m1 = -mu: m2 = m2_first .. m2_first+count-1 and
// m3 = mu - m2 (both >= 0, the table keeps one of each mirror pair), coefficients from `coeff`.
struct Run {
    int mu, m2_first, count;
    int64_t coeff;
};

// One requested degree: its column in the output block, its slot in a row of q_lm, and its
// coupling rows grouped into runs.
struct Degree {
    int l;
    int column;  // index into the list of degrees given by the caller
    int slot;    // offset of q_l0 in a row of q_lm
    std::vector<Run> runs;
};

std::vector<Run> coupling_runs(const WignerTable& wigner, int column) {
    std::vector<Run> runs;
    for (int64_t row = wigner.start[column]; row < wigner.start[column + 1]; ++row) {
        const int32_t* m = wigner.m + 3 * row;
        if (m[1] < 0 || m[2] < 0 || m[0] + m[1] + m[2] != 0)
            throw std::invalid_argument("Wigner coupling rows must have m1 = -(m2 + m3) and m2, m3 >= 0");
        if (!runs.empty() && runs.back().mu == -m[0] && runs.back().m2_first + runs.back().count == m[1])
            ++runs.back().count;
        else
            runs.push_back(Run{-m[0], m[1], 1, row});
    }
    return runs;
}

// q_l and w^_l from q_lm (m = 0..l); q_l,-m = (-1)^m conj(q_lm) is never stored.
//   w = sum over runs of Re(q_{l,-mu} P_mu),  P_mu = sum_m2 coeff q_{l,m2} q_{l,mu-m2}
inline void invariants(const double* re, const double* im, const Degree& d, const double* coeff, bool with_wl,
                       double& q, double& w) {
    const int l = d.l;
    double s = re[0] * re[0] + im[0] * im[0];
    for (int m = 1; m <= l; ++m) s += 2.0 * (re[m] * re[m] + im[m] * im[m]);
    q = std::sqrt(4.0 * M_PI / (2 * l + 1) * s);
    w = 0.0;
    if (!with_wl || !(s > 0.0) || d.runs.empty()) return;
    double sum = 0.0;
    for (const Run& run : d.runs) {
        const double* c = coeff + run.coeff;
        double pr = 0.0, pi = 0.0;
        for (int j = 0, b = run.m2_first, e = run.mu - run.m2_first; j < run.count; ++j, ++b, --e) {
            pr += c[j] * (re[b] * re[e] - im[b] * im[e]);
            pi += c[j] * (re[b] * im[e] + im[b] * re[e]);
        }
        const double sign = (run.mu & 1) ? -1.0 : 1.0;
        sum += sign * (re[run.mu] * pr + im[run.mu] * pi);
    }
    w = sum / (s * std::sqrt(s));
}

// Per-thread work space for one atom.
struct AtomScratch {
    std::vector<double> x, y, z, w, acc_re, acc_im;
};

// q_lm (m >= 0) of atom i for the given degrees, written to re/im at each degree's slot (0 for
// an atom without neighbours); counts bonds of zero length.
void atom_qlm(const NeighborList& nl, int64_t i, const LegendreRows& rows, const std::vector<unsigned char>& wanted,
              const std::vector<Degree>& degrees, AtomScratch& s, double* re, double* im, int64_t& zero_length) {
    const int64_t begin = nl.offsets[i];
    const int n = int(nl.offsets[i + 1] - begin);
    s.x.resize(n); s.y.resize(n); s.z.resize(n); s.w.resize(n);
    double weight_sum = 0.0;
    for (int k = 0; k < n; ++k) {
        const double* v = nl.vectors + 3 * (begin + k);
        const double r = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
        if (!(r > 0.0)) { ++zero_length; s.x[k] = s.y[k] = s.w[k] = 0.0; s.z[k] = 1.0; continue; }
        s.x[k] = v[0] / r; s.y[k] = v[1] / r; s.z[k] = v[2] / r;
        s.w[k] = nl.weights ? nl.weights[begin + k] : 1.0;
        weight_sum += s.w[k];
    }
    const size_t table = size_t(rows.lmax + 1) * rows.width;
    s.acc_re.assign(table, 0.0);
    s.acc_im.assign(table, 0.0);
    accumulate_ylm(rows, n, s.x.data(), s.y.data(), s.z.data(), s.w.data(), wanted.data(), s.acc_re.data(),
                   s.acc_im.data());
    const double norm = weight_sum > 0.0 ? 1.0 / weight_sum : 0.0;
    for (const Degree& d : degrees) {
        for (int m = 0; m <= d.l; ++m) {
            re[d.slot + m] = s.acc_re[d.l * rows.width + m] * norm;
            im[d.slot + m] = s.acc_im[d.l * rows.width + m] * norm;
        }
    }
}

}  // namespace

void spherical_harmonics(int64_t n, const double* vectors, int lmax, double* out) {
    const LegendreRows rows(lmax);
    const std::vector<unsigned char> wanted(lmax + 1, 1);
    const int width = (lmax + 1) * (lmax + 1);
#pragma omp parallel
    {
        std::vector<double> re, im;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < n; ++b) {
            const double* v = vectors + 3 * b;
            const double r = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
            const double x = v[0] / r, y = v[1] / r, z = v[2] / r, w = 1.0;
            re.assign(size_t(lmax + 1) * rows.width, 0.0);
            im.assign(size_t(lmax + 1) * rows.width, 0.0);
            accumulate_ylm(rows, 1, &x, &y, &z, &w, wanted.data(), re.data(), im.data());
            double* row = out + 2 * width * b;
            for (int l = 0; l <= lmax; ++l) {
                for (int m = 0; m <= l; ++m) {
                    const double yr = re[l * rows.width + m], yi = im[l * rows.width + m];
                    const double sign = (m & 1) ? -1.0 : 1.0;
                    row[2 * (l * l + l + m)] = yr;
                    row[2 * (l * l + l + m) + 1] = yi;
                    row[2 * (l * l + l - m)] = sign * yr;
                    row[2 * (l * l + l - m) + 1] = -sign * yi;
                }
            }
        }
    }
}

namespace {

// Ranks of the atoms in the processing order (the inverse permutation), or the identity.
std::vector<int64_t> ranks_of(const int64_t* order, int64_t n) {
    std::vector<int64_t> rank(n);
    for (int64_t k = 0; k < n; ++k) rank[order ? order[k] : k] = k;
    return rank;
}

// Rank r seen from rank k of a cyclic order: the representative r + j n (j = -1, 0, 1) closest to k.
inline int64_t cyclic(int64_t r, int64_t k, int64_t n) {
    const int64_t d = r - k;
    return d > n / 2 ? r - n : (d < -(n / 2) ? r + n : r);
}

}  // namespace

// The neighbour average needs q_lm of every neighbour. Keeping q_lm of all atoms would cost
// 16 * sum(l+1) bytes per atom (1.4 kB for l = 2..12), more than the neighbour list and the
// output together. Instead the atoms are processed in `order` in blocks, and q_lm lives in a ring
// buffer that holds just the window of ranks the current block reaches. The order is treated as
// cyclic: with spatial slabs across a periodic cell, the last slab touches the first, so the
// window may start at negative ranks (the last atoms, computed once more at the beginning) and
// end beyond n. A neighbour outside the window (when the memory budget is smaller than the
// window, or the order is not local) has its q_lm recomputed.
void steinhardt(const NeighborList& nl, const int64_t* order, const int32_t* degrees, int n_degrees, bool with_wl,
                bool averaged, const WignerTable& wigner, int64_t scratch_bytes, double* out) {
    const int64_t n = nl.n_atoms;
    const int n_blocks = 1 + (with_wl ? 1 : 0) + (averaged ? 1 + (with_wl ? 1 : 0) : 0);
    const int width = n_blocks * n_degrees;
    const int col_w = n_degrees, col_qbar = n_degrees * (with_wl ? 2 : 1), col_wbar = col_qbar + n_degrees;
    int64_t zero_length = 0;

    std::vector<Degree> all;
    int lmax = 0, size = 0;
    for (int c = 0; c < n_degrees; ++c) {
        all.push_back({degrees[c], c, size, coupling_runs(wigner, c)});
        lmax = std::max(lmax, degrees[c]);
        size += degrees[c] + 1;
    }
    const LegendreRows rows(lmax);
    std::vector<unsigned char> wanted(lmax + 1, 0);
    for (const Degree& d : all) wanted[d.l] = 1;
    // One row of q_lm: real parts, then imaginary parts, padded to whole 8-double blocks so the
    // averaging loop works on fixed-size blocks.
    const int stride = (2 * size + 7) / 8 * 8;

    auto write = [&](int64_t i, const double* re, int column_q, int column_w) {
        for (const Degree& d : all) {
            double q, w;
            invariants(re + d.slot, re + size + d.slot, d, wigner.coeff, with_wl, q, w);
            out[i * width + column_q + d.column] = q;
            if (with_wl) out[i * width + column_w + d.column] = w;
        }
    };
    auto compute_row = [&](int64_t i, AtomScratch& scratch, double* row, int64_t& zeros) {
        atom_qlm(nl, i, rows, wanted, all, scratch, row, row + size, zeros);
        std::fill(row + 2 * size, row + stride, 0.0);
    };

    if (!averaged) {
#pragma omp parallel reduction(+ : zero_length)
        {
            AtomScratch scratch;
            std::vector<double> row(stride);
#pragma omp for schedule(dynamic, 256)
            for (int64_t i = 0; i < n; ++i) {
                compute_row(i, scratch, row.data(), zero_length);
                write(i, row.data(), 0, col_w);
            }
        }
        if (zero_length > 0) throw_zero_length_bonds(zero_length);
        return;
    }

    if (n == 0) return;
    // The rank of every bond's neighbour, looked up once: the passes below visit the atoms in rank
    // order, so these lookups are scattered over the whole rank array and would miss the cache each time.
    std::vector<int64_t> neighbor_rank(nl.offsets[n]);
    {
        const std::vector<int64_t> rank = ranks_of(order, n);
#pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < nl.offsets[n]; ++b) neighbor_rank[b] = rank[nl.neighbors[b]];
    }
    auto atom_at = [&](int64_t k) {  // k: a rank, possibly shifted by +-n
        k = k < 0 ? k + n : (k >= n ? k - n : k);
        return order ? order[k] : k;
    };
    const int64_t budget_rows = std::max<int64_t>(1, scratch_bytes / int64_t(sizeof(double) * stride));
    const int64_t block = std::min<int64_t>({512, budget_rows, n});
    const int64_t n_chunks = (n + block - 1) / block;
    // The window of (shifted) ranks each block reaches: [reach_lo, reach_hi).
    std::vector<int64_t> reach_lo(n_chunks), reach_hi(n_chunks);
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < n_chunks; ++c) {
        const int64_t first = c * block, last = std::min(n, first + block);
        int64_t lo = first, hi = last;
        for (int64_t k = first; k < last; ++k) {
            const int64_t i = atom_at(k);
            for (int64_t b = nl.offsets[i]; b < nl.offsets[i + 1]; ++b) {
                const int64_t r = cyclic(neighbor_rank[b], k, n);
                lo = std::min(lo, r);
                hi = std::max(hi, r + 1);
            }
        }
        reach_lo[c] = lo;
        reach_hi[c] = hi;
    }
    int64_t span = block;
    for (int64_t c = 0; c < n_chunks; ++c) span = std::max(span, reach_hi[c] - reach_lo[c]);
    const int64_t capacity = std::min({span, budget_rows, n});  // >= block
    const auto ring = large_array(size_t(capacity) * stride);
    // Rows before `start` were never computed.
    const int64_t start = std::max(std::min<int64_t>(0, reach_lo[0]), -(n - block));

#pragma omp parallel reduction(+ : zero_length)
    {
        int64_t computed = start;  // ranks [computed - capacity, computed) are in the ring (same in every thread)
        AtomScratch scratch;
        std::vector<double> acc(stride), spare;
        std::vector<const double*> sources;
        for (int64_t c = 0; c < n_chunks; ++c) {
            const int64_t first = c * block, last = std::min(n, first + block);
            // Extend the window to what this block reaches, without evicting the block itself.
            const int64_t target = std::max({computed, last, std::min(reach_hi[c], reach_lo[c] + capacity)});
            // Rank r of the window [target - capacity, target) lives in slot r mod capacity.
            const int64_t base = target - capacity, base_slot = ((base % capacity) + capacity) % capacity;
            auto ring_row = [&](int64_t r) {
                int64_t slot = r - base + base_slot;
                slot -= slot >= capacity ? capacity : 0;
                return ring.get() + slot * stride;
            };
#pragma omp for schedule(dynamic, 32)
            for (int64_t k = computed; k < target; ++k) {
                // Rows that would be evicted again at once are not stored (two threads would
                // write the same slot), but every atom's q_l and w_l are written once.
                const bool in_ring = k >= target - capacity, first_time = k >= 0 && k < n;
                if (!in_ring && !first_time) continue;
                const int64_t i = atom_at(k);
                double* row = in_ring ? ring_row(k) : acc.data();
                int64_t ignored = 0;
                compute_row(i, scratch, row, first_time ? zero_length : ignored);
                if (first_time) write(i, row, 0, col_w);
            }
            computed = target;  // after the implicit barrier: the whole window is ready
            const int64_t oldest = std::max(start, target - capacity);
#pragma omp for schedule(dynamic, 32)
            for (int64_t k = first; k < last; ++k) {
                if (k + 2 < last) {  // the neighbours' rows are scattered over the ring: ask for later ones now
                    const int64_t ahead = atom_at(k + 2);
                    for (int64_t b = nl.offsets[ahead]; b < nl.offsets[ahead + 1]; ++b) {
                        const int64_t r = cyclic(neighbor_rank[b], k + 2, n);
                        if (r >= oldest && r < target)
                            for (int t = 0; t < stride; t += 8) __builtin_prefetch(ring_row(r) + t);
                    }
                }
                const int64_t i = atom_at(k), begin = nl.offsets[i], count = nl.offsets[i + 1] - begin;
                sources.assign(1, ring_row(k));
                spare.resize(size_t(count) * stride);
                for (int64_t b = 0; b < count; ++b) {
                    const int64_t r = cyclic(neighbor_rank[begin + b], k, n);
                    if (r >= oldest && r < target) {
                        sources.push_back(ring_row(r));
                    } else {
                        double* row = spare.data() + b * stride;
                        int64_t ignored = 0;  // counted when that atom's own row is computed
                        compute_row(nl.neighbors[begin + b], scratch, row, ignored);
                        sources.push_back(row);
                    }
                }
                double* __restrict sum = acc.data();
                std::copy(sources[0], sources[0] + stride, sum);
                for (size_t u = 1; u < sources.size(); ++u) {
                    const double* __restrict src = sources[u];
#pragma omp simd
                    for (int t = 0; t < stride; ++t) sum[t] += src[t];
                }
                const double norm = 1.0 / double(count + 1);
#pragma omp simd
                for (int t = 0; t < stride; ++t) sum[t] *= norm;
                write(i, sum, col_qbar, col_wbar);
            }
        }
    }
    if (zero_length > 0) throw_zero_length_bonds(zero_length);
}

}  // namespace mlclass
