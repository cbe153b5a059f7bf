// exp (double and float) and cos written as branch-free polynomials so that loops calling them vectorise (libm's
// scalar calls do not). Both are accurate to a few ulp on the ranges used by the kernels.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace mlclass {

// e^x for x <= 0 (0 below -700, where e^x < 1e-304). x = n ln2 + r, |r| <= ln2 / 2, and e^r by
// its Taylor series to r^13 (truncation < 1e-17).
#pragma omp declare simd
inline double exp_nonpositive(double x) {
    const double clamped = x < -700.0 ? -700.0 : x;
    // n = round(x / ln 2): adding and subtracting 1.5 * 2^52 rounds to an integer without a call
    const double n = (clamped * 1.4426950408889634 + 6755399441055744.0) - 6755399441055744.0;
    // r = x - n ln2, with ln2 split in two parts so that the product is exact
    const double r = (clamped - n * 0.6931471803691238) - n * 1.9082149292705877e-10;
    double p = 1.0 / 6227020800.0;                                 // 1/13!
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    const int64_t bits = (static_cast<int64_t>(n) + 1023) << 52;  // 2^n
    double scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return x < -700.0 ? 0.0 : p * scale;
}

// e^x for float x <= 0 (0 below -87, where e^x < 2e-38), for the networks' activations and
// softmax: as exp_nonpositive, with the Taylor series of e^r to r^7 (truncation < 3e-9, below
// float's rounding). A function of its own rather than a template of the double one: the degree,
// the clamp and the split of ln 2 all differ with the precision.
#pragma omp declare simd
inline float expf_nonpositive(float x) {
    const float clamped = x < -87.0f ? -87.0f : x;
    const float n = (clamped * 1.44269504f + 12582912.0f) - 12582912.0f;  // round(x / ln 2)
    const float r = (clamped - n * 0.693359375f) + n * 2.12194440e-4f;   // x - n ln2, ln2 in two parts
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return x < -87.0f ? 0.0f : p * scale;
}

// cos(pi t) for 0 <= t <= 1, as -sin(pi (t - 1/2)) by its Taylor series to the 23rd power
// (|pi (t - 1/2)| <= pi/2, truncation < 1e-18).
#pragma omp declare simd
inline double cos_pi(double t) {
    const double x = M_PI * (t - 0.5);
    const double x2 = x * x;
    double p = -1.0 / 25852016738884976640000.0;  // -1/23!
    p = p * x2 + 1.0 / 51090942171709440000.0;    // 1/21!
    p = p * x2 - 1.0 / 121645100408832000.0;      // -1/19!
    p = p * x2 + 1.0 / 355687428096000.0;         // 1/17!
    p = p * x2 - 1.0 / 1307674368000.0;           // -1/15!
    p = p * x2 + 1.0 / 6227020800.0;              // 1/13!
    p = p * x2 - 1.0 / 39916800.0;                // -1/11!
    p = p * x2 + 1.0 / 362880.0;                  // 1/9!
    p = p * x2 - 1.0 / 5040.0;                    // -1/7!
    p = p * x2 + 1.0 / 120.0;                     // 1/5!
    p = p * x2 - 1.0 / 6.0;                       // -1/3!
    p = p * x2 + 1.0;
    return -x * p;
}

}  // namespace mlclass
