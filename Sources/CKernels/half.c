// binary16 conversions (include/half.h). The portable rounding follows the well-known branchy scheme: values too
// large for a half become infinity, values below the smallest normal go through a float addition that rounds them
// into the subnormal range, normal values round their mantissa to nearest even by an add and a shift.
#include "half.h"
#include <immintrin.h>
#include <string.h>

static uint16_t half_from_float(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    uint16_t bits;
    if (x >= 0x47800000u) {                     // >= 65536, infinity or NaN
        bits = x > 0x7f800000u ? 0x7e00 : 0x7c00;
    } else if (x < 0x38800000u) {               // below 2^-14: subnormal or zero
        const uint32_t magicBits = ((127 - 15) + (23 - 10) + 1) << 23;
        float magic, v;
        memcpy(&magic, &magicBits, 4);
        memcpy(&v, &x, 4);
        volatile float sum = v + magic;         // the FPU rounds to nearest even here
        float s = sum;
        uint32_t r;
        memcpy(&r, &s, 4);
        bits = (uint16_t)(r - magicBits);
    } else {
        uint32_t odd = (x >> 13) & 1;
        x += ((uint32_t)(15 - 127) << 23) + 0xfff + odd;
        bits = (uint16_t)(x >> 13);
    }
    return bits | sign;
}

static float float_from_half(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ffu, bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else {                                // subnormal: normalise
            int e = 127 - 15 + 1;
            while (!(mantissa & 0x400u)) { mantissa <<= 1; e--; }
            bits = sign | ((uint32_t)e << 23) | ((mantissa & 0x3ffu) << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static void to_half_avx512(const float *src, uint16_t *dst, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) dst[i] = half_from_float(src[i]);
}

__attribute__((target("avx512f"))) static void from_half_avx512(const uint16_t *src, float *dst, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    for (; i < n; i++) dst[i] = float_from_half(src[i]);
}

__attribute__((target("avx2,f16c"))) static void to_half_f16c(const float *src, uint16_t *dst, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) dst[i] = half_from_float(src[i]);
}

__attribute__((target("avx2,f16c"))) static void from_half_f16c(const uint16_t *src, float *dst, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = float_from_half(src[i]);
}
#endif

void r2ec_f32_to_f16(r2ec_isa isa, const float *src, uint16_t *dst, int n) {
#if defined(__x86_64__)
    if (isa == R2EC_ISA_AVX512) { to_half_avx512(src, dst, n); return; }
    if (isa == R2EC_ISA_AVX2) { to_half_f16c(src, dst, n); return; }
#endif
    for (int i = 0; i < n; i++) dst[i] = half_from_float(src[i]);
}

void r2ec_f16_to_f32(r2ec_isa isa, const uint16_t *src, float *dst, int n) {
#if defined(__x86_64__)
    if (isa == R2EC_ISA_AVX512) { from_half_avx512(src, dst, n); return; }
    if (isa == R2EC_ISA_AVX2) { from_half_f16c(src, dst, n); return; }
#endif
    for (int i = 0; i < n; i++) dst[i] = float_from_half(src[i]);
}
