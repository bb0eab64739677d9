// IEEE binary16 ("half") conversions for the float16 KV cache: rounding to nearest even, overflow to infinity,
// subnormals kept, NaN kept NaN. `isa` picks the AVX-512 (vcvtps2ph on 16 floats), AVX2/F16C (8 floats) or portable
// (bit manipulation) path; Tensor.CPU.isa passes the one this CPU runs.
#ifndef R2EC_HALF_H
#define R2EC_HALF_H
#include <stdint.h>
#include "cpu.h"

#ifdef __cplusplus
extern "C" {
#endif

/// dst[i] = binary16(src[i]) for i < n.
void r2ec_f32_to_f16(r2ec_isa isa, const float *src, uint16_t *dst, int n);
/// dst[i] = float(src[i]) for i < n (exact).
void r2ec_f16_to_f32(r2ec_isa isa, const uint16_t *src, float *dst, int n);

#ifdef __cplusplus
}
#endif
#endif
