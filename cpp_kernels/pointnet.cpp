// PointNet inference on the CPU: the `embed` half of ovito_mlclass/training/network.py's PointNet
// (input alignment folded into the first layer, per-point MLP, max over the points), one atom at a
// time. Torch runs the same arithmetic as a chain of batched operators, each writing an
// (atoms x points x width) tensor to memory; here an atom's activations stay in L1 and the layer
// widths are compile-time constants for the usual sizes, so the accumulators stay in registers
// (1.9x fewer seconds per atom than the frozen TorchScript module on one core, measured).
// float32 throughout, like the network; tested against the TorchScript module.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "dense.hpp"
#include "kernels.hpp"
#include "threads.hpp"

namespace mlclass {
namespace {

using dense::dense_layer;

inline float norm3(const float* v) { return std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]); }

// PointNet.frame for one cloud (p: n_points x 3): columns e1, e2, e3 as frame[3 * row + column].
// Same operations and tie-breaking (first minimum) as the torch code.
void frame(const float* p, const float* length, int n_points, float align_radius, float* out) {
    const float tiny = 1e-12f;
    int nearest = 0;
    for (int j = 1; j < n_points; ++j)
        if (length[j] < length[nearest]) nearest = j;
    float e1[3] = {p[3 * nearest], p[3 * nearest + 1], p[3 * nearest + 2]};
    const float n1 = std::max(norm3(e1), tiny);
    for (float& c : e1) c /= n1;
    int side = 0;
    float best = std::numeric_limits<float>::infinity();
    for (int j = 0; j < n_points; ++j) {
        const float* q = p + 3 * j;
        const float cosine = (q[0] * e1[0] + q[1] * e1[1] + q[2] * e1[2]) / std::max(length[j], tiny);
        const float score = std::fabs(cosine) + (length[j] > align_radius ? 2.0f : 0.0f);
        if (score < best) best = score, side = j;
    }
    const float* v = p + 3 * side;
    const float along = v[0] * e1[0] + v[1] * e1[1] + v[2] * e1[2];
    float e2[3] = {v[0] - along * e1[0], v[1] - along * e1[1], v[2] - along * e1[2]};
    const float n2 = std::max(norm3(e2), tiny);
    for (float& c : e2) c /= n2;
    const float e3[3] = {e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2], e1[0] * e2[1] - e1[1] * e2[0]};
    for (int r = 0; r < 3; ++r) {
        out[3 * r] = e1[r];
        out[3 * r + 1] = e2[r];
        out[3 * r + 2] = e3[r];
    }
}

}  // namespace

void pointnet_embed(int64_t n, int n_points, const double* clouds, int64_t cloud_stride, const PointNetWeights& net,
                    float align_radius, float* out) {
    const int w0 = net.first_width;
    const int layers = int(net.widths.size());
    const int last = layers ? net.widths.back() : w0;
    const int padded = (n_points + 3) / 4 * 4;
    int widest = w0;
    for (int w : net.widths) widest = std::max(widest, w);

    ThreadErrors errors;
#pragma omp parallel
    {
        std::vector<float> p, length, xyzr, m, h, g;
        errors.run([&] {
            p.resize(3 * n_points), length.resize(n_points), xyzr.resize(4 * size_t(padded)), m.resize(4 * size_t(w0));
            h.resize(size_t(padded) * widest), g.resize(size_t(padded) * widest);
        });
#pragma omp for schedule(dynamic, 256)
        for (int64_t i = 0; i < n; ++i) errors.run([&] {
            const double* cloud = clouds + cloud_stride * i;
            for (int j = 0; j < 3 * n_points; ++j) p[j] = float(cloud[j]);
            for (int j = 0; j < n_points; ++j) length[j] = norm3(&p[3 * j]);
            // the first layer's input: (x, y, z, |r|) per point, padded with copies of the first point
            for (int j = 0; j < padded; ++j) {
                const int from = j < n_points ? j : 0;
                for (int c = 0; c < 3; ++c) xyzr[4 * j + c] = p[3 * from + c];
                xyzr[4 * j + 3] = length[from];
            }
            // its weights (transposed, 4 x w0); with the alignment, on the cloud in its own frame F:
            // (p F) W_xyz^T = p (F W_xyz^T), one matrix per atom instead of rotating every point
            const float* w = net.first_weight;  // (w0, 4), as torch stores it
            float f[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
            if (align_radius > 0.0f) frame(p.data(), length.data(), n_points, align_radius, f);
            for (int o = 0; o < w0; ++o) {
                for (int r = 0; r < 3; ++r)
                    m[r * w0 + o] = f[3 * r] * w[4 * o] + f[3 * r + 1] * w[4 * o + 1] + f[3 * r + 2] * w[4 * o + 2];
                m[3 * w0 + o] = w[4 * o + 3];
            }
            float* pooled = out + int64_t(last) * i;
            std::fill(pooled, pooled + last, -std::numeric_limits<float>::infinity());
            // every layer but the last writes its ReLU'd output; the last goes straight into the
            // maximum over the points: max_j relu(y_j) = relu(max_j y_j)
            dense_layer(w0, xyzr.data(), padded, 4, m.data(), net.first_bias, true, h.data(), layers ? nullptr : pooled);
            int width = w0;
            for (int l = 0; l < layers; ++l) {
                const bool final = l + 1 == layers;
                dense_layer(net.widths[l], h.data(), padded, width, net.weights_t[l], net.biases[l], true, g.data(),
                            final ? pooled : nullptr);
                std::swap(h, g);
                width = net.widths[l];
            }
            for (int o = 0; o < last; ++o) pooled[o] = std::max(pooled[o], 0.0f);
        });
    }
    errors.rethrow();
}

template <typename T>
void neighbor_mean(int64_t n, int features, const T* h, int k, const int64_t* neighbors, T* out) {
    ThreadErrors errors;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) errors.run([&] {
        T* row = out + int64_t(features) * i;
        const T* own = h + int64_t(features) * i;
        for (int f = 0; f < features; ++f) row[f] = own[f];
        int count = 1;
        for (int m = 0; m < k; ++m) {
            const int64_t j = neighbors[int64_t(k) * i + m];
            if (j < 0) continue;
            const T* other = h + int64_t(features) * j;
#pragma omp simd
            for (int f = 0; f < features; ++f) row[f] += other[f];
            ++count;
        }
        for (int f = 0; f < features; ++f) row[f] /= T(count);
    });
    errors.rethrow();
}

template void neighbor_mean<float>(int64_t, int, const float*, int, const int64_t*, float*);
template void neighbor_mean<double>(int64_t, int, const double*, int, const int64_t*, double*);

}  // namespace mlclass
