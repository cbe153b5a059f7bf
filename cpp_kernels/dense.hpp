// Dense layers on the CPU for the networks' compiled inference (pointnet.cpp, structure_net.cpp):
// blocks of rows times the layer's weights, held in vector registers. float32, like the networks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace mlclass {
namespace dense {

// One layer for every row (a point of a cloud, an atom): y (points x out) = x (points x in) W^T + b,
// ReLU'd if `relu`, or with `pooled` given, max-accumulated into pooled (out) instead of stored. W is given
// transposed (in x out, row-major). `points` is a multiple of 4 (the callers pad: clouds with copies
// of a point, which change no maximum).
// For a width of 8 or a multiple of 16: blocks of 4 points x up to 64 outputs held in up to 16
// vector registers of 8 (width 8) or 16 floats (GCC/Clang vector extension; the compiler picks the
// instructions, two 8-wide halves where there are no 16-wide ones), each weight vector loaded once
// per 4 points -- a GEMM micro-kernel. The same sums in the same order whatever the vector width.
template <int LANES>
struct Vec {
    typedef float type __attribute__((vector_size(4 * LANES)));
    typedef float unaligned __attribute__((vector_size(4 * LANES), aligned(4), may_alias));
    static type load(const float* p) { return *reinterpret_cast<const unaligned*>(p); }
    static void store(float* p, type v) { *reinterpret_cast<unaligned*>(p) = v; }
};

template <int OUT>
inline void layer(const float* x, int points, int in, const float* w_t, const float* b, bool relu, float* y,
                  float* pooled) {
    static_assert(OUT % 16 == 0 || OUT == 8, "whole blocks of vectors only");
    constexpr int lanes = OUT == 8 ? 8 : 16, vectors = OUT / lanes;
    constexpr int block = vectors % 4 == 0 ? 4 : vectors % 3 == 0 ? 3 : vectors % 2 == 0 ? 2 : 1;
    using V = Vec<lanes>;
    using Lanes = typename V::type;
    const Lanes zero = {};
    for (int p = 0; p < points; p += 4) {
        for (int v0 = 0; v0 < vectors; v0 += block) {
            Lanes acc[4][block];
            for (int q = 0; q < 4; ++q)
                for (int u = 0; u < block; ++u) acc[q][u] = V::load(b + lanes * (v0 + u));
            for (int i = 0; i < in; ++i) {
                Lanes w[block];
                for (int u = 0; u < block; ++u) w[u] = V::load(w_t + int64_t(i) * OUT + lanes * (v0 + u));
                for (int q = 0; q < 4; ++q) {
                    const float s = x[int64_t(p + q) * in + i];
                    for (int u = 0; u < block; ++u) acc[q][u] += s * w[u];
                }
            }
            for (int q = 0; q < 4; ++q)
                for (int u = 0; u < block; ++u) {
                    if (pooled) {
                        const Lanes m = V::load(pooled + lanes * (v0 + u));
                        V::store(pooled + lanes * (v0 + u), acc[q][u] > m ? acc[q][u] : m);
                    } else {
                        V::store(y + int64_t(p + q) * OUT + lanes * (v0 + u),
                                 relu ? (acc[q][u] > zero ? acc[q][u] : zero) : acc[q][u]);
                    }
                }
        }
    }
}

inline void layer_any(int out, const float* x, int points, int in, const float* w_t, const float* b, bool relu,
                      float* y, float* pooled) {
    thread_local std::vector<float> row;  // per thread, not per call: this runs once per atom and layer
    row.resize(out);
    for (int p = 0; p < points; ++p) {
        for (int o = 0; o < out; ++o) row[o] = b[o];
        for (int i = 0; i < in; ++i) {
            const float s = x[int64_t(p) * in + i];
            for (int o = 0; o < out; ++o) row[o] += s * w_t[int64_t(i) * out + o];
        }
        for (int o = 0; o < out; ++o) {
            if (pooled) pooled[o] = std::max(pooled[o], row[o]);
            else y[int64_t(p) * out + o] = relu ? std::max(row[o], 0.0f) : row[o];
        }
    }
}

// Widths that are multiples of 16 up to 256 run the micro-kernel (callers pad their layers to them
// with zero weights), the others the plain loops.
template <int OUT = 16>
inline void layer_of_width(int out, const float* x, int points, int in, const float* w_t, const float* b, bool relu,
                           float* y, float* pooled) {
    if constexpr (OUT <= 256) {
        if (out == OUT) return layer<OUT>(x, points, in, w_t, b, relu, y, pooled);
        return layer_of_width<OUT + 16>(out, x, points, in, w_t, b, relu, y, pooled);
    } else {
        return layer_any(out, x, points, in, w_t, b, relu, y, pooled);
    }
}

inline void dense_layer(int out, const float* x, int points, int in, const float* w_t, const float* b, bool relu,
                        float* y, float* pooled = nullptr) {
    if (out == 8) return layer<8>(x, points, in, w_t, b, relu, y, pooled);
    return layer_of_width(out, x, points, in, w_t, b, relu, y, pooled);
}

}  // namespace dense
}  // namespace mlclass
