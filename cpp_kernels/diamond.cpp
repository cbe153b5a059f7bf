// The diamond topology test of OVITO's Identify Diamond (Maras et al. 2016, appendix A): an atom's
// 12 second neighbours (the four nearest of each of its four nearest, itself left out) must sit as
// the neighbours of an FCC atom (cubic diamond: CNA signature 421 for all 12) or of an HCP atom
// (hexagonal diamond: six 421, six 422), bonded within 1.2071 times their mean distance.
#include <cmath>

#include "kernels.hpp"
#include "threads.hpp"

namespace mlclass {

namespace {

constexpr double kCutoffFactor = 1.2071068;  // sqrt(2) (1 + sqrt(1/2)) / 2, Identify Diamond's

int second_shell_type(int64_t i, const int64_t* rows, int64_t row_stride, const double* vectors,
                      int64_t vector_stride) {
    double x[12], y[12], z[12];  // the second shell, as columns (the distance loops vectorise)
    int count = 0;
    for (int a = 0; a < 4; ++a) {
        const int64_t j = rows[row_stride * i + a];
        if (j < 0) return kDiamondNone;
        const double* to_j = vectors + vector_stride * i + 3 * a;
        int found = 0;
        for (int b = 0; b < 4; ++b) {
            if (rows[row_stride * j + b] < 0) return kDiamondNone;
            const double* from_j = vectors + vector_stride * j + 3 * b;
            const double v[3] = {to_j[0] + from_j[0], to_j[1] + from_j[1], to_j[2] + from_j[2]};
            if (std::fabs(v[0]) <= 1e-2 && std::fabs(v[1]) <= 1e-2 && std::fabs(v[2]) <= 1e-2) continue;  // the atom
            if (++found > 3) return kDiamondNone;
            x[count] = v[0], y[count] = v[1], z[count] = v[2];
            ++count;
        }
        if (found != 3) return kDiamondNone;
    }
    double mean = 0.0;
    for (int m = 0; m < 12; ++m) mean += std::sqrt(x[m] * x[m] + y[m] * y[m] + z[m] * z[m]);
    const double cutoff = kCutoffFactor * mean / 12.0;
    const double cutoff2 = cutoff * cutoff;
    unsigned bonds[12];  // bit m of bonds[j]: j and m bonded
    for (int j = 0; j < 12; ++j) {
        double d2[12];
        for (int m = 0; m < 12; ++m) {
            const double dx = x[j] - x[m], dy = y[j] - y[m], dz = z[j] - z[m];
            d2[m] = dx * dx + dy * dy + dz * dz;
        }
        unsigned mask = 0;
        for (int m = 0; m < 12; ++m) mask |= unsigned(d2[m] <= cutoff2) << m;
        bonds[j] = mask & ~(1u << j);
    }
    int n422 = 0;
    for (int j = 0; j < 12; ++j) {
        const unsigned common = bonds[j];  // every one of the 12 is the atom's neighbour
        if (__builtin_popcount(common) != 4) return kDiamondNone;
        int twice_bonds = 0, most = 0;
        for (unsigned rest = common; rest; rest &= rest - 1) {
            const int degree = __builtin_popcount(bonds[__builtin_ctz(rest)] & common);  // its bonds among the common ones
            twice_bonds += degree;
            most = degree > most ? degree : most;
        }
        if (twice_bonds != 4) return kDiamondNone;  // two bonds among the four
        n422 += most == 2;                          // the two share an atom: a chain of two
    }
    return n422 == 0 ? kDiamondCubic : n422 == 6 ? kDiamondHexagonal : kDiamondNone;
}

}  // namespace

void diamond_second_shells(int64_t n, const int64_t* rows, int64_t row_stride, const double* vectors,
                           int64_t vector_stride, int8_t* out) {
    ThreadErrors errors;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) errors.run([&] { out[i] = int8_t(second_shell_type(i, rows, row_stride, vectors, vector_stride)); });
    errors.rethrow();
}

}  // namespace mlclass
