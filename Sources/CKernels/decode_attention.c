// The decode attention kernel (include/decode_attention.h), AVX-512F through a target attribute. Scores take one
// pass over the keys with every head of the group per key row; the softmax exponential is a degree-6 polynomial
// scaled by 2^n (scalef); the weighted sum of values takes four 16-float accumulators per pass over the rows.
#include "decode_attention.h"
#include <immintrin.h>

#if defined(__x86_64__)
#define R2EC_AVX512 __attribute__((target("avx512f")))

/// e^x for x <= 0 (scores minus their maximum): e^x = 2^n · p(r), n = round(x / ln 2), |r| <= ln 2 / 2.
R2EC_AVX512 static inline __m512 exp_nonpositive(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/// row[0..<n] = exp(row - max(row)) in place; returns the sum.
R2EC_AVX512 static float softmax_numerators(float *row, int n) {
    __m512 vmax = _mm512_set1_ps(-__builtin_inff());
    int j = 0;
    for (; j + 16 <= n; j += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(row + j));
    __mmask16 tail = (__mmask16)((1u << (n - j)) - 1);
    if (n > j) vmax = _mm512_mask_max_ps(vmax, tail, vmax, _mm512_maskz_loadu_ps(tail, row + j));
    __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(vmax)), sum = _mm512_setzero_ps();
    for (j = 0; j + 16 <= n; j += 16) {
        __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(row + j), m));
        _mm512_storeu_ps(row + j, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (n > j) {
        __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, row + j), m));
        _mm512_mask_storeu_ps(row + j, tail, e);
        sum = _mm512_mask_add_ps(sum, tail, sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

R2EC_AVX512 void r2ec_decode_attention(const float *q, int heads, const float *keys, const float *values,
                                       int stride, int context, int head_dim, float scale, float *scores, float *out) {
    int vectors = head_dim / 16;
    for (int j = 0; j < context; j++) {
        const float *k = keys + (size_t)j * stride;
        for (int h = 0; h < heads; h++) {
            const float *qh = q + (size_t)h * head_dim;
            __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(qh), _mm512_loadu_ps(k));
            for (int v = 1; v < vectors; v++)
                acc = _mm512_fmadd_ps(_mm512_loadu_ps(qh + 16 * v), _mm512_loadu_ps(k + 16 * v), acc);
            scores[(size_t)h * context + j] = _mm512_reduce_add_ps(acc) * scale;
        }
    }
    for (int h = 0; h < heads; h++) {
        float *row = scores + (size_t)h * context;
        __m512 inverse = _mm512_set1_ps(1.0f / softmax_numerators(row, context));
        float *target = out + (size_t)h * head_dim;
        for (int v = 0; v < vectors; v += 4) {
            int n = vectors - v < 4 ? vectors - v : 4;
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(),
                   a3 = _mm512_setzero_ps();
            const float *base = values + 16 * v;
            if (n == 4) {
                for (int j = 0; j < context; j++, base += stride) {
                    __m512 p = _mm512_set1_ps(row[j]);
                    a0 = _mm512_fmadd_ps(p, _mm512_loadu_ps(base), a0);
                    a1 = _mm512_fmadd_ps(p, _mm512_loadu_ps(base + 16), a1);
                    a2 = _mm512_fmadd_ps(p, _mm512_loadu_ps(base + 32), a2);
                    a3 = _mm512_fmadd_ps(p, _mm512_loadu_ps(base + 48), a3);
                }
            } else {
                for (int j = 0; j < context; j++, base += stride) {
                    __m512 p = _mm512_set1_ps(row[j]);
                    a0 = _mm512_fmadd_ps(p, _mm512_loadu_ps(base), a0);
                    if (n > 1) a1 = _mm512_fmadd_ps(p, _mm512_loadu_ps(base + 16), a1);
                    if (n > 2) a2 = _mm512_fmadd_ps(p, _mm512_loadu_ps(base + 32), a2);
                }
            }
            _mm512_storeu_ps(target + 16 * v, _mm512_mul_ps(a0, inverse));
            if (n > 1) _mm512_storeu_ps(target + 16 * v + 16, _mm512_mul_ps(a1, inverse));
            if (n > 2) _mm512_storeu_ps(target + 16 * v + 32, _mm512_mul_ps(a2, inverse));
            if (n > 3) _mm512_storeu_ps(target + 16 * v + 48, _mm512_mul_ps(a3, inverse));
        }
    }
}
#else
void r2ec_decode_attention(const float *q, int heads, const float *keys, const float *values, int stride,
                           int context, int head_dim, float scale, float *scores, float *out) {
    (void)q; (void)heads; (void)keys; (void)values; (void)stride; (void)context; (void)head_dim; (void)scale;
    (void)scores; (void)out;
    __builtin_trap();   // callers check r2ec_has_avx512f() first
}
#endif
