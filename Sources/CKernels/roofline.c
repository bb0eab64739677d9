// Roofline yardsticks (include/roofline.h). The FMA loops keep 12 accumulators of the widest register in flight,
// each multiplied by a value just below 1 and offset by one just above, so nothing overflows or denormalises.
#include "roofline.h"
#include <immintrin.h>

enum { CHAINS = 12 };

double r2ec_fma_loop_flops(r2ec_isa isa) {
    switch (isa) {
    case R2EC_ISA_AVX512: return CHAINS * 16 * 2;
    case R2EC_ISA_AVX2: return CHAINS * 8 * 2;
    default: return CHAINS * 4 * 2;
    }
}

double r2ec_bf16_dot_loop_flops(void) { return CHAINS * 32 * 2; }

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static float fma512(long iterations) {
    __m512 acc[CHAINS], x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < iterations; n++) {
        _Pragma("clang loop unroll(full)") for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    }
    for (int i = 1; i < CHAINS; i++) acc[0] = _mm512_add_ps(acc[0], acc[i]);
    return _mm512_reduce_add_ps(acc[0]);
}

__attribute__((target("avx2,fma"))) static float fma256(long iterations) {
    __m256 acc[CHAINS], x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long n = 0; n < iterations; n++) {
        _Pragma("clang loop unroll(full)") for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    }
    for (int i = 1; i < CHAINS; i++) acc[0] = _mm256_add_ps(acc[0], acc[i]);
    float out[8];
    _mm256_storeu_ps(out, acc[0]);
    return out[0] + out[7];
}

static float sse(long iterations) {
    __m128 acc[CHAINS], x = _mm_set1_ps(0.999999f), y = _mm_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm_set1_ps((float)i);
    for (long n = 0; n < iterations; n++) {
        _Pragma("clang loop unroll(full)") for (int i = 0; i < CHAINS; i++) acc[i] = _mm_add_ps(_mm_mul_ps(acc[i], x), y);
    }
    for (int i = 1; i < CHAINS; i++) acc[0] = _mm_add_ps(acc[0], acc[i]);
    return _mm_cvtss_f32(acc[0]);
}

__attribute__((target("avx512f,avx512bw,avx512bf16"))) float r2ec_bf16_dot_loop(long iterations) {
    __m512 acc[CHAINS];
    __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80);   // bfloat16 pairs (1, 1)
    __m512bh y = (__m512bh)_mm512_set1_epi32(0x33d633d6);   // (1e-7, 1e-7)
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < iterations; n++) {
        _Pragma("clang loop unroll(full)") for (int i = 0; i < CHAINS; i++)
            acc[i] = _mm512_dpbf16_ps(acc[i], (i & 1) ? x : y, y);
    }
    for (int i = 1; i < CHAINS; i++) acc[0] = _mm512_add_ps(acc[0], acc[i]);
    return _mm512_reduce_add_ps(acc[0]);
}

__attribute__((target("avx512f"))) static void copy512(const float *a, float *c, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(c + i, _mm512_loadu_ps(a + i));
    for (; i < n; i++) c[i] = a[i];
}
__attribute__((target("avx512f"))) static void triad512(float *a, const float *b, const float *c, float s, size_t n) {
    __m512 vs = _mm512_set1_ps(s);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(a + i, _mm512_fmadd_ps(vs, _mm512_loadu_ps(c + i), _mm512_loadu_ps(b + i)));
    for (; i < n; i++) a[i] = b[i] + s * c[i];
}
__attribute__((target("avx2,fma"))) static void copy256(const float *a, float *c, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(c + i, _mm256_loadu_ps(a + i));
    for (; i < n; i++) c[i] = a[i];
}
__attribute__((target("avx2,fma"))) static void triad256(float *a, const float *b, const float *c, float s, size_t n) {
    __m256 vs = _mm256_set1_ps(s);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(a + i, _mm256_fmadd_ps(vs, _mm256_loadu_ps(c + i), _mm256_loadu_ps(b + i)));
    for (; i < n; i++) a[i] = b[i] + s * c[i];
}
#else
float r2ec_bf16_dot_loop(long iterations) { return 0; }
#endif

float r2ec_fma_loop(r2ec_isa isa, long iterations) {
#if defined(__x86_64__)
    if (isa == R2EC_ISA_AVX512) return fma512(iterations);
    if (isa == R2EC_ISA_AVX2) return fma256(iterations);
    return sse(iterations);
#else
    float acc = 0;
    for (long n = 0; n < iterations; n++) acc = acc * 0.999999f + 1e-7f;
    return acc;
#endif
}

void r2ec_stream_copy(r2ec_isa isa, const float *a, float *c, size_t n) {
#if defined(__x86_64__)
    if (isa == R2EC_ISA_AVX512) { copy512(a, c, n); return; }
    if (isa == R2EC_ISA_AVX2) { copy256(a, c, n); return; }
#endif
    for (size_t i = 0; i < n; i++) c[i] = a[i];
}

void r2ec_stream_triad(r2ec_isa isa, float *a, const float *b, const float *c, float s, size_t n) {
#if defined(__x86_64__)
    if (isa == R2EC_ISA_AVX512) { triad512(a, b, c, s, n); return; }
    if (isa == R2EC_ISA_AVX2) { triad256(a, b, c, s, n); return; }
#endif
    for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
}
