// Behler-Parrinello atom-centred symmetry functions G2, G4, G5 (J. Behler, J. Chem. Phys. 134, 074106 (2011)).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels.hpp"
#include "threads.hpp"

namespace mlclass {

namespace {

// Angular functions share few distinct (eta) and (zeta, lambda) values; each distinct value is
// evaluated once per bond or pair and combined per parameter row.
struct AngularTerms {
    std::vector<double> etas;                        // distinct eta
    std::vector<std::pair<double, double>> shapes;   // distinct (zeta, lambda)
    std::vector<int> eta_of, shape_of;               // per parameter row
    std::vector<double> norm;                        // 2^(1 - zeta) per row

    AngularTerms(const double* params, int n) {
        for (int r = 0; r < n; ++r) {
            const double eta = params[3 * r], zeta = params[3 * r + 1], lambda = params[3 * r + 2];
            auto e = std::find(etas.begin(), etas.end(), eta);
            if (e == etas.end()) e = etas.insert(etas.end(), eta);
            eta_of.push_back(int(e - etas.begin()));
            const std::pair<double, double> shape(zeta, lambda);
            auto s = std::find(shapes.begin(), shapes.end(), shape);
            if (s == shapes.end()) s = shapes.insert(shapes.end(), shape);
            shape_of.push_back(int(s - shapes.begin()));
            norm.push_back(std::pow(2.0, 1.0 - zeta));
        }
    }

    // (1 + lambda cos)^zeta for every distinct shape; integer zeta by repeated multiplication.
    void angular(double cos_theta, double* out) const {
        for (size_t s = 0; s < shapes.size(); ++s) {
            const double base = 1.0 + shapes[s].second * cos_theta;
            const double zeta = shapes[s].first;
            if (zeta == std::floor(zeta) && zeta >= 0.0 && zeta <= 64.0) {
                double result = 1.0, factor = base;
                for (int e = int(zeta); e > 0; e >>= 1) {
                    if (e & 1) result *= factor;
                    factor *= factor;
                }
                out[s] = result;
            } else {
                out[s] = base > 0.0 ? std::pow(base, zeta) : 0.0;
            }
        }
    }
};

inline double cutoff_function(double r, double rc) { return r < rc ? 0.5 * (std::cos(M_PI * r / rc) + 1.0) : 0.0; }

}  // namespace

void symmetry_functions(const NeighborList& nl, const int32_t* species, int n_species, double rc,
                        const double* g2, int n_g2, const double* g4, int n_g4, const double* g5, int n_g5,
                        double* out) {
    const int n_pairs = n_species * (n_species + 1) / 2;
    const int width = n_species * n_g2 + n_pairs * (n_g4 + n_g5);
    const int base_g4 = n_species * n_g2, base_g5 = base_g4 + n_pairs * n_g4;
    const AngularTerms t4(g4, n_g4), t5(g5, n_g5);
    const bool angular = n_g4 + n_g5 > 0;
    int64_t zero_length = 0;

#pragma omp parallel reduction(+ : zero_length)
    {
        // Bonds of the current atom inside the cutoff, structure-of-arrays.
        std::vector<double> bx, by, bz, br, bfc, e4, e5;
        std::vector<int> bs;
        std::vector<double> ang4(t4.shapes.size()), ang5(t5.shapes.size()), ejk4(t4.etas.size());
#pragma omp for schedule(dynamic, 64)
        for (int64_t i = 0; i < nl.n_atoms; ++i) {
            double* row = out + i * width;
            std::fill(row, row + width, 0.0);
            bx.clear(); by.clear(); bz.clear(); br.clear(); bfc.clear(); bs.clear(); e4.clear(); e5.clear();
            for (int64_t b = nl.offsets[i]; b < nl.offsets[i + 1]; ++b) {
                const double* v = nl.vectors + 3 * b;
                const double r2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
                if (!(r2 > 0.0)) { ++zero_length; continue; }
                const double r = std::sqrt(r2);
                if (r >= rc) continue;
                const double fc = cutoff_function(r, rc);
                const int s = species[nl.neighbors[b]];
                for (int k = 0; k < n_g2; ++k) {
                    const double d = r - g2[2 * k + 1];
                    row[s * n_g2 + k] += std::exp(-g2[2 * k] * d * d) * fc;
                }
                if (!angular) continue;
                bx.push_back(v[0]); by.push_back(v[1]); bz.push_back(v[2]);
                br.push_back(r); bfc.push_back(fc); bs.push_back(s);
                for (double eta : t4.etas) e4.push_back(std::exp(-eta * r2));
                for (double eta : t5.etas) e5.push_back(std::exp(-eta * r2));
            }
            const size_t nb = br.size(), u4 = t4.etas.size(), u5 = t5.etas.size();
            for (size_t j = 0; j < nb; ++j) {
                for (size_t k = j + 1; k < nb; ++k) {
                    const double cos_theta = (bx[j] * bx[k] + by[j] * by[k] + bz[j] * bz[k]) / (br[j] * br[k]);
                    const int a = std::min(bs[j], bs[k]), c = std::max(bs[j], bs[k]);
                    const int pair = a * n_species - a * (a - 1) / 2 + (c - a);
                    const double fc2 = bfc[j] * bfc[k];
                    if (n_g5 > 0) {
                        t5.angular(cos_theta, ang5.data());
                        double* g = row + base_g5 + pair * n_g5;
                        for (int p = 0; p < n_g5; ++p) {
                            const int u = t5.eta_of[p];
                            g[p] += t5.norm[p] * ang5[t5.shape_of[p]] * e5[j * u5 + u] * e5[k * u5 + u] * fc2;
                        }
                    }
                    if (n_g4 > 0) {
                        const double dx = bx[k] - bx[j], dy = by[k] - by[j], dz = bz[k] - bz[j];
                        const double rjk2 = dx * dx + dy * dy + dz * dz;
                        if (!(rjk2 < rc * rc)) continue;
                        const double fc3 = fc2 * cutoff_function(std::sqrt(rjk2), rc);
                        t4.angular(cos_theta, ang4.data());
                        for (size_t u = 0; u < u4; ++u) ejk4[u] = std::exp(-t4.etas[u] * rjk2);
                        double* g = row + base_g4 + pair * n_g4;
                        for (int p = 0; p < n_g4; ++p) {
                            const int u = t4.eta_of[p];
                            g[p] += t4.norm[p] * ang4[t4.shape_of[p]] * e4[j * u4 + u] * e4[k * u4 + u] * ejk4[u] * fc3;
                        }
                    }
                }
            }
        }
    }
    if (zero_length > 0) throw_zero_length_bonds(zero_length);
}

int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

}  // namespace mlclass
