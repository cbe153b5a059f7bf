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
// GCC/Clang vector extensions, one register wide: 8 doubles with AVX-512, 4 otherwise (a vector
// wider than the registers is passed through memory and spills, an order of magnitude slower).
// kChains: bond slots whose recurrences run side by side, filling the pipeline while one waits
// for its results; as many as the registers hold (32 with AVX-512, 16 otherwise).
#ifdef __AVX512F__
constexpr int kLanes = 8;
constexpr int kChains = 4;
#else
constexpr int kLanes = 4;
constexpr int kChains = 2;
#endif
typedef double Lanes __attribute__((vector_size(kLanes * sizeof(double))));

// (l, m), m <= l, packed as l (l + 1) / 2 + m.
inline int lm_index(int l, int m) { return l * (l + 1) / 2 + m; }
inline int lm_count(int lmax) { return (lmax + 1) * (lmax + 2) / 2; }

// One term of the column m follows from the two before it,
//   p_lm = z (a1 p_{l-1,m} + c1) - a2 p_{l-2,m} + c0,
// where for l >= m + 2 (a1, a2) are the recurrence coefficients; l = m + 1 gives
// p_{m+1,m} = sqrt(2m+3) z p_mm through c1 (the diagonal p_mm is a constant once sin^m is factored
// out); and l = m gives the constant p_mm through c0. Stored column by column (m outer).
struct LegendreTable {
    int lmax;
    std::vector<double> a1, a2, c1, c0;  // index: column_start(m) + (l - m)

    int column_start(int m) const { return m * (lmax + 1) - m * (m - 1) / 2; }

    explicit LegendreTable(int lmax_) : lmax(lmax_) {
        const int size = lm_count(lmax);
        a1.assign(size, 0.0); a2.assign(size, 0.0); c1.assign(size, 0.0); c0.assign(size, 0.0);
        double diagonal = 0.5 / std::sqrt(M_PI);  // p_00 = Y_00
        for (int m = 0; m <= lmax; ++m) {
            const int k = column_start(m);
            c0[k] = diagonal;
            if (m + 1 <= lmax) c1[k + 1] = std::sqrt(2.0 * m + 3.0) * diagonal;
            for (int l = m + 2; l <= lmax; ++l) {
                const double l2 = double(l) * l, m2 = double(m) * m, lm1 = double(l - 1);
                const double a = std::sqrt((4.0 * l2 - 1.0) / (l2 - m2));
                a1[k + l - m] = a;
                a2[k + l - m] = a * std::sqrt((lm1 * lm1 - m2) / (4.0 * lm1 * lm1 - 1.0));
            }
            diagonal *= -std::sqrt((2.0 * m + 3.0) / (2.0 * m + 2.0));
        }
    }
};

// For each lane a: re/im[lm_index(l, m) * kLanes + a] = sum_j w_j Y_lm(x_j, y_j, z_j) over the
// bond slots j < n_slots of that lane, for all l <= lmax, m = 0..l. Bond slot j of lane a is at
// index j * kLanes + a of x, y, z (a unit vector) and w (0 for an empty slot). `power` is scratch
// for 2 * n_slots * kLanes doubles.
inline void ylm_sums(const LegendreTable& t, int n_slots, const double* x, const double* y, const double* z,
                     const double* w, double* power, double* re, double* im) {
    const int L = t.lmax;
    // w (x + i y)^m of every slot, advanced column by column (the caller's buffers need not be
    // aligned to whole vectors, hence memcpy, which compiles to unaligned loads and stores)
    double* pr = power;
    double* pi = power + size_t(n_slots) * kLanes;
    auto load = [](const double* p) { Lanes v; __builtin_memcpy(&v, p, sizeof v); return v; };
    auto store = [](double* p, Lanes v) { __builtin_memcpy(p, &v, sizeof v); };
    for (int j = 0; j < n_slots; ++j) {
        std::copy(w + j * kLanes, w + (j + 1) * kLanes, pr + j * kLanes);
        std::fill(pi + j * kLanes, pi + (j + 1) * kLanes, 0.0);
    }
    for (int m = 0; m <= L; ++m) {
        const int k = t.column_start(m), n_l = L - m + 1;
        const double* a1 = t.a1.data() + k;
        const double* a2 = t.a2.data() + k;
        const double* c1 = t.c1.data() + k;
        const double* c0 = t.c0.data() + k;
        Lanes sum_re[kMaxDegree + 1], sum_im[kMaxDegree + 1];
        for (int u = 0; u < n_l; ++u) sum_re[u] = sum_im[u] = Lanes{};
        // Q slots side by side: the other chains fill the pipeline while one waits for its results.
        auto slots = [&](auto q_constant, size_t j) {
            constexpr int Q = decltype(q_constant)::value;
            Lanes zq[Q], rq[Q], iq[Q], p1[Q] = {}, p2[Q] = {};
            for (int q = 0; q < Q; ++q) {
                const size_t at = (j + q) * kLanes;
                zq[q] = load(z + at), rq[q] = load(pr + at), iq[q] = load(pi + at);
            }
            for (int u = 0; u < n_l; ++u) {
                Lanes sr = sum_re[u], si = sum_im[u];
                for (int q = 0; q < Q; ++q) {
                    // p = z (a1 p1 + c1) - a2 p2 + c0, arranged so that only the last multiply-add
                    // waits for p1: the chain from one degree to the next is one instruction long
                    const Lanes addend = zq[q] * c1[u] - a2[u] * p2[q] + c0[u];
                    const Lanes p = (a1[u] * zq[q]) * p1[q] + addend;
                    sr += p * rq[q];
                    si += p * iq[q];
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
            store(re + lm_index(m + u, m) * kLanes, sum_re[u]);
            store(im + lm_index(m + u, m) * kLanes, sum_im[u]);
        }
    }
}

}  // namespace mlclass
