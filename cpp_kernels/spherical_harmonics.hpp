// Complex spherical harmonics Y_lm(r^) for m >= 0, summed over the bonds of up to kLanes atoms at once.
//
// Convention (= scipy.special.sph_harm_y, Condon-Shortley phase included):
//   Y_lm = sqrt((2l+1)/(4 pi) (l-m)!/(l+m)!) P_l^m(cos theta) e^{i m phi},
//   Y_l,-m = (-1)^m conj(Y_lm).
// We write Y_lm = p_lm(z) * (x + i y)^m with p_lm = N_lm P_l^m(z) / sin^m(theta), a polynomial in
// z = cos(theta). The fully normalised recurrences below never divide by sin(theta), so the poles
// are exact, and they are stable far beyond the degrees used here (l <= 16).
#pragma once

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

namespace mlclass {

constexpr int kMaxDegree = 16;

// SIMD lanes: each lane is one atom, so the sums over its bonds need no reduction across lanes.
// GCC/Clang vector extensions, one register wide: 64 bytes with AVX-512 (8 doubles or 16 floats),
// 32 otherwise (a vector wider than the registers is passed through memory and spills, an order
// of magnitude slower). kChains: bond slots whose recurrences run side by side, filling the
// pipeline while one waits for its results; as many as the registers hold (32 with AVX-512, 16
// otherwise). Real = double (the descriptors) or float (what a classifier's network takes).
#ifdef __AVX512F__
constexpr int kRegisterBytes = 64;
constexpr int kChains = 4;
#else
constexpr int kRegisterBytes = 32;
constexpr int kChains = 2;
#endif
template <typename Real>
struct Simd;
template <>
struct Simd<double> {
    typedef double Lanes __attribute__((vector_size(kRegisterBytes)));
};
template <>
struct Simd<float> {
    typedef float Lanes __attribute__((vector_size(kRegisterBytes)));
};
template <typename Real>
constexpr int kLanesOf = kRegisterBytes / int(sizeof(Real));

// Unaligned loads and stores of one register of lanes (the buffers need not be aligned to whole
// vectors; memcpy compiles to unaligned vector moves).
template <typename Real>
typename Simd<Real>::Lanes load_lanes(const Real* p) {
    typename Simd<Real>::Lanes v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
template <typename Real>
void store_lanes(Real* p, typename Simd<Real>::Lanes v) { __builtin_memcpy(p, &v, sizeof v); }

// (l, m), m <= l, packed as l (l + 1) / 2 + m.
inline int lm_index(int l, int m) { return l * (l + 1) / 2 + m; }
inline int lm_count(int lmax) { return (lmax + 1) * (lmax + 2) / 2; }

// The terms of one column m are the degrees l = first(m), first(m) + step, ... <= lmax, each from
// the two before it:
//   p = (A t - B) p1 - C p2 + c0,  t = z (step 1) or z^2 (step 2),
// where c0 starts the column (p1 = p2 = 0 there). Step 1 is the three-term recurrence in l
//   p_lm = a_l z p_{l-1,m} - b_l p_{l-2,m},  a_l = sqrt((4l^2 - 1) / (l^2 - m^2)),
//   b_l = a_l sqrt(((l-1)^2 - m^2) / (4 (l-1)^2 - 1))   (a_{m+1} = sqrt(2m+3), b_{m+1} = 0),
// which starts at the constant p_mm. Step 2 serves even degrees only (Steinhardt's q4..q12: half
// the work): applied twice, the recurrence links p_l to p_{l-2} and p_{l-4},
//   p_l = a_l a_{l-1} z^2 p_{l-2} - (b_l + a_l b_{l-1} / a_{l-2}) p_{l-2} - a_l b_{l-1} b_{l-2} / a_{l-2} p_{l-4}.
// A column of odd m then starts at p_{m+1,m} = sqrt(2m+3) z p_mm; every term of it carries that
// factor z, which ylm_sums multiplies in with (x + i y)^m, so that t = z^2 throughout.
template <typename Real = double>
struct LegendreTable {
    int lmax, step;
    std::vector<Real> A, B, C, c0;  // index: start[m] + term (computed in double)

    std::vector<int> start;  // first term of each column, and the end
    int first(int m) const { return step == 2 ? m + (m & 1) : m; }
    int terms(int m) const { return start[m + 1] - start[m]; }

    explicit LegendreTable(int lmax_, bool even_only = false) : lmax(lmax_), step(even_only ? 2 : 1) {
        double diagonal = 0.5 / std::sqrt(M_PI);  // p_00 = Y_00
        start.push_back(0);
        for (int m = 0; m <= lmax; ++m) {
            // a_l, b_l of this column for l = m .. lmax (a_m, b_m: never used, 0)
            std::vector<double> a(lmax + 2, 0.0), b(lmax + 2, 0.0);
            for (int l = m + 1; l <= lmax; ++l) {
                const double l2 = double(l) * l, m2 = double(m) * m, lm1 = double(l - 1);
                a[l] = std::sqrt((4.0 * l2 - 1.0) / (l2 - m2));
                b[l] = l == m + 1 ? 0.0 : a[l] * std::sqrt((lm1 * lm1 - m2) / (4.0 * lm1 * lm1 - 1.0));
            }
            for (int l = first(m); l <= lmax; l += step) {
                double an = 0.0, bn = 0.0, cn = 0.0, constant = 0.0;
                if (l == first(m)) {
                    constant = l == m ? diagonal : std::sqrt(2.0 * m + 3.0) * diagonal;
                } else if (step == 1) {
                    an = a[l], cn = b[l];
                } else {  // b_{l-1} = 0 where l - 2 = m, and b_{l-2} = 0 where l - 2 <= m + 1
                    an = a[l] * a[l - 1];
                    bn = b[l] + (b[l - 1] != 0.0 ? a[l] * b[l - 1] / a[l - 2] : 0.0);
                    cn = l - 2 > m + 1 ? a[l] * b[l - 1] * b[l - 2] / a[l - 2] : 0.0;
                }
                A.push_back(Real(an)), B.push_back(Real(bn)), C.push_back(Real(cn)), c0.push_back(Real(constant));
            }
            start.push_back(int(A.size()));
            diagonal *= -std::sqrt((2.0 * m + 3.0) / (2.0 * m + 2.0));
        }
    }
};

// For each lane a: re/im[lm_index(l, m) * kLanes + a] = sum_j w_j Y_lm(x_j, y_j, z_j) over the
// bond slots j < n_slots of that lane, for l <= lmax (the even l only if the table is of step 2;
// the others are left as they were), m = 0..l. Bond slot j of lane a is at index j * kLanes + a of
// x, y, z (a unit vector) and w (0 for an empty slot). `power` is scratch for 2 * n_slots * kLanes
// values (kLanes = kLanesOf<Real>).
template <typename Real>
inline void ylm_sums(const LegendreTable<Real>& t, int n_slots, const Real* x, const Real* y, const Real* z,
                     const Real* w, Real* power, Real* re, Real* im) {
    using Lanes = typename Simd<Real>::Lanes;
    constexpr int kLanes = kLanesOf<Real>;
    const int L = t.lmax;
    // w (x + i y)^m of every slot, advanced column by column
    Real* pr = power;
    Real* pi = power + size_t(n_slots) * kLanes;
    auto load = load_lanes<Real>;
    auto store = store_lanes<Real>;
    for (int j = 0; j < n_slots; ++j) {
        std::copy(w + j * kLanes, w + (j + 1) * kLanes, pr + j * kLanes);
        std::fill(pi + j * kLanes, pi + (j + 1) * kLanes, Real(0));
    }
    for (int m = 0; m <= L; ++m) {
        const int k = t.start[m], n_l = t.terms(m);
        const bool odd_start = t.first(m) != m;  // every term carries a factor z
        const Real* A = t.A.data() + k;
        const Real* B = t.B.data() + k;
        const Real* C = t.C.data() + k;
        const Real* c0 = t.c0.data() + k;
        Lanes sum_re[kMaxDegree + 1], sum_im[kMaxDegree + 1];
        for (int u = 0; u < n_l; ++u) sum_re[u] = sum_im[u] = Lanes{};
        // Q slots side by side: the other chains fill the pipeline while one waits for its results.
        auto slots = [&](auto q_constant, size_t j) {
            constexpr int Q = decltype(q_constant)::value;
            Lanes tq[Q], rq[Q], iq[Q], fr[Q], fi[Q], p1[Q] = {}, p2[Q] = {};
            for (int q = 0; q < Q; ++q) {
                const size_t at = (j + q) * kLanes;
                const Lanes zq = load(z + at);
                tq[q] = t.step == 2 ? zq * zq : zq;
                rq[q] = load(pr + at), iq[q] = load(pi + at);
                fr[q] = odd_start ? rq[q] * zq : rq[q];
                fi[q] = odd_start ? iq[q] * zq : iq[q];
            }
            for (int u = 0; u < n_l; ++u) {
                Lanes sr = sum_re[u], si = sum_im[u];
                for (int q = 0; q < Q; ++q) {
                    // only the last multiply-add waits for p1: the chain from one term to the next
                    // is one instruction long
                    const Lanes addend = c0[u] - C[u] * p2[q];
                    const Lanes p = (A[u] * tq[q] - B[u]) * p1[q] + addend;
                    sr += p * fr[q];
                    si += p * fi[q];
                    p2[q] = p1[q];
                    p1[q] = p;
                }
                sum_re[u] = sr, sum_im[u] = si;
            }
            for (int q = 0; q < Q; ++q) {  // (x + i y)^m -> (x + i y)^(m + 1)
                const size_t at = (j + q) * kLanes;
                const Lanes xj = load(x + at), yj = load(y + at);
                store(pr + at, rq[q] * xj - iq[q] * yj);
                store(pi + at, rq[q] * yj + iq[q] * xj);
            }
        };
        size_t j = 0;
        for (; j + kChains <= size_t(n_slots); j += kChains) slots(std::integral_constant<int, kChains>(), j);
        for (; j < size_t(n_slots); ++j) slots(std::integral_constant<int, 1>(), j);
        for (int u = 0; u < n_l; ++u) {
            store(re + lm_index(t.first(m) + t.step * u, m) * kLanes, sum_re[u]);
            store(im + lm_index(t.first(m) + t.step * u, m) * kLanes, sum_im[u]);
        }
    }
}

}  // namespace mlclass
