// The int4 screening copy of the int8 item table: packing from the int8 rows, and the screen (see
// include/int4_screen.h). The VNNI kernel unpacks a 64-byte load of nibbles into two vpdpbusd operands (an and; a
// 16-bit shift right by 4 and an and) and multiplies them, as unsigned bytes q4 + 8, by the query's signed int8 steps;
// sum((q4 + 8) xq) - 8 sum(xq) = sum(q4 xq) exactly, the correction one integer per query level.
#include "int4_screen.h"
#include "int8_table.h"
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline int min_int(int a, int b) { return a < b ? a : b; }

int r2ec_int4_blocks(int k) { return (k + 7) / 8; }

/// Item j's (0..<32) int8 value kk in an int8 panel.
static inline int8_t int8_at(const int8_t *panel, int j, int kk) {
    return panel[(size_t)(kk / 4) * R2EC_INT8_GROUP + (size_t)j * 4 + kk % 4];
}

void r2ec_int4_row_sum(int k, int n, const int8_t *packed8, const float *scales8, int first_panel, int last_panel,
                       double *sum) {
    size_t panel_bytes = (size_t)r2ec_int8_groups(k) * R2EC_INT8_GROUP;
    for (int p = first_panel; p < last_panel; p++) {
        const int8_t *panel = packed8 + (size_t)p * panel_bytes;
        int cols = min_int(R2EC_INT8_PANEL, n - p * R2EC_INT8_PANEL);
        for (int j = 0; j < cols; j++) {
            double s = scales8[p * R2EC_INT8_PANEL + j];
            for (int kk = 0; kk < k; kk++) sum[kk] += s * int8_at(panel, j, kk);
        }
    }
}

/// x rounded up to a float (x >= 0).
static float float_above(double x) {
    float f = (float)x;
    return (double)f < x ? nextafterf(f, INFINITY) : f;
}

float r2ec_int4_pack(int k, int n, const int8_t *packed8, const float *scales8, const float *mean, int first_panel,
                     int last_panel, uint8_t *nibbles, float *scales4, float *errors) {
    size_t panel8 = (size_t)r2ec_int8_groups(k) * R2EC_INT8_GROUP;
    size_t panel4 = (size_t)r2ec_int4_blocks(k) * R2EC_INT4_BLOCK;
    float largest_norm = 0;
    for (int p = first_panel; p < last_panel; p++) {
        uint8_t *panel = nibbles + (size_t)p * panel4;
        memset(panel, 0x88, panel4);
        for (int j = 0; j < R2EC_INT8_PANEL; j++) {
            int item = p * R2EC_INT8_PANEL + j;
            if (item >= n) {
                scales4[item] = errors[item] = 0;
                continue;
            }
            const int8_t *row8 = packed8 + (size_t)p * panel8;
            double s8 = scales8[item], largest = 0;
            for (int kk = 0; kk < k; kk++) largest = fmax(largest, fabs(s8 * int8_at(row8, j, kk) - (double)mean[kk]));
            float s4 = (float)(largest / 7);
            double error = 0, squares = 0;
            for (int kk = 0; kk < k; kk++) {
                double dk = s8 * int8_at(row8, j, kk) - (double)mean[kk];
                int q = 0;
                if (s4 > 0) {
                    double r = nearbyint(dk / s4);
                    q = r > 7 ? 7 : r < -7 ? -7 : (int)r;
                }
                double e = dk - (double)s4 * q;
                error += e * e;
                squares += (double)q * q;
                uint8_t *byte = panel + (size_t)(kk / 8) * R2EC_INT4_BLOCK + (size_t)j * 4 + kk % 4;
                uint8_t nibble = (uint8_t)(q + 8);
                *byte = kk % 8 < 4 ? (uint8_t)((*byte & 0xf0) | nibble) : (uint8_t)((*byte & 0x0f) | (nibble << 4));
            }
            scales4[item] = s4;
            errors[item] = float_above(sqrt(error));
            float norm = float_above((double)s4 * sqrt(squares));
            if (norm > largest_norm) largest_norm = norm;
        }
    }
    return largest_norm;
}

/// 8 · sum of each query level's steps xq (the correction for the nibbles' offset), per level of each row.
static void corrections(int m, int k, const uint8_t *u, int lda, int32_t *out) {
    for (int r = 0; r < 2 * m; r++) {
        int32_t sum = 0;
        for (int kk = 0; kk < k; kk++) sum += (int32_t)u[(size_t)r * lda + kk] - 128;
        out[r] = 8 * sum;
    }
}

/// Plain loops: the same integer sums, then the same float expression as the VNNI epilogue.
static void screen_portable(int m, int n, int k, const uint8_t *u, int lda, const int32_t *corr, const float *factors,
                            const float *offsets, const float *radii, const uint8_t *nibbles, const float *scales4,
                            const float *errors, int first, int last, float *out, int ldo) {
    size_t panel4 = (size_t)r2ec_int4_blocks(k) * R2EC_INT4_BLOCK;
    for (int p = first; p < last; p++) {
        const uint8_t *panel = nibbles + (size_t)p * panel4;
        int cols = min_int(R2EC_INT8_PANEL, n - p * R2EC_INT8_PANEL);
        for (int j = 0; j < cols; j++) {
            int item = p * R2EC_INT8_PANEL + j;
            for (int i = 0; i < m; i++) {
                int32_t sums[2];
                for (int level = 0; level < 2; level++) {
                    const uint8_t *x = u + (size_t)(2 * i + level) * lda;
                    int32_t sum = 0;
                    for (int kk = 0; kk < k; kk++) {
                        uint8_t byte = panel[(size_t)(kk / 8) * R2EC_INT4_BLOCK + (size_t)j * 4 + kk % 4];
                        int32_t nibble = kk % 8 < 4 ? byte & 0x0f : byte >> 4;
                        sum += nibble * ((int32_t)x[kk] - 128);
                    }
                    sums[level] = sum - corr[2 * i + level];
                }
                float inner = fmaf(factors[2 * i + 1], (float)sums[1], factors[2 * i] * (float)sums[0]);
                float value = fmaf(scales4[item], inner, offsets[i]);
                out[(size_t)i * ldo + item] = fmaf(radii[i], errors[item], value);
            }
        }
    }
}

#if defined(__x86_64__)
typedef void (*screen_fn)(int groups, const uint8_t *a, int lda, const int32_t *corr, const uint8_t *b,
                          const float *scale, const float *error, const float *factor, const float *offset,
                          const float *radius, float *c, int ldc, int cols);

/// One panel (32 items, two halves of 16) times ROWS queries of two levels each.
#define R2EC_INT4_VNNI(ROWS)                                                                                          \
    __attribute__((target("avx512f,avx512bw,avx512vnni"))) static void screen_##ROWS(                                \
        int groups, const uint8_t *a, int lda, const int32_t *corr, const uint8_t *b, const float *scale,            \
        const float *error, const float *factor, const float *offset, const float *radius, float *c, int ldc,        \
        int cols) {                                                                                                   \
        __m512i acc[2][2][ROWS];                                                                                      \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                           \
            acc[0][0][i] = acc[0][1][i] = acc[1][0][i] = acc[1][1][i] = _mm512_setzero_si512();                       \
        }                                                                                                             \
        const __m512i low = _mm512_set1_epi8(0x0f);                                                                   \
        int full = groups / 2;                                                                                        \
        for (int g = 0; g < full; g++) {                                                                              \
            const uint8_t *bg = b + (size_t)g * R2EC_INT4_BLOCK;                                                      \
            __m512i v0 = _mm512_loadu_si512((const void *)bg), v1 = _mm512_loadu_si512((const void *)(bg + 64));     \
            __m512i l0 = _mm512_and_si512(v0, low), h0 = _mm512_and_si512(_mm512_srli_epi16(v0, 4), low);            \
            __m512i l1 = _mm512_and_si512(v1, low), h1 = _mm512_and_si512(_mm512_srli_epi16(v1, 4), low);            \
            _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                       \
                _Pragma("clang loop unroll(full)") for (int level = 0; level < 2; level++) {                          \
                    int32_t qa, qb;                                                                                   \
                    memcpy(&qa, a + (size_t)(2 * i + level) * lda + 8 * g, 4);                                        \
                    memcpy(&qb, a + (size_t)(2 * i + level) * lda + 8 * g + 4, 4);                                    \
                    __m512i xa = _mm512_set1_epi32(qa ^ (int32_t)0x80808080);                                         \
                    __m512i xb = _mm512_set1_epi32(qb ^ (int32_t)0x80808080);                                         \
                    acc[level][0][i] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[level][0][i], l0, xa), h0, xb);   \
                    acc[level][1][i] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[level][1][i], l1, xa), h1, xb);   \
                }                                                                                                     \
            }                                                                                                         \
        }                                                                                                             \
        if (groups % 2) {                                                                                             \
            const uint8_t *bg = b + (size_t)full * R2EC_INT4_BLOCK;                                                   \
            __m512i l0 = _mm512_and_si512(_mm512_loadu_si512((const void *)bg), low);                                \
            __m512i l1 = _mm512_and_si512(_mm512_loadu_si512((const void *)(bg + 64)), low);                         \
            _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                       \
                _Pragma("clang loop unroll(full)") for (int level = 0; level < 2; level++) {                          \
                    int32_t qa;                                                                                       \
                    memcpy(&qa, a + (size_t)(2 * i + level) * lda + 8 * full, 4);                                     \
                    __m512i xa = _mm512_set1_epi32(qa ^ (int32_t)0x80808080);                                         \
                    acc[level][0][i] = _mm512_dpbusd_epi32(acc[level][0][i], l0, xa);                                \
                    acc[level][1][i] = _mm512_dpbusd_epi32(acc[level][1][i], l1, xa);                                \
                }                                                                                                     \
            }                                                                                                         \
        }                                                                                                             \
        __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);                                          \
        __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);                  \
        __m512 s[2] = {_mm512_loadu_ps(scale), _mm512_loadu_ps(scale + 16)};                                          \
        __m512 e[2] = {_mm512_loadu_ps(error), _mm512_loadu_ps(error + 16)};                                          \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                           \
            __m512 f1 = _mm512_set1_ps(factor[2 * i]), f2 = _mm512_set1_ps(factor[2 * i + 1]);                        \
            __m512i c1 = _mm512_set1_epi32(corr[2 * i]), c2 = _mm512_set1_epi32(corr[2 * i + 1]);                     \
            __m512 o = _mm512_set1_ps(offset[i]), r = _mm512_set1_ps(radius[i]);                                      \
            float *row = c + (size_t)i * ldc;                                                                         \
            _Pragma("clang loop unroll(full)") for (int h = 0; h < 2; h++) {                                          \
                __m512 inner = _mm512_fmadd_ps(f2, _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[1][h][i], c2)),            \
                                               _mm512_mul_ps(f1, _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[0][h][i], c1)))); \
                __m512 value = _mm512_fmadd_ps(r, e[h], _mm512_fmadd_ps(s[h], inner, o));                             \
                _mm512_mask_storeu_ps(row + 16 * h, h == 0 ? m0 : m1, value);                                         \
            }                                                                                                         \
        }                                                                                                             \
    }
R2EC_INT4_VNNI(1) R2EC_INT4_VNNI(2) R2EC_INT4_VNNI(3) R2EC_INT4_VNNI(4)
static const screen_fn screens[5] = {0, screen_1, screen_2, screen_3, screen_4};
#endif

void r2ec_int4_screen(int vnni, int m, int n, int k, const uint8_t *u, const float *factors, const float *offsets,
                      const float *radii, const uint8_t *nibbles, const float *scales4, const float *errors,
                      int first_panel, int last_panel, float *out, int ldo) {
    if (m <= 0 || first_panel >= last_panel) return;
    int groups = r2ec_int8_groups(k), lda = 4 * groups;
    int32_t corr_stack[64];
    int32_t *corr = 2 * m <= 64 ? corr_stack : (int32_t *)malloc(sizeof(int32_t) * 2 * (size_t)m);
    corrections(m, k, u, lda, corr);
#if defined(__x86_64__)
    if (vnni) {
        size_t panel4 = (size_t)r2ec_int4_blocks(k) * R2EC_INT4_BLOCK;
        for (int p = first_panel; p < last_panel; p++) {
            int cols = min_int(R2EC_INT8_PANEL, n - p * R2EC_INT8_PANEL);
            int base = p * R2EC_INT8_PANEL;
            for (int i = 0; i < m; i += 4) {
                int rows = min_int(4, m - i);
                screens[rows](groups, u + (size_t)i * 2 * lda, lda, corr + 2 * i, nibbles + (size_t)p * panel4,
                              scales4 + base, errors + base, factors + 2 * i, offsets + i, radii + i,
                              out + (size_t)i * ldo + base, ldo, cols);
            }
        }
        if (corr != corr_stack) free(corr);
        return;
    }
#endif
    (void)vnni;
    screen_portable(m, n, k, u, lda, corr, factors, offsets, radii, nibbles, scales4, errors, first_panel, last_panel,
                    out, ldo);
    if (corr != corr_stack) free(corr);
}
