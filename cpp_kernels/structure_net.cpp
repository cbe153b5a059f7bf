// StructureNet inference on the CPU (ovito_mlclass/training/network.py): standardised descriptors,
// dense layers with SiLU, class posteriors (softmax), site posteriors, and the novelty of the
// predicted class (a Mahalanobis distance). Torch runs the network as a few dozen operators per
// batch of atoms, each a pass through memory and a meeting of the threads; here a block of atoms
// goes through the whole network in L1, straight from the float64 descriptors. float32 throughout,
// like the network; tested against the TorchScript module.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "dense.hpp"
#include "kernels.hpp"
#include "simd_math.hpp"
#include "threads.hpp"

namespace mlclass {
namespace {

constexpr int kBlock = 64;  // atoms per pass through the network (a multiple of 4, dense.hpp)

inline int padded16(int width) { return (width + 15) / 16 * 16; }

inline float normal_or_zero(float w) { return std::fabs(w) < std::numeric_limits<float>::min() ? 0.0f : w; }

// A layer as the micro-kernel reads it: the weights transposed (in x out), the outputs padded to a
// multiple of 16 with zero weights and biases (a zero output of a hidden layer stays 0 through SiLU
// and meets zero weights in the next layer). Subnormal weights (training leaves a few, below 1e-38)
// are set to 0: every product with one would be subnormal, which costs the processor ~100 cycles.
struct Layer {
    int in = 0, out = 0;
    std::vector<float> w_t, b;
    Layer(const float* weight, const float* bias, int rows, int in_used, int in_padded)
        : in(in_padded), out(padded16(rows)), w_t(size_t(in_padded) * out), b(out) {
        for (int o = 0; o < rows; ++o) {
            for (int i = 0; i < in_used; ++i)
                w_t[size_t(i) * out + o] = normal_or_zero(weight[size_t(o) * in_used + i]);
            if (bias) b[o] = normal_or_zero(bias[o]);
        }
    }
    void apply(const float* x, int rows, float* y) const {
        dense::dense_layer(out, x, rows, in, w_t.data(), b.data(), false, y);
    }
};

// x sigmoid(x), with e^-|x| so that nothing overflows
void silu(float* v, int count) {
#pragma omp simd
    for (int i = 0; i < count; ++i) {
        const float e = expf_nonpositive(-std::fabs(v[i]));
        const float sigmoid = v[i] >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
        v[i] *= sigmoid;
    }
}

// softmax of `count` logits into out
void softmax(const float* logits, int count, float* out) {
    float top = logits[0];
    for (int c = 1; c < count; ++c) top = std::max(top, logits[c]);
    float sum = 0.0f;
    for (int c = 0; c < count; ++c) sum += out[c] = expf_nonpositive(logits[c] - top);
    for (int c = 0; c < count; ++c) out[c] /= sum;
}

}  // namespace

void structure_net(int64_t n, const double* x, const StructureNetWeights& net, float* probs, float* sites,
                   float* novelty, int32_t* most_probable, float* confidence) {
    const int F = net.n_features, C = net.n_classes, S = net.n_sites;
    std::vector<Layer> hidden;
    int width = F, width_used = F;
    for (size_t l = 0; l < net.widths.size(); ++l) {
        hidden.emplace_back(net.weights[l], net.biases[l], net.widths[l], width_used, width);
        width = hidden.back().out, width_used = net.widths[l];
    }
    const Layer classes(net.class_weight, net.class_bias, C, width_used, width);
    const Layer site_layer(net.site_weight, net.site_bias, S, width_used, width);
    std::vector<Layer> factors;  // per class: (z - mean) factor, no bias
    if (novelty)
        for (int c = 0; c < C; ++c) {
            std::vector<float> factor_t(size_t(F) * F);  // Layer transposes (out, in); the factor is (in, out) already
            const float* f = net.novelty_factors + size_t(c) * F * F;
            for (int i = 0; i < F; ++i)
                for (int o = 0; o < F; ++o) factor_t[size_t(o) * F + i] = f[size_t(i) * F + o];
            factors.emplace_back(factor_t.data(), nullptr, F, F, F);
        }
    int widest = padded16(F);
    for (const Layer& l : hidden) widest = std::max(widest, l.out);

    ThreadErrors errors;
#pragma omp parallel
    {
        std::vector<float> z, h, g, logits, site_logits, d, y;
        std::vector<int> best, order;
        errors.run([&] {
            z.resize(size_t(kBlock) * F), h.resize(size_t(kBlock) * widest), g.resize(size_t(kBlock) * widest);
            logits.resize(size_t(kBlock) * classes.out), site_logits.resize(size_t(kBlock) * site_layer.out);
            d.resize(size_t(kBlock) * F), y.resize(size_t(kBlock) * padded16(F));
            best.resize(kBlock), order.resize(kBlock);
        });
#pragma omp for schedule(static)
        for (int64_t start = 0; start < n; start += kBlock) errors.run([&] {
            const int rows = int(std::min<int64_t>(kBlock, n - start)), padded = (rows + 3) / 4 * 4;
            for (int r = 0; r < rows; ++r) {  // as torch does it: the float32 descriptors, then (x - mean) / std
                const double* in = x + (start + r) * F;
                for (int f = 0; f < F; ++f) z[r * F + f] = (float(in[f]) - net.mean[f]) * net.inv_std[f];
            }
            std::fill(z.begin() + size_t(rows) * F, z.begin() + size_t(padded) * F, 0.0f);
            const float* input = z.data();
            for (size_t l = 0; l < hidden.size(); ++l) {
                float* out = l % 2 ? g.data() : h.data();
                hidden[l].apply(input, padded, out);
                silu(out, padded * hidden[l].out);
                input = out;
            }
            classes.apply(input, padded, logits.data());
            for (int r = 0; r < rows; ++r) {
                float* p = probs + (start + r) * C;
                softmax(&logits[r * classes.out], C, p);
                // the first of equal largest posteriors, as numpy's argmax: saves the caller two passes
                const int c = int(std::max_element(p, p + C) - p);
                most_probable[start + r] = c, confidence[start + r] = p[c];
            }
            if (S) {
                site_layer.apply(input, padded, site_logits.data());
                for (int r = 0; r < rows; ++r) softmax(&site_logits[r * site_layer.out], S, sites + (start + r) * S);
            }
            if (!novelty) return;
            // the block's atoms grouped by predicted class, each group through its class's factor
            for (int r = 0; r < rows; ++r) {
                const float* l = &logits[r * classes.out];
                best[r] = int(std::max_element(l, l + C) - l);  // the first of equal maxima, as torch.argmax
            }
            for (int r = 0; r < rows; ++r) order[r] = r;
            std::sort(order.begin(), order.begin() + rows, [&](int a, int b) { return best[a] < best[b]; });
            for (int first = 0; first < rows;) {
                const int c = best[order[first]];
                int last = first;
                while (last < rows && best[order[last]] == c) ++last;
                const int count = last - first, count_padded = (count + 3) / 4 * 4;
                const float* mean = net.novelty_means + size_t(c) * F;
                for (int k = 0; k < count; ++k)
                    for (int f = 0; f < F; ++f) d[k * F + f] = z[order[first + k] * F + f] - mean[f];
                std::fill(d.begin() + size_t(count) * F, d.begin() + size_t(count_padded) * F, 0.0f);
                const Layer& factor = factors[c];
                factor.apply(d.data(), count_padded, y.data());
                for (int k = 0; k < count; ++k) {
                    const float* row = &y[k * factor.out];
                    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)  // partial sums in the vector's lanes: not one chain of additions
                    for (int o = 0; o < factor.out; ++o) sum += row[o] * row[o];
                    novelty[start + order[first + k]] = sum * net.novelty_scales[c];
                }
                first = last;
            }
        });
    }
    errors.rethrow();
}

}  // namespace mlclass
