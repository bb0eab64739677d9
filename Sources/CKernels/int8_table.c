// The int8 item table's quantiser and scoring kernels (see include/int8_table.h). Each instruction set's register tile
// is compiled through a target attribute and chosen by the caller's `isa`, so the binary runs on CPUs without it.
//
// Exact kernels: the int8 values are widened to float32 (AVX-512/AVX2: a 32-bit lane holds one item's 4 consecutive
// k values; shifting left then arithmetically right by 24 bits sign-extends one of them, vcvtdq2ps makes it a float)
// once per k step and shared by every query row of the tile. With few rows the tile keeps two accumulator sets (even
// and odd k) so consecutive FMAs do not wait on each other: at one row a single chain would cost the FMA latency per k
// step, slower than the table's bytes arrive.
//
// VNNI kernel: vpdpbusd multiplies the 4 bytes of each 32-bit lane of the quantised query (unsigned) by the item's 4
// int8 values (signed) and adds the 4 products to the lane's int32: 64 products per instruction, no widening. Each
// query comes in two levels (its int8 steps, then its remainder's), so a table byte loaded serves two instructions.
#include "int8_table.h"
#include <immintrin.h>
#include <math.h>
#include <string.h>

static inline int min_int(int a, int b) { return a < b ? a : b; }

int r2ec_int8_panels(int n) { return (n + R2EC_INT8_PANEL - 1) / R2EC_INT8_PANEL; }

int r2ec_int8_groups(int k) { return (k + 3) / 4; }

/// Offset of item j's (0..<32) value kk within a panel.
static inline size_t at(int j, int kk) { return (size_t)(kk / 4) * R2EC_INT8_GROUP + (size_t)j * 4 + kk % 4; }

float r2ec_int8_pack(int k, int n, const float *w, int ldw, int first_panel, int last_panel, int8_t *packed,
                     float *scales, int32_t *sums) {
    size_t panel_bytes = (size_t)r2ec_int8_groups(k) * R2EC_INT8_GROUP;
    float largest_norm = 0;
    for (int p = first_panel; p < last_panel; p++) {
        int8_t *panel = packed + (size_t)p * panel_bytes;
        memset(panel, 0, panel_bytes);
        for (int j = 0; j < R2EC_INT8_PANEL; j++) {
            int item = p * R2EC_INT8_PANEL + j;
            const float *row = item < n ? w + (size_t)item * ldw : NULL;
            float largest = 0;
            for (int kk = 0; row && kk < k; kk++) largest = fmaxf(largest, fabsf(row[kk]));
            float scale = largest / 127.0f;
            scales[item] = scale;
            int32_t sum = 0;
            double squares = 0;
            for (int kk = 0; row && scale > 0 && kk < k; kk++) {
                float r = nearbyintf(row[kk] / scale);
                int q = r > 127 ? 127 : r < -127 ? -127 : (int)r;
                panel[at(j, kk)] = (int8_t)q;
                sum += q;
                squares += (double)q * q;
            }
            sums[item] = sum;
            float norm = (float)((double)scale * sqrt(squares));
            if (norm > largest_norm) largest_norm = norm;
        }
    }
    return largest_norm;
}

/// Quantises x[0..<k] to int8 steps: returns t = max|x| / 127 and writes round(x / t) + 128 (0 when t = 0).
static float quantize_row(int k, const float *x, uint8_t *out) {
    float largest = 0;
    for (int kk = 0; kk < k; kk++) largest = fmaxf(largest, fabsf(x[kk]));
    float step = largest / 127.0f;
    for (int kk = 0; kk < k; kk++) {
        int q = 0;
        if (step > 0) {
            float r = nearbyintf(x[kk] / step);
            q = r > 127 ? 127 : r < -127 ? -127 : (int)r;
        }
        out[kk] = (uint8_t)(q + 128);
    }
    return step;
}

void r2ec_int8_quantize_queries(int m, int k, const float *x, int ldx, uint8_t *u, float *steps, float *errors,
                                float *residual) {
    int padded = r2ec_int8_groups(k) * 4;
    for (int i = 0; i < m; i++) {
        const float *row = x + (size_t)i * ldx;
        uint8_t *first = u + (size_t)i * 2 * padded, *second = first + padded;
        float step = quantize_row(k, row, first);
        for (int kk = 0; kk < k; kk++) residual[kk] = (float)((double)row[kk] - (double)step * (first[kk] - 128));
        float fine = quantize_row(k, residual, second);
        double squares = 0;
        for (int kk = 0; kk < k; kk++) {
            double e = (double)row[kk] - (double)step * (first[kk] - 128) - (double)fine * (second[kk] - 128);
            squares += e * e;
        }
        for (int kk = k; kk < padded; kk++) first[kk] = second[kk] = 128;
        steps[2 * i] = step;
        steps[2 * i + 1] = fine;
        errors[i] = (float)sqrt(squares);
    }
}

/// Plain loops over the same layout (the portable path).
static void gemm_portable(int m, int n, int k, const float *a, int lda, const int8_t *packed, const float *scales,
                          int first, int last, float *c, int ldc, float alpha) {
    size_t panel_bytes = (size_t)r2ec_int8_groups(k) * R2EC_INT8_GROUP;
    for (int p = first; p < last; p++) {
        const int8_t *panel = packed + (size_t)p * panel_bytes;
        int cols = min_int(R2EC_INT8_PANEL, n - p * R2EC_INT8_PANEL);
        for (int i = 0; i < m; i++) {
            float sum[R2EC_INT8_PANEL] = {0};
            const float *row = a + (size_t)i * lda;
            for (int kk = 0; kk < k; kk++)
                for (int j = 0; j < R2EC_INT8_PANEL; j++) sum[j] += row[kk] * (float)panel[at(j, kk)];
            for (int j = 0; j < cols; j++)
                c[(size_t)i * ldc + p * R2EC_INT8_PANEL + j] = alpha * scales[p * R2EC_INT8_PANEL + j] * sum[j];
        }
    }
}

void r2ec_int8_rescore(int k, const float *x, const int8_t *packed, const float *scales, const int32_t *items,
                       int count, float alpha, float *row) {
    size_t panel_bytes = (size_t)r2ec_int8_groups(k) * R2EC_INT8_GROUP;
    for (int c = 0; c < count; c++) {
        int item = items[c];
        const int8_t *panel = packed + (size_t)(item / R2EC_INT8_PANEL) * panel_bytes;
        int j = item % R2EC_INT8_PANEL;
        double sum = 0;
        for (int kk = 0; kk < k; kk++) sum += (double)x[kk] * panel[at(j, kk)];
        row[item] = (float)((double)alpha * scales[item] * sum);
    }
}

#if defined(__x86_64__)
/// One tile: `rows` query rows (lda apart) times `cols` items of a panel block (groups of 4 k values R2EC_INT8_GROUP
/// bytes apart, item j's at 4 j; `scale` their scales) into C.
typedef void (*tile_fn)(int k, const float *a, int lda, const int8_t *b, const float *scale, float *c, int ldc,
                        int cols, float alpha);

/// The AVX-512 tile's k step: value T of each lane of (v0, v1) as floats, times each row's a[KK] (NR rows), into set S.
#define R2EC_INT8_STEP512(S, T, KK)                                                                                   \
    {                                                                                                                 \
        __m512 b0 = _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(v0, 24 - 8 * (T)), 24));                   \
        __m512 b1 = _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(v1, 24 - 8 * (T)), 24));                   \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < NR; i++) {                                             \
            __m512 x = _mm512_set1_ps(a[(size_t)i * lda + (KK)]);                                                     \
            lo[S][i] = _mm512_fmadd_ps(x, b0, lo[S][i]);                                                              \
            hi[S][i] = _mm512_fmadd_ps(x, b1, hi[S][i]);                                                              \
        }                                                                                                             \
    }

#define R2EC_INT8_TILE512(ROWS)                                                                                       \
    __attribute__((target("avx512f"))) static void tile512_##ROWS(int k, const float *a, int lda, const int8_t *b,    \
                                                                  const float *scale, float *c, int ldc, int cols,    \
                                                                  float alpha) {                                      \
        enum { SETS = ROWS <= 5 ? 2 : 1, NR = ROWS };                                                                 \
        __m512 lo[2][ROWS], hi[2][ROWS];                                                                              \
        _Pragma("clang loop unroll(full)") for (int s = 0; s < 2; s++)                                                \
            _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) lo[s][i] = hi[s][i] = _mm512_setzero_ps(); \
        int full = k / 4;                                                                                             \
        for (int g = 0; g < full; g++) {                                                                              \
            const int8_t *bg = b + (size_t)g * R2EC_INT8_GROUP;                                                       \
            __m512i v0 = _mm512_loadu_si512((const void *)bg), v1 = _mm512_loadu_si512((const void *)(bg + 64));      \
            R2EC_INT8_STEP512(0, 0, 4 * g) R2EC_INT8_STEP512(SETS - 1, 1, 4 * g + 1)                                  \
            R2EC_INT8_STEP512(0, 2, 4 * g + 2) R2EC_INT8_STEP512(SETS - 1, 3, 4 * g + 3)                              \
        }                                                                                                             \
        if (full * 4 < k) {                                                                                           \
            const int8_t *bg = b + (size_t)full * R2EC_INT8_GROUP;                                                    \
            __m512i v0 = _mm512_loadu_si512((const void *)bg), v1 = _mm512_loadu_si512((const void *)(bg + 64));      \
            int rest = k - full * 4;                                                                                  \
            R2EC_INT8_STEP512(0, 0, 4 * full)                                                                         \
            if (rest > 1) R2EC_INT8_STEP512(0, 1, 4 * full + 1)                                                       \
            if (rest > 2) R2EC_INT8_STEP512(0, 2, 4 * full + 2)                                                       \
        }                                                                                                             \
        __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);                                           \
        __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);                   \
        __m512 va = _mm512_set1_ps(alpha);                                                                            \
        __m512 s0 = _mm512_mul_ps(va, _mm512_loadu_ps(scale)), s1 = _mm512_mul_ps(va, _mm512_loadu_ps(scale + 16));   \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                           \
            __m512 l = lo[0][i], h = hi[0][i];                                                                        \
            if (SETS == 2) { l = _mm512_add_ps(l, lo[SETS - 1][i]); h = _mm512_add_ps(h, hi[SETS - 1][i]); }          \
            float *row = c + (size_t)i * ldc;                                                                         \
            _mm512_mask_storeu_ps(row, m0, _mm512_mul_ps(s0, l));                                                     \
            _mm512_mask_storeu_ps(row + 16, m1, _mm512_mul_ps(s1, h));                                                \
        }                                                                                                             \
    }
R2EC_INT8_TILE512(1) R2EC_INT8_TILE512(2) R2EC_INT8_TILE512(3) R2EC_INT8_TILE512(4) R2EC_INT8_TILE512(5)
R2EC_INT8_TILE512(6) R2EC_INT8_TILE512(7) R2EC_INT8_TILE512(8) R2EC_INT8_TILE512(9) R2EC_INT8_TILE512(10)
R2EC_INT8_TILE512(11) R2EC_INT8_TILE512(12)
static const tile_fn tiles512[13] = {0, tile512_1, tile512_2, tile512_3, tile512_4, tile512_5, tile512_6,
                                     tile512_7, tile512_8, tile512_9, tile512_10, tile512_11, tile512_12};

/// The AVX2 tile's k step (8 items per register).
#define R2EC_INT8_STEP256(S, T, KK)                                                                                   \
    {                                                                                                                 \
        __m256 b0 = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(v0, 24 - 8 * (T)), 24));                   \
        __m256 b1 = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(v1, 24 - 8 * (T)), 24));                   \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < NR; i++) {                                             \
            __m256 x = _mm256_broadcast_ss(a + (size_t)i * lda + (KK));                                               \
            lo[S][i] = _mm256_fmadd_ps(x, b0, lo[S][i]);                                                              \
            hi[S][i] = _mm256_fmadd_ps(x, b1, hi[S][i]);                                                              \
        }                                                                                                             \
    }

/// AVX2: half panels of 16 items (two ymm of 8), up to 6 rows (12 accumulators); two sets up to 3 rows.
#define R2EC_INT8_TILE256(ROWS)                                                                                       \
    __attribute__((target("avx2,fma"))) static void tile256_##ROWS(int k, const float *a, int lda, const int8_t *b,   \
                                                                   const float *scale, float *c, int ldc, int cols,   \
                                                                   float alpha) {                                     \
        enum { SETS = ROWS <= 3 ? 2 : 1, NR = ROWS };                                                                 \
        __m256 lo[2][ROWS], hi[2][ROWS];                                                                              \
        _Pragma("clang loop unroll(full)") for (int s = 0; s < 2; s++)                                                \
            _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) lo[s][i] = hi[s][i] = _mm256_setzero_ps(); \
        int full = k / 4;                                                                                             \
        for (int g = 0; g < full; g++) {                                                                              \
            const int8_t *bg = b + (size_t)g * R2EC_INT8_GROUP;                                                       \
            __m256i v0 = _mm256_loadu_si256((const __m256i *)bg), v1 = _mm256_loadu_si256((const __m256i *)(bg + 32)); \
            R2EC_INT8_STEP256(0, 0, 4 * g) R2EC_INT8_STEP256(SETS - 1, 1, 4 * g + 1)                                  \
            R2EC_INT8_STEP256(0, 2, 4 * g + 2) R2EC_INT8_STEP256(SETS - 1, 3, 4 * g + 3)                              \
        }                                                                                                             \
        if (full * 4 < k) {                                                                                           \
            const int8_t *bg = b + (size_t)full * R2EC_INT8_GROUP;                                                    \
            __m256i v0 = _mm256_loadu_si256((const __m256i *)bg), v1 = _mm256_loadu_si256((const __m256i *)(bg + 32)); \
            int rest = k - full * 4;                                                                                  \
            R2EC_INT8_STEP256(0, 0, 4 * full)                                                                         \
            if (rest > 1) R2EC_INT8_STEP256(0, 1, 4 * full + 1)                                                       \
            if (rest > 2) R2EC_INT8_STEP256(0, 2, 4 * full + 2)                                                       \
        }                                                                                                             \
        __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);                                                     \
        __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);                                               \
        __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);                                           \
        __m256 va = _mm256_set1_ps(alpha);                                                                            \
        __m256 s0 = _mm256_mul_ps(va, _mm256_loadu_ps(scale)), s1 = _mm256_mul_ps(va, _mm256_loadu_ps(scale + 8));    \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                           \
            __m256 l = lo[0][i], h = hi[0][i];                                                                        \
            if (SETS == 2) { l = _mm256_add_ps(l, lo[SETS - 1][i]); h = _mm256_add_ps(h, hi[SETS - 1][i]); }          \
            float *row = c + (size_t)i * ldc;                                                                         \
            _mm256_maskstore_ps(row, m0, _mm256_mul_ps(s0, l));                                                       \
            _mm256_maskstore_ps(row + 8, m1, _mm256_mul_ps(s1, h));                                                   \
        }                                                                                                             \
    }
R2EC_INT8_TILE256(1) R2EC_INT8_TILE256(2) R2EC_INT8_TILE256(3) R2EC_INT8_TILE256(4) R2EC_INT8_TILE256(5)
R2EC_INT8_TILE256(6)
static const tile_fn tiles256[7] = {0, tile256_1, tile256_2, tile256_3, tile256_4, tile256_5, tile256_6};

/// Panel by panel (each read from memory once), row tiles of at most `mr` rows over `width`-item slices of it.
static void drive(const tile_fn *tiles, int mr, int width, int m, int n, int k, const float *a, int lda,
                  const int8_t *packed, const float *scales, int first, int last, float *c, int ldc, float alpha) {
    size_t panel_bytes = (size_t)r2ec_int8_groups(k) * R2EC_INT8_GROUP;
    for (int p = first; p < last; p++) {
        const int8_t *panel = packed + (size_t)p * panel_bytes;
        int cols = min_int(R2EC_INT8_PANEL, n - p * R2EC_INT8_PANEL);
        for (int s = 0; s * width < cols; s++) {
            int sub = min_int(width, cols - s * width);
            for (int i = 0; i < m; i += mr) {
                int rows = min_int(mr, m - i);
                tiles[rows](k, a + (size_t)i * lda, lda, panel + (size_t)s * width * 4,
                            scales + p * R2EC_INT8_PANEL + s * width,
                            c + (size_t)i * ldc + p * R2EC_INT8_PANEL + s * width, ldc, sub, alpha);
            }
        }
    }
}

/// VNNI tile: `rows` quantised query rows (each two levels of `lda` bytes: 2 lda bytes apart) times one panel's 32
/// items; C = s_j · (factor_2i · (sum_1 - 128 rowsum_j) + factor_2i+1 · (sum_2 - 128 rowsum_j)).
typedef void (*vnni_fn)(int groups, const uint8_t *a, int lda, const int8_t *b, const float *scale,
                        const int32_t *sums, const float *factor, float *c, int ldc, int cols);

#define R2EC_INT8_VNNI(ROWS)                                                                                          \
    __attribute__((target("avx512f,avx512bw,avx512vnni"))) static void vnni_##ROWS(                                  \
        int groups, const uint8_t *a, int lda, const int8_t *b, const float *scale, const int32_t *sums,             \
        const float *factor, float *c, int ldc, int cols) {                                                           \
        __m512i lo[2][ROWS], hi[2][ROWS];                                                                             \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                           \
            lo[0][i] = hi[0][i] = lo[1][i] = hi[1][i] = _mm512_setzero_si512();                                       \
        }                                                                                                             \
        for (int g = 0; g < groups; g++) {                                                                            \
            const int8_t *bg = b + (size_t)g * R2EC_INT8_GROUP;                                                       \
            __m512i v0 = _mm512_loadu_si512((const void *)bg), v1 = _mm512_loadu_si512((const void *)(bg + 64));     \
            _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                       \
                _Pragma("clang loop unroll(full)") for (int level = 0; level < 2; level++) {                          \
                    int32_t quad;                                                                                     \
                    memcpy(&quad, a + (size_t)(2 * i + level) * lda + 4 * g, 4);                                      \
                    __m512i x = _mm512_set1_epi32(quad);                                                              \
                    lo[level][i] = _mm512_dpbusd_epi32(lo[level][i], x, v0);                                          \
                    hi[level][i] = _mm512_dpbusd_epi32(hi[level][i], x, v1);                                          \
                }                                                                                                     \
            }                                                                                                         \
        }                                                                                                             \
        __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);                                          \
        __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);                  \
        __m512i r0 = _mm512_slli_epi32(_mm512_loadu_si512((const void *)sums), 7);                                   \
        __m512i r1 = _mm512_slli_epi32(_mm512_loadu_si512((const void *)(sums + 16)), 7);                            \
        __m512 s0 = _mm512_loadu_ps(scale), s1 = _mm512_loadu_ps(scale + 16);                                        \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                           \
            __m512 f = _mm512_set1_ps(factor[2 * i]), e = _mm512_set1_ps(factor[2 * i + 1]);                          \
            __m512 l = _mm512_fmadd_ps(e, _mm512_cvtepi32_ps(_mm512_sub_epi32(lo[1][i], r0)),                         \
                                       _mm512_mul_ps(f, _mm512_cvtepi32_ps(_mm512_sub_epi32(lo[0][i], r0))));         \
            __m512 h = _mm512_fmadd_ps(e, _mm512_cvtepi32_ps(_mm512_sub_epi32(hi[1][i], r1)),                         \
                                       _mm512_mul_ps(f, _mm512_cvtepi32_ps(_mm512_sub_epi32(hi[0][i], r1))));         \
            float *row = c + (size_t)i * ldc;                                                                         \
            _mm512_mask_storeu_ps(row, m0, _mm512_mul_ps(s0, l));                                                     \
            _mm512_mask_storeu_ps(row + 16, m1, _mm512_mul_ps(s1, h));                                                \
        }                                                                                                             \
    }
R2EC_INT8_VNNI(1) R2EC_INT8_VNNI(2) R2EC_INT8_VNNI(3) R2EC_INT8_VNNI(4) R2EC_INT8_VNNI(5) R2EC_INT8_VNNI(6)
static const vnni_fn vnnis[7] = {0, vnni_1, vnni_2, vnni_3, vnni_4, vnni_5, vnni_6};

__attribute__((target("avx512f"))) static long next_above512(const float *x, long from, long n, float floor) {
    __m512 f = _mm512_set1_ps(floor);
    long i = from;
    for (; i + 16 <= n; i += 16) {
        __mmask16 hit = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), f, _CMP_GT_OQ);
        if (hit) return i + __builtin_ctz(hit);
    }
    for (; i < n; i++)
        if (x[i] > floor) return i;
    return n;
}
#endif

/// The first index in from..<n with x > floor (NaN never is), or n.
static long next_above(r2ec_isa isa, const float *x, long from, long n, float floor) {
#if defined(__x86_64__)
    if (isa == R2EC_ISA_AVX512) return next_above512(x, from, n, floor);
#endif
    (void)isa;
    for (long i = from; i < n; i++)
        if (x[i] > floor) return i;
    return n;
}

int r2ec_int8_has_vnni(void) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

void r2ec_int8_gemm(r2ec_isa isa, int m, int n, int k, const float *a, int lda, const int8_t *packed,
                    const float *scales, int first_panel, int last_panel, float *c, int ldc, float alpha) {
    if (m <= 0 || first_panel >= last_panel) return;
#if defined(__x86_64__)
    if (isa == R2EC_ISA_AVX512) {
        drive(tiles512, 12, 32, m, n, k, a, lda, packed, scales, first_panel, last_panel, c, ldc, alpha);
        return;
    }
    if (isa == R2EC_ISA_AVX2) {
        drive(tiles256, 6, 16, m, n, k, a, lda, packed, scales, first_panel, last_panel, c, ldc, alpha);
        return;
    }
#endif
    gemm_portable(m, n, k, a, lda, packed, scales, first_panel, last_panel, c, ldc, alpha);
}

void r2ec_int8_gemm_vnni(int m, int n, int k, const uint8_t *u, const float *factors, const int8_t *packed,
                         const float *scales, const int32_t *sums, int first_panel, int last_panel, float *c,
                         int ldc) {
#if defined(__x86_64__)
    int groups = r2ec_int8_groups(k);
    size_t panel_bytes = (size_t)groups * R2EC_INT8_GROUP;
    for (int p = first_panel; p < last_panel; p++) {
        const int8_t *panel = packed + (size_t)p * panel_bytes;
        int cols = min_int(R2EC_INT8_PANEL, n - p * R2EC_INT8_PANEL);
        for (int i = 0; i < m; i += 6) {
            int rows = min_int(6, m - i);
            vnnis[rows](groups, u + (size_t)i * 2 * groups * 4, groups * 4, panel, scales + p * R2EC_INT8_PANEL,
                        sums + p * R2EC_INT8_PANEL, factors + 2 * i, c + (size_t)i * ldc + p * R2EC_INT8_PANEL, ldc,
                        cols);
        }
    }
#else
    (void)m; (void)n; (void)k; (void)u; (void)factors; (void)packed; (void)scales; (void)sums;
    (void)first_panel; (void)last_panel; (void)c; (void)ldc;
#endif
}

/// Min-heap of values (the root the smallest kept).
static void sift_down(float *heap, int size, int at_index) {
    for (;;) {
        int l = 2 * at_index + 1, r = l + 1, low = at_index;
        if (l < size && heap[l] < heap[low]) low = l;
        if (r < size && heap[r] < heap[low]) low = r;
        if (low == at_index) return;
        float t = heap[low]; heap[low] = heap[at_index]; heap[at_index] = t;
        at_index = low;
    }
}

float r2ec_kth_largest(r2ec_isa isa, const float *x, long n, int k, float *heap) {
    int size = 0;
    long i = 0;
    for (; i < n && size < k; i++) {
        if (x[i] != x[i]) continue;
        int c = size++;
        heap[c] = x[i];
        while (c > 0 && heap[(c - 1) / 2] > heap[c]) {
            float t = heap[c]; heap[c] = heap[(c - 1) / 2]; heap[(c - 1) / 2] = t;
            c = (c - 1) / 2;
        }
    }
    if (size < k) return -INFINITY;
    while ((i = next_above(isa, x, i, n, heap[0])) < n) {
        heap[0] = x[i];
        sift_down(heap, size, 0);
        i++;
    }
    return heap[0];
}

long r2ec_collect_at_least(r2ec_isa isa, const float *x, long n, float threshold, int32_t *out, long cap) {
    long count = 0;
    // x > nextafter(threshold, -inf) is x >= threshold for finite thresholds.
    float floor = nextafterf(threshold, -INFINITY);
    for (long i = 0; (i = next_above(isa, x, i, n, floor)) < n; i++) {
        if (count < cap) out[count] = (int32_t)i;
        count++;
    }
    return count;
}
