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

int second_shell_type(int64_t i, const int64_t* rows, const double* vectors) {
    double shell[12][3];
    int count = 0;
    for (int a = 0; a < 4; ++a) {
        const int64_t j = rows[4 * i + a];
        if (j < 0) return kDiamondNone;
        const double* to_j = vectors + 3 * (4 * i + a);
        int found = 0;
        for (int b = 0; b < 4; ++b) {
            if (rows[4 * j + b] < 0) return kDiamondNone;
            const double* from_j = vectors + 3 * (4 * j + b);
            const double v[3] = {to_j[0] + from_j[0], to_j[1] + from_j[1], to_j[2] + from_j[2]};
            if (std::fabs(v[0]) <= 1e-2 && std::fabs(v[1]) <= 1e-2 && std::fabs(v[2]) <= 1e-2) continue;  // the atom
            if (++found > 3) return kDiamondNone;
            for (int c = 0; c < 3; ++c) shell[count][c] = v[c];
            ++count;
        }
        if (found != 3) return kDiamondNone;
    }
    double mean = 0.0;
    for (const auto& v : shell) mean += std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    const double cutoff = kCutoffFactor * mean / 12.0;
    const double cutoff2 = cutoff * cutoff;
    unsigned bonds[12] = {};  // bit k of bonds[j]: j and k bonded
    for (int j = 0; j < 12; ++j)
        for (int k = j + 1; k < 12; ++k) {
            const double dx = shell[j][0] - shell[k][0], dy = shell[j][1] - shell[k][1], dz = shell[j][2] - shell[k][2];
            if (dx * dx + dy * dy + dz * dz <= cutoff2) {
                bonds[j] |= 1u << k;
                bonds[k] |= 1u << j;
            }
        }
    int n422 = 0;
    for (int j = 0; j < 12; ++j) {
        const unsigned common = bonds[j];  // every one of the 12 is the atom's neighbour
        if (__builtin_popcount(common) != 4) return kDiamondNone;
        int twice_bonds = 0, most = 0;
        for (int k = 0; k < 12; ++k)
            if (common >> k & 1u) {
                const int degree = __builtin_popcount(bonds[k] & common);  // k's bonds among the common ones
                twice_bonds += degree;
                most = degree > most ? degree : most;
            }
        if (twice_bonds != 4) return kDiamondNone;  // two bonds among the four
        n422 += most == 2;                          // the two share an atom: a chain of two
    }
    return n422 == 0 ? kDiamondCubic : n422 == 6 ? kDiamondHexagonal : kDiamondNone;
}

}  // namespace

void diamond_second_shells(int64_t n, const int64_t* rows, const double* vectors, int8_t* out) {
    ThreadErrors errors;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) errors.run([&] { out[i] = int8_t(second_shell_type(i, rows, vectors)); });
    errors.rethrow();
}

}  // namespace mlclass
