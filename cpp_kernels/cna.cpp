// Adaptive common neighbour analysis (Stukowski, Modelling Simul. Mater. Sci. Eng. 20, 045021 (2012)),
// as OVITO's CommonNeighborAnalysisModifier runs it: the 12 nearest neighbours bonded within a cutoff
// of 1.207 times their mean distance form FCC (CNA signature 421 for all 12), HCP (six 421, six 422)
// or an icosahedron (555 for all 12); else the 14 nearest, with the first 8 distances scaled to the
// second shell's, form BCC (666 for 8, 444 for 6).
#include <array>
#include <cmath>

#include "kernels.hpp"
#include "threads.hpp"

namespace mlclass {

namespace {

// OVITO's factors, single-precision constants as it writes them
const double kCloseFactor = double((1.0f + std::sqrt(2.0f)) * 0.5f);
const double kBccFactor = double(1.207f);

int bit_count(unsigned mask) { return __builtin_popcount(mask); }

// Bonds among the `common` neighbours (bit masks over the shell), and the bonds of the largest
// connected cluster of them (OVITO's "longest continuous chain").
void common_bonds(const unsigned* bonds, unsigned common, int& n_bonds, int& longest) {
    int twice = 0, most = 0;
    for (unsigned rest = common; rest; rest &= rest - 1) {
        const int degree = bit_count(bonds[__builtin_ctz(rest)] & common);
        twice += degree;
        most = std::max(most, degree);
    }
    n_bonds = twice / 2;
    if (n_bonds <= 2) {  // FCC and HCP's case: two bonds apart (421) or sharing an atom (422)
        longest = n_bonds == 2 && most == 1 ? 1 : n_bonds;
        return;
    }
    longest = 0;
    unsigned left = common;
    while (left) {  // flood fill one cluster of bonded common neighbours at a time
        unsigned cluster = left & (~left + 1), grown = cluster;
        do {
            cluster = grown;
            for (unsigned rest = cluster; rest; rest &= rest - 1) grown |= bonds[__builtin_ctz(rest)] & common;
        } while (grown != cluster);
        left &= ~cluster;
        int cluster_twice = 0;
        for (unsigned rest = cluster; rest; rest &= rest - 1) cluster_twice += bit_count(bonds[__builtin_ctz(rest)] & cluster);
        longest = std::max(longest, cluster_twice / 2);
    }
}

// The bond masks of the first `nn` neighbours (coordinates as columns x, y, z) within the cutoff.
void bond_masks(const double* x, const double* y, const double* z, int nn, double cutoff2, unsigned* bonds) {
    for (int j = 0; j < nn; ++j) {
        double d2[14];
        for (int m = 0; m < 14; ++m) {  // a fixed trip count: the loop vectorises; columns beyond nn are unused
            const double dx = x[j] - x[m], dy = y[j] - y[m], dz = z[j] - z[m];
            d2[m] = dx * dx + dy * dy + dz * dz;
        }
        unsigned mask = 0;
        for (int m = 0; m < nn; ++m) mask |= unsigned(d2[m] <= cutoff2) << m;
        bonds[j] = mask & ~(1u << j);
    }
}

// How many of the first nn neighbours have each CNA signature (common neighbours, bonds among
// them, longest chain) that a lattice of the test holds; counting stops at the first other one,
// which no lattice has.
struct Signatures {
    int n421 = 0, n422 = 0, n444 = 0, n555 = 0, n666 = 0;
};

Signatures signatures(const unsigned* bonds, int nn) {
    Signatures found;
    for (int j = 0; j < nn; ++j) {
        const int n_common = bit_count(bonds[j]);
        if (n_common < 4 || n_common > 6) break;
        int n_bonds, longest;
        common_bonds(bonds, bonds[j], n_bonds, longest);
        if (n_common == 4 && n_bonds == 2 && longest == 1) ++found.n421;
        else if (n_common == 4 && n_bonds == 2 && longest == 2) ++found.n422;
        else if (n_common == 4 && n_bonds == 4 && longest == 4) ++found.n444;
        else if (n_common == 5 && n_bonds == 5 && longest == 5) ++found.n555;
        else if (n_common == 6 && n_bonds == 6 && longest == 6) ++found.n666;
        else break;
    }
    return found;
}

int cna_type(const int64_t* row, const double* v, int k) {
    unsigned bonds[14];
    if (k < 12) return kCnaOther;
    for (int a = 0; a < 12; ++a)
        if (row[a] < 0) return kCnaOther;
    double x[14] = {}, y[14] = {}, z[14] = {}, length2[14] = {};
    for (int a = 0; a < std::min(k, 14); ++a) {
        x[a] = v[3 * a], y[a] = v[3 * a + 1], z[a] = v[3 * a + 2];
        length2[a] = x[a] * x[a] + y[a] * y[a] + z[a] * z[a];
    }
    double scale = 0.0;
    for (int a = 0; a < 12; ++a) scale += std::sqrt(length2[a]);
    double cutoff = scale / 12 * kCloseFactor;
    bond_masks(x, y, z, 12, cutoff * cutoff, bonds);
    Signatures found = signatures(bonds, 12);
    if (found.n421 == 12) return kCnaFcc;
    if (found.n421 == 6 && found.n422 == 6) return kCnaHcp;
    if (found.n555 == 12) return kCnaIco;

    if (k < 14 || row[12] < 0 || row[13] < 0) return kCnaOther;
    scale = 0.0;
    for (int a = 0; a < 14; ++a) scale += std::sqrt(a < 8 ? length2[a] / (3.0f / 4.0f) : length2[a]);
    cutoff = scale / 14 * kBccFactor;
    bond_masks(x, y, z, 14, cutoff * cutoff, bonds);
    found = signatures(bonds, 14);
    return found.n666 == 8 && found.n444 == 6 ? kCnaBcc : kCnaOther;
}

}  // namespace

void adaptive_cna(int64_t n, int k, const int64_t* rows, int64_t row_stride, const double* vectors,
                  int64_t vector_stride, const uint8_t* which, int8_t* out) {
    ThreadErrors errors;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) errors.run([&] {
        out[i] = which && !which[i] ? int8_t(kCnaOther)
                                    : int8_t(cna_type(rows + row_stride * i, vectors + vector_stride * i, k));
    });
    errors.rethrow();
}

}  // namespace mlclass
