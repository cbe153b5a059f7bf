// Complex spherical harmonics Y_lm(r^) for m >= 0, evaluated for a block of bonds at once.
//
// Convention (= scipy.special.sph_harm_y, Condon-Shortley phase included):
//   Y_lm = sqrt((2l+1)/(4 pi) (l-m)!/(l+m)!) P_l^m(cos theta) e^{i m phi},
//   Y_l,-m = (-1)^m conj(Y_lm).
// We write Y_lm = p_lm(z) * (x + i y)^m with p_lm = N_lm P_l^m(z) / sin^m(theta), a polynomial in
// z = cos(theta).  The fully normalised recurrences below never divide by sin(theta), so the poles
// are exact, and they are stable far beyond the degrees used here (l <= 16).
#pragma once

#include <cmath>
#include <vector>

namespace mlclass {

constexpr int kMaxDegree = 16;
// Bonds are processed in fixed-size blocks so that the innermost loops run over a
// compile-time number of lanes and vectorise.
constexpr int kBlock = 8;

// Index of (l, m), m >= 0, in a triangular table.
inline int tri(int l, int m) { return l * (l + 1) / 2 + m; }

struct LegendreCoefficients {
    int lmax;
    std::vector<double> a, b;  // p_lm = a_lm (z p_{l-1,m} - b_lm p_{l-2,m}), indexed by tri(l, m)
    std::vector<double> diag;  // p_mm = diag_m * p_{m-1,m-1}

    explicit LegendreCoefficients(int lmax_) : lmax(lmax_), a(tri(lmax_, lmax_) + 1, 0.0),
                                               b(tri(lmax_, lmax_) + 1, 0.0), diag(lmax_ + 1, 0.0) {
        for (int m = 1; m <= lmax; ++m) diag[m] = -std::sqrt((2.0 * m + 1.0) / (2.0 * m));
        for (int m = 0; m <= lmax; ++m) {
            for (int l = m + 2; l <= lmax; ++l) {
                const double l2 = double(l) * l, m2 = double(m) * m, lm1 = double(l - 1);
                a[tri(l, m)] = std::sqrt((4.0 * l2 - 1.0) / (l2 - m2));
                b[tri(l, m)] = std::sqrt((lm1 * lm1 - m2) / (4.0 * lm1 * lm1 - 1.0));
            }
        }
    }
};

// Fills re/im[tri(l, m) * kBlock + b] = Y_lm(x_b, y_b, z_b) for 0 <= m <= l <= lmax.
// (x, y, z) must be unit vectors.
inline void ylm_block(const LegendreCoefficients& c, int lmax, const double* x, const double* y,
                      const double* z, double* re, double* im) {
    double pmm[kBlock], p1[kBlock], p2[kBlock], cr[kBlock], ci[kBlock];
    const double y00 = 0.5 / std::sqrt(M_PI);
    for (int k = 0; k < kBlock; ++k) { pmm[k] = y00; cr[k] = 1.0; ci[k] = 0.0; }
    for (int m = 0; m <= lmax; ++m) {
        if (m > 0) {
            const double d = c.diag[m];
            for (int k = 0; k < kBlock; ++k) {
                pmm[k] *= d;
                const double r = cr[k] * x[k] - ci[k] * y[k];
                ci[k] = cr[k] * y[k] + ci[k] * x[k];
                cr[k] = r;
            }
        }
        double* rr = re + tri(m, m) * kBlock;
        double* ii = im + tri(m, m) * kBlock;
        for (int k = 0; k < kBlock; ++k) { p2[k] = pmm[k]; rr[k] = pmm[k] * cr[k]; ii[k] = pmm[k] * ci[k]; }
        if (m + 1 > lmax) break;
        const double s = std::sqrt(2.0 * m + 3.0);
        rr = re + tri(m + 1, m) * kBlock;
        ii = im + tri(m + 1, m) * kBlock;
        for (int k = 0; k < kBlock; ++k) { p1[k] = s * z[k] * pmm[k]; rr[k] = p1[k] * cr[k]; ii[k] = p1[k] * ci[k]; }
        for (int l = m + 2; l <= lmax; ++l) {
            const double a = c.a[tri(l, m)], b = c.b[tri(l, m)];
            rr = re + tri(l, m) * kBlock;
            ii = im + tri(l, m) * kBlock;
            for (int k = 0; k < kBlock; ++k) {
                const double p = a * (z[k] * p1[k] - b * p2[k]);
                p2[k] = p1[k];
                p1[k] = p;
                rr[k] = p * cr[k];
                ii[k] = p * ci[k];
            }
        }
    }
}

}  // namespace mlclass
