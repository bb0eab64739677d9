// Attention of one query row per head against a sequence's cached keys and values (one decode step), for the
// query heads of one grouped-query group: a few hundred keys of 64-128 floats, where BLAS call and packing
// overheads would cost more than the math.
#ifndef R2EC_DECODE_ATTENTION_H
#define R2EC_DECODE_ATTENTION_H
#include <stdint.h>
#include "cpu.h"

#ifdef __cplusplus
extern "C" {
#endif

/// out[h] = softmax(scale · q[h] · K^T) · V for the `heads` consecutive query heads at q (head_dim floats apart; the
/// outputs likewise at out) against key/value rows 0..<context with row stride `stride`. head_dim is a multiple of
/// 16; `scores` holds heads * context floats. `isa` is R2EC_ISA_AVX512 or R2EC_ISA_AVX2 (the portable path is
/// Swift's, Model's DecodeAttention).
void r2ec_decode_attention(r2ec_isa isa, const float *q, int heads, const float *keys, const float *values, int stride,
                           int context, int head_dim, float scale, float *scores, float *out);

/// The same with keys and values stored as IEEE binary16 (a float16 KV cache).
void r2ec_decode_attention_f16(r2ec_isa isa, const float *q, int heads, const uint16_t *keys, const uint16_t *values,
                               int stride, int context, int head_dim, float scale, float *scores, float *out);

#ifdef __cplusplus
}
#endif
#endif
