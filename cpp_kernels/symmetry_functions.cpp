// Behler-Parrinello atom-centred symmetry functions G2, G4, G5 (J. Behler, J. Chem. Phys. 134, 074106 (2011)).
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels.hpp"
#include "simd_math.hpp"
#include "threads.hpp"

namespace mlclass {

namespace {

// Neighbour pairs (j, k) of one atom are processed for a fixed j and kChunk partners k at once;
// every step below is a short loop over the chunk that the compiler turns into SIMD code.
constexpr int kChunk = 16;

// The parameter rows of G4 or G5 share few distinct eta and (zeta, lambda) values; each distinct
// value is evaluated once per bond or pair and combined per row.
struct AngularTerms {
    std::vector<double> etas;                       // distinct eta
    std::vector<std::pair<double, double>> shapes;  // distinct (zeta, lambda)
    std::vector<int> eta_of, shape_of;              // per parameter row

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
        }
    }

    // out[s][c] = ((1 + lambda_s cos_c) / 2)^zeta_s, which lies in [0, 1] (2^(1 - zeta) (1 + lambda
    // cos)^zeta, the factor 2 applied per row, without 0 * inf for zeta > 1023); integer zeta by
    // repeated squaring (uniform across the chunk, so it vectorises), others by pow.
    void angular(const double* cos_theta, double (*out)[kChunk]) const {
        for (size_t s = 0; s < shapes.size(); ++s) {
            const double zeta = shapes[s].first, lambda = shapes[s].second;
            if (zeta == std::floor(zeta) && zeta >= 0.0 && zeta <= 64.0) {
                // every step a whole-chunk vector loop (without the simd pragmas the compiler
                // left them scalar: 29% of the kernel)
                alignas(64) double factor[kChunk];
                double* __restrict result = out[s];
#pragma omp simd
                for (int c = 0; c < kChunk; ++c) result[c] = 1.0, factor[c] = 0.5 * (1.0 + lambda * cos_theta[c]);
                for (int e = int(zeta); e > 0; e >>= 1) {
                    if (e & 1) {
#pragma omp simd
                        for (int c = 0; c < kChunk; ++c) result[c] *= factor[c];
                    }
#pragma omp simd
                    for (int c = 0; c < kChunk; ++c) factor[c] *= factor[c];
                }
            } else {
                for (int c = 0; c < kChunk; ++c) {
                    const double base = 0.5 * (1.0 + lambda * cos_theta[c]);
                    out[s][c] = base > 0.0 ? std::pow(base, zeta) : 0.0;
                }
            }
        }
    }
};

inline double cutoff_function(double r, double rc) { return r < rc ? 0.5 * (cos_pi(r / rc) + 1.0) : 0.0; }

// The bonds of one atom inside the cutoff, structure of arrays, padded to whole chunks with
// dummy bonds whose cutoff function is 0.
struct Bonds {
    Buffer<double> x, y, z, r, fc, e4, e5;  // e4/e5: exp(-eta r^2) per distinct eta, [eta][bond]
    std::vector<int> species;
    int n = 0;

    void clear() { x.clear(); y.clear(); z.clear(); r.clear(); fc.clear(); species.clear(); n = 0; }
    void add(const double* v, double rr, double f, int s) {
        x.push_back(v[0]); y.push_back(v[1]); z.push_back(v[2]); r.push_back(rr); fc.push_back(f);
        species.push_back(s);
        ++n;
    }
    void pad_and_tabulate(const AngularTerms& t4, const AngularTerms& t5) {
        static const double far_away[3] = {1e3, 0.0, 0.0};
        while (x.size() % kChunk) add(far_away, 1e3, 0.0, 0);
        n = int(x.size());
        tabulate(t4, e4);
        tabulate(t5, e5);
    }
    void tabulate(const AngularTerms& t, Buffer<double>& e) const {
        e.resize(t.etas.size() * n);
        for (size_t u = 0; u < t.etas.size(); ++u)
#pragma omp simd
            for (int b = 0; b < n; ++b) e[u * n + b] = exp_nonpositive(-t.etas[u] * r[b] * r[b]);
    }
};

}  // namespace

void symmetry_functions(const NeighborList& nl, const int32_t* species, int n_species, double rc,
                        const double* g2, int n_g2, const double* g4, int n_g4, const double* g5, int n_g5,
                        double* out) {
    const int n_pairs = n_species * (n_species + 1) / 2;
    const int width = n_species * n_g2 + n_pairs * (n_g4 + n_g5);
    const int base_g4 = n_species * n_g2, base_g5 = base_g4 + n_pairs * n_g4;
    const AngularTerms t4(g4, n_g4), t5(g5, n_g5);
    const int u4 = int(t4.etas.size()), u5 = int(t5.etas.size());
    const bool angular = n_g4 + n_g5 > 0;
    int64_t zero_length = 0;

    ThreadErrors errors;
#pragma omp parallel reduction(+ : zero_length)
    {
        Bonds bonds;
        // Per chunk: angular factors per distinct shape, radial factors per distinct eta; running
        // sums per species of k and parameter row, one lane per chunk position.
        std::vector<double> ang4_store, ang5_store, radial4_store, radial5_store, sum4, sum5;
        errors.run([&] {
            ang4_store.resize(t4.shapes.size() * kChunk), ang5_store.resize(t5.shapes.size() * kChunk);
            radial4_store.resize(u4 * kChunk), radial5_store.resize(u5 * kChunk);
            sum4.resize(size_t(n_species) * n_g4 * kChunk), sum5.resize(size_t(n_species) * n_g5 * kChunk);
        });
        auto* ang4 = reinterpret_cast<double(*)[kChunk]>(ang4_store.data());
        auto* ang5 = reinterpret_cast<double(*)[kChunk]>(ang5_store.data());
        auto* radial4 = reinterpret_cast<double(*)[kChunk]>(radial4_store.data());
        auto* radial5 = reinterpret_cast<double(*)[kChunk]>(radial5_store.data());

#pragma omp for schedule(dynamic, 64)
        for (int64_t i = 0; i < nl.n_atoms; ++i) errors.run([&] {
            double* row = out + i * width;
            std::fill(row, row + width, 0.0);
            bonds.clear();
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
                    row[s * n_g2 + k] += exp_nonpositive(-g2[2 * k] * d * d) * fc;
                }
                if (angular) bonds.add(v, r, fc, s);
            }
            if (!angular || bonds.n < 2) return;
            const int real_bonds = bonds.n;
            bonds.pad_and_tabulate(t4, t5);
            const int nb = bonds.n;
            for (int j = 0; j + 1 < real_bonds; ++j) {
                std::fill(sum4.begin(), sum4.end(), 0.0);
                std::fill(sum5.begin(), sum5.end(), 0.0);
                const double xj = bonds.x[j], yj = bonds.y[j], zj = bonds.z[j], rj = bonds.r[j], fj = bonds.fc[j];
                // chunks start at the chunk holding j + 1; partners k <= j are masked out
                for (int k0 = (j + 1) / kChunk * kChunk; k0 < nb; k0 += kChunk) {
                    alignas(64) double cos_theta[kChunk], fc2[kChunk], fc3[kChunk], rjk2[kChunk];
#pragma omp simd
                    for (int c = 0; c < kChunk; ++c) {
                        const int k = k0 + c;
                        const double dx = bonds.x[k] - xj, dy = bonds.y[k] - yj, dz = bonds.z[k] - zj;
                        cos_theta[c] = (xj * bonds.x[k] + yj * bonds.y[k] + zj * bonds.z[k]) / (rj * bonds.r[k]);
                        fc2[c] = k > j ? fj * bonds.fc[k] : 0.0;
                        rjk2[c] = dx * dx + dy * dy + dz * dz;
                        const double rjk = std::sqrt(rjk2[c]);
                        fc3[c] = rjk < rc ? fc2[c] * 0.5 * (cos_pi(rjk / rc) + 1.0) : 0.0;
                    }
                    // Per distinct eta, everything but the angular factor and the j terms:
                    // G5: e_k fc_j fc_k, G4: e_k e_jk fc_j fc_k fc_jk (e = exp(-eta r^2)).
                    if (n_g5 > 0) {
                        t5.angular(cos_theta, ang5);
                        for (int u = 0; u < u5; ++u)
#pragma omp simd
                            for (int c = 0; c < kChunk; ++c) radial5[u][c] = bonds.e5[size_t(u) * nb + k0 + c] * fc2[c];
                    }
                    if (n_g4 > 0) {
                        t4.angular(cos_theta, ang4);
                        for (int u = 0; u < u4; ++u)
#pragma omp simd
                            for (int c = 0; c < kChunk; ++c)
                                radial4[u][c] = bonds.e4[size_t(u) * nb + k0 + c] *
                                                exp_nonpositive(-t4.etas[u] * rjk2[c]) * fc3[c];
                    }
                    for (int s = 0; s < n_species; ++s) {
                        alignas(64) double mine[kChunk];
                        for (int c = 0; c < kChunk; ++c)
                            mine[c] = n_species == 1 || bonds.species[k0 + c] == s ? 1.0 : 0.0;
                        for (int p = 0; p < n_g5; ++p) {
                            const double* angular_p = ang5[t5.shape_of[p]];
                            const double* radial_p = radial5[t5.eta_of[p]];
                            double* acc = sum5.data() + (size_t(s) * n_g5 + p) * kChunk;
#pragma omp simd
                            for (int c = 0; c < kChunk; ++c) acc[c] += mine[c] * angular_p[c] * radial_p[c];
                        }
                        for (int p = 0; p < n_g4; ++p) {
                            const double* angular_p = ang4[t4.shape_of[p]];
                            const double* radial_p = radial4[t4.eta_of[p]];
                            double* acc = sum4.data() + (size_t(s) * n_g4 + p) * kChunk;
#pragma omp simd
                            for (int c = 0; c < kChunk; ++c) acc[c] += mine[c] * angular_p[c] * radial_p[c];
                        }
                    }
                }
                const int sj = bonds.species[j];
                for (int s = 0; s < n_species; ++s) {
                    const int a = std::min(sj, s), c = std::max(sj, s);
                    const int pair = a * n_species - a * (a - 1) / 2 + (c - a);
                    // the j factors: 2 exp(-eta r_ij^2)
                    for (int p = 0; p < n_g4; ++p) {
                        const double* acc = sum4.data() + (size_t(s) * n_g4 + p) * kChunk;
                        double total = 0.0;
                        for (int l = 0; l < kChunk; ++l) total += acc[l];
                        row[base_g4 + pair * n_g4 + p] += total * 2.0 * bonds.e4[size_t(t4.eta_of[p]) * nb + j];
                    }
                    for (int p = 0; p < n_g5; ++p) {
                        const double* acc = sum5.data() + (size_t(s) * n_g5 + p) * kChunk;
                        double total = 0.0;
                        for (int l = 0; l < kChunk; ++l) total += acc[l];
                        row[base_g5 + pair * n_g5 + p] += total * 2.0 * bonds.e5[size_t(t5.eta_of[p]) * nb + j];
                    }
                }
            }
        });
    }
    errors.rethrow();
    if (zero_length > 0) throw_zero_length_bonds(zero_length);
}

void relative_distances(int64_t n, int k, int normalize, const double* vectors, double* out, int64_t out_stride) {
    ThreadErrors errors;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) errors.run([&] {
        const double* v = vectors + 3 * k * i;
        double* row = out + out_stride * i;
        double sum = 0.0;
        for (int j = 0; j < k; ++j) {
            row[j] = std::sqrt(v[3 * j] * v[3 * j] + v[3 * j + 1] * v[3 * j + 1] + v[3 * j + 2] * v[3 * j + 2]);
            if (j < normalize) sum += row[j];
        }
        const double scale = sum > 0.0 ? normalize / sum : 0.0;
        for (int j = 0; j < k; ++j) row[j] *= scale;
    });
    errors.rethrow();
}

void point_cloud(int64_t n, int k_max, int k, int normalize, const double* vectors, double* out, int64_t out_stride) {
    ThreadErrors errors;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) errors.run([&] {
        const double* v = vectors + 3 * int64_t(k_max) * i;
        double* row = out + out_stride * i;
        double sum = 0.0;
        for (int j = 0; j < normalize; ++j)
            sum += std::sqrt(v[3 * j] * v[3 * j] + v[3 * j + 1] * v[3 * j + 1] + v[3 * j + 2] * v[3 * j + 2]);
        const double inverse = sum > 0.0 ? normalize / sum : 0.0;
        for (int j = 0; j < 3 * k; ++j) row[j] = v[j] * inverse;
    });
    errors.rethrow();
}

int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

}  // namespace mlclass
