// Steinhardt bond-order invariants q_l, w^_l and their neighbour averages (Lechner & Dellago 2008).
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "kernels.hpp"
#include "spherical_harmonics.hpp"
#include "threads.hpp"

namespace mlclass {

namespace {

// One degree inside a group: its column in the output block and its slot in the q_lm storage.
struct Degree {
    int l;
    int column;  // index into the list of degrees given by the caller
    int slot;    // offset of q_l0 in the per-atom q_lm storage of the group
};

// q_l and w^_l from q_lm (m = 0..l). q_l,-m = (-1)^m conj(q_lm) is never stored.
inline void invariants(const double* re, const double* im, int l, const WignerTable& wigner, int column,
                       bool with_wl, double& q, double& w) {
    double s = re[0] * re[0] + im[0] * im[0];
    for (int m = 1; m <= l; ++m) s += 2.0 * (re[m] * re[m] + im[m] * im[m]);
    q = std::sqrt(4.0 * M_PI / (2 * l + 1) * s);
    w = 0.0;
    const int64_t first = wigner.start[column], last = wigner.start[column + 1];
    if (!with_wl || !(s > 0.0) || first == last) return;
    // q_lm for m = -l..l at index m + l, so the coupling rows need no case distinction
    double fr[2 * kMaxDegree + 1], fi[2 * kMaxDegree + 1];
    for (int m = 0; m <= l; ++m) {
        const double sign = (m & 1) ? -1.0 : 1.0;
        fr[l + m] = re[m];
        fi[l + m] = im[m];
        fr[l - m] = sign * re[m];
        fi[l - m] = -sign * im[m];
    }
    double sum = 0.0;
    for (int64_t row = first; row < last; ++row) {
        const int32_t* m = wigner.m + 3 * row;
        const int a = l + m[0], b = l + m[1], c = l + m[2];
        const double abr = fr[a] * fr[b] - fi[a] * fi[b], abi = fr[a] * fi[b] + fi[a] * fr[b];
        sum += wigner.coeff[row] * (abr * fr[c] - abi * fi[c]);
    }
    w = sum / (s * std::sqrt(s));
}

// Per-thread work space for one atom.
struct AtomScratch {
    std::vector<double> x, y, z, w, acc_re, acc_im;
};

// q_lm (m >= 0) of atom i for the degrees of `group`, written to re/im at each degree's slot.
// Returns false if the atom has no neighbours (q_lm = 0); counts bonds of zero length.
bool atom_qlm(const NeighborList& nl, int64_t i, const LegendreRows& rows, const std::vector<unsigned char>& wanted,
              const std::vector<Degree>& group, AtomScratch& s, double* re, double* im, int64_t& zero_length) {
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
    for (const Degree& d : group) {
        for (int m = 0; m <= d.l; ++m) {
            re[d.slot + m] = s.acc_re[d.l * rows.width + m] * norm;
            im[d.slot + m] = s.acc_im[d.l * rows.width + m] * norm;
        }
    }
    return weight_sum > 0.0;
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

void steinhardt(const NeighborList& nl, const int32_t* degrees, int n_degrees, bool with_wl, bool averaged,
                const WignerTable& wigner, int64_t scratch_complex_per_atom, double* out) {
    const int64_t n = nl.n_atoms;
    const int n_blocks = 1 + (with_wl ? 1 : 0) + (averaged ? 1 + (with_wl ? 1 : 0) : 0);
    const int width = n_blocks * n_degrees;
    const int col_w = n_degrees, col_qbar = n_degrees * (with_wl ? 2 : 1), col_wbar = col_qbar + n_degrees;
    int64_t zero_length = 0;

    // Split the degrees into groups whose q_lm fit the scratch budget (only needed for averaging).
    std::vector<std::vector<Degree>> groups;
    int64_t used = 0;
    for (int c = 0; c < n_degrees; ++c) {
        const int l = degrees[c];
        if (groups.empty() || (averaged && used + l + 1 > scratch_complex_per_atom)) { groups.emplace_back(); used = 0; }
        groups.back().push_back({l, c, int(used)});
        used += l + 1;
    }

    for (const std::vector<Degree>& group : groups) {
        int lmax = 0, size = 0;
        for (const Degree& d : group) { lmax = std::max(lmax, d.l); size = std::max(size, d.slot + d.l + 1); }
        const LegendreRows rows(lmax);
        std::vector<unsigned char> wanted(lmax + 1, 0);
        for (const Degree& d : group) wanted[d.l] = 1;
        // q_lm of every atom (real parts, then imaginary parts), kept only for the average; left
        // uninitialised (every row is written before it is read).
        // Rows are padded to whole 8-double blocks so the averaging loop works on fixed-size blocks.
        const int stride = (2 * size + 7) / 8 * 8;
        std::unique_ptr<double[]> qlm(averaged ? new double[size_t(n) * stride] : nullptr);

#pragma omp parallel reduction(+ : zero_length)
        {
            AtomScratch scratch;
            std::vector<double> acc(stride);
#pragma omp for schedule(dynamic, 256)
            for (int64_t i = 0; i < n; ++i) {
                double* re = averaged ? qlm.get() + i * stride : acc.data();
                double* im = re + size;
                atom_qlm(nl, i, rows, wanted, group, scratch, re, im, zero_length);
                if (averaged) std::fill(re + 2 * size, re + stride, 0.0);
                for (const Degree& d : group) {
                    double q, w;
                    invariants(re + d.slot, im + d.slot, d.l, wigner, d.column, with_wl, q, w);
                    out[i * width + d.column] = q;
                    if (with_wl) out[i * width + col_w + d.column] = w;
                }
            }
            if (averaged) {
                // The averaging pass reads q_lm of neighbours written by other threads.
#pragma omp barrier
#pragma omp for schedule(dynamic, 256)
                for (int64_t i = 0; i < n; ++i) {
                    // The neighbours' rows are scattered in memory: ask for those of a later atom now.
                    const int64_t ahead = i + 4;
                    if (ahead < n)
                        for (int64_t b = nl.offsets[ahead]; b < nl.offsets[ahead + 1]; ++b)
                            for (int t = 0; t < stride; t += 8)
                                __builtin_prefetch(qlm.get() + nl.neighbors[b] * stride + t);
                    const double norm = 1.0 / double(nl.offsets[i + 1] - nl.offsets[i] + 1);
                    const double* own = qlm.get() + i * stride;
                    // 8 values at a time, summed over the neighbours in registers
                    for (int t0 = 0; t0 < stride; t0 += 8) {
                        double part[8];
                        for (int t = 0; t < 8; ++t) part[t] = own[t0 + t];
                        for (int64_t b = nl.offsets[i]; b < nl.offsets[i + 1]; ++b) {
                            const double* other = qlm.get() + nl.neighbors[b] * stride + t0;
                            for (int t = 0; t < 8; ++t) part[t] += other[t];
                        }
                        for (int t = 0; t < 8; ++t) acc[t0 + t] = part[t] * norm;
                    }
                    for (const Degree& d : group) {
                        double q, w;
                        invariants(acc.data() + d.slot, acc.data() + size + d.slot, d.l, wigner, d.column,
                                   with_wl, q, w);
                        out[i * width + col_qbar + d.column] = q;
                        if (with_wl) out[i * width + col_wbar + d.column] = w;
                    }
                }
            }
        }
    }
    if (zero_length > 0) throw_zero_length_bonds(zero_length);
}

}  // namespace mlclass
