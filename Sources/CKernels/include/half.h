// IEEE binary16 ("half") conversions for the float16 KV cache: rounding to nearest even, overflow to infinity,
// subnormals kept, NaN kept NaN. The AVX-512 path is chosen at run time; the portable path is bit manipulation.
#ifndef R2EC_HALF_H
#define R2EC_HALF_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// dst[i] = binary16(src[i]) for i < n.
void r2ec_f32_to_f16(const float *src, uint16_t *dst, int n);
/// dst[i] = float(src[i]) for i < n (exact).
void r2ec_f16_to_f32(const uint16_t *src, float *dst, int n);

#ifdef __cplusplus
}
#endif
#endif
