// Complex spherical harmonics Y_lm(r^) for m >= 0, summed over the bonds of an atom.
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
#include <vector>

namespace mlclass {

constexpr int kMaxDegree = 16;

// Per-degree rows padded to `width` (8, 16 or 24) so that each row is whole SIMD vectors:
// entry (l, m) lives at l * width + m. One row follows from the two before it element by element,
//   p_l[m] = z (a1 p_{l-1}[m] + c1) - a2 p_{l-2}[m] + c0,
// where for m <= l-2 (a1, a2) are the recurrence coefficients; m = l-1 gives p_{l,l-1} =
// sqrt(2l+1) z p_{l-1,l-1} through c1 (the diagonal p_mm is a constant once sin^m is factored
// out); m = l gives the constant p_ll through c0; and m > l gives 0. No lane depends on another,
// so a row is a few independent SIMD operations.
struct LegendreRows {
    int lmax, width;
    std::vector<double> a1, a2, c1, c0;

    explicit LegendreRows(int lmax_)
        : lmax(lmax_), width((lmax_ + 8) / 8 * 8), a1((lmax_ + 1) * width, 0.0), a2((lmax_ + 1) * width, 0.0),
          c1((lmax_ + 1) * width, 0.0), c0((lmax_ + 1) * width, 0.0) {
        double diagonal = 0.5 / std::sqrt(M_PI);  // p_00 = Y_00
        c0[0] = diagonal;
        for (int l = 1; l <= lmax; ++l) {
            c1[l * width + l - 1] = std::sqrt(2.0 * l + 1.0) * diagonal;
            diagonal *= -std::sqrt((2.0 * l + 1.0) / (2.0 * l));
            c0[l * width + l] = diagonal;
            for (int m = 0; m + 2 <= l; ++m) {
                const double l2 = double(l) * l, m2 = double(m) * m, lm1 = double(l - 1);
                const double a = std::sqrt((4.0 * l2 - 1.0) / (l2 - m2));
                a1[l * width + m] = a;
                a2[l * width + m] = a * std::sqrt((lm1 * lm1 - m2) / (4.0 * lm1 * lm1 - 1.0));
            }
        }
    }
};

// Adds sum_b w_b Y_lm(x_b, y_b, z_b) to acc_re/acc_im[l * width + m] for every degree l with
// wanted[l] != 0 (the recurrence still runs through all l <= lmax). (x, y, z) are unit vectors.
// Bonds go through the rows kGroup at a time: their recurrences are independent chains, which
// hides the latency of each row's dependence on the previous one.
constexpr int kGroup = 4;

template <int W>
void accumulate_ylm_rows(const LegendreRows& c, int n, const double* x, const double* y, const double* z,
                         const double* w, const unsigned char* wanted, double* __restrict acc_re,
                         double* __restrict acc_im) {
    const int L = c.lmax;
    for (int first = 0; first < n; first += kGroup) {
        // w (x + iy)^m for m = 0..W-1 (zero beyond lmax); missing bonds of the group get w = 0.
        alignas(64) double r[kGroup][W], i[kGroup][W], zb[kGroup];
        for (int g = 0; g < kGroup; ++g) {
            const int bond = first + g;
            const bool real = bond < n;
            r[g][0] = real ? w[bond] : 0.0;
            i[g][0] = 0.0;
            zb[g] = real ? z[bond] : 1.0;
            const double xb = real ? x[bond] : 0.0, yb = real ? y[bond] : 0.0;
            for (int m = 1; m < W; ++m) {
                const bool used = m <= L;
                r[g][m] = used ? r[g][m - 1] * xb - i[g][m - 1] * yb : 0.0;
                i[g][m] = used ? r[g][m - 1] * yb + i[g][m - 1] * xb : 0.0;
            }
        }
        alignas(64) double p1[kGroup][W] = {}, p2[kGroup][W] = {};
        for (int l = 0; l <= L; ++l) {
            const bool add = wanted[l];
            // Lanes m > l hold zeros: only the 8-lane blocks that reach m <= l are worked on.
            const int active = std::min(W, (l / 8 + 1) * 8);
            for (int m0 = 0; m0 < active; m0 += 8) {
                const double* __restrict a1 = c.a1.data() + l * W + m0;
                const double* __restrict a2 = c.a2.data() + l * W + m0;
                const double* __restrict c1 = c.c1.data() + l * W + m0;
                const double* __restrict c0 = c.c0.data() + l * W + m0;
                double* __restrict ar = acc_re + l * W + m0;
                double* __restrict ai = acc_im + l * W + m0;
#pragma omp simd
                for (int m = 0; m < 8; ++m) {
                    double sr = 0.0, si = 0.0;
                    for (int g = 0; g < kGroup; ++g) {
                        const double p = (zb[g] * (a1[m] * p1[g][m0 + m] + c1[m]) + c0[m]) - a2[m] * p2[g][m0 + m];
                        p2[g][m0 + m] = p1[g][m0 + m];
                        p1[g][m0 + m] = p;
                        sr += p * r[g][m0 + m];
                        si += p * i[g][m0 + m];
                    }
                    if (add) {
                        ar[m] += sr;
                        ai[m] += si;
                    }
                }
            }
        }
    }
}

inline void accumulate_ylm(const LegendreRows& c, int n, const double* x, const double* y, const double* z,
                           const double* w, const unsigned char* wanted, double* acc_re, double* acc_im) {
    switch (c.width) {
        case 8: accumulate_ylm_rows<8>(c, n, x, y, z, w, wanted, acc_re, acc_im); break;
        case 16: accumulate_ylm_rows<16>(c, n, x, y, z, w, wanted, acc_re, acc_im); break;
        default: accumulate_ylm_rows<24>(c, n, x, y, z, w, wanted, acc_re, acc_im); break;
    }
}

}  // namespace mlclass
