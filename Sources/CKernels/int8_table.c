// The int8 item table's quantiser and scoring kernels (see include/int8_table.h). Each instruction set's register tile
// is compiled through a target attribute and chosen by the caller's `isa`, so the binary runs on CPUs without it.
// The int8 values are widened (vpmovsxbd + vcvtdq2ps) once per k step and shared by every query row of the tile.
// With few rows the tile keeps two accumulator sets (even and odd k) so consecutive FMAs do not wait on each other:
// at one row a single chain would cost the FMA latency per k step, slower than the table's bytes arrive.
#include "int8_table.h"
#include <immintrin.h>
#include <math.h>

static inline int min_int(int a, int b) { return a < b ? a : b; }

int r2ec_int8_panels(int n) { return (n + R2EC_INT8_PANEL - 1) / R2EC_INT8_PANEL; }

void r2ec_int8_pack(int k, int n, const float *w, int ldw, int first_panel, int last_panel, int8_t *packed,
                    float *scales) {
    for (int p = first_panel; p < last_panel; p++) {
        int8_t *panel = packed + (size_t)p * k * R2EC_INT8_PANEL;
        for (int j = 0; j < R2EC_INT8_PANEL; j++) {
            int item = p * R2EC_INT8_PANEL + j;
            const float *row = item < n ? w + (size_t)item * ldw : NULL;
            float largest = 0;
            for (int kk = 0; row && kk < k; kk++) largest = fmaxf(largest, fabsf(row[kk]));
            float scale = largest / 127.0f;
            scales[item] = scale;
            for (int kk = 0; kk < k; kk++) {
                int q = 0;
                if (row && scale > 0) {
                    float r = nearbyintf(row[kk] / scale);
                    q = r > 127 ? 127 : r < -127 ? -127 : (int)r;
                }
                panel[(size_t)kk * R2EC_INT8_PANEL + j] = (int8_t)q;
            }
        }
    }
}

/// Plain loops over the same layout (the portable path).
static void gemm_portable(int m, int n, int k, const float *a, int lda, const int8_t *packed, const float *scales,
                          int first, int last, float *c, int ldc, float alpha) {
    for (int p = first; p < last; p++) {
        const int8_t *panel = packed + (size_t)p * k * R2EC_INT8_PANEL;
        int cols = min_int(R2EC_INT8_PANEL, n - p * R2EC_INT8_PANEL);
        for (int i = 0; i < m; i++) {
            float sum[R2EC_INT8_PANEL] = {0};
            const float *row = a + (size_t)i * lda;
            for (int kk = 0; kk < k; kk++)
                for (int j = 0; j < R2EC_INT8_PANEL; j++) sum[j] += row[kk] * (float)panel[(size_t)kk * R2EC_INT8_PANEL + j];
            for (int j = 0; j < cols; j++)
                c[(size_t)i * ldc + p * R2EC_INT8_PANEL + j] = alpha * scales[p * R2EC_INT8_PANEL + j] * sum[j];
        }
    }
}

#if defined(__x86_64__)
/// One tile: `rows` query rows (lda apart) times `cols` items of a panel block (k rows 32 bytes apart, `scale` their
/// scales) into C.
typedef void (*tile_fn)(int k, const float *a, int lda, const int8_t *b, const float *scale, float *c, int ldc,
                        int cols, float alpha);

#define R2EC_INT8_TILE512(ROWS)                                                                                       \
    __attribute__((target("avx512f"))) static void tile512_##ROWS(int k, const float *a, int lda, const int8_t *b,   \
                                                                  const float *scale, float *c, int ldc, int cols,   \
                                                                  float alpha) {                                     \
        enum { SETS = ROWS <= 5 ? 2 : 1 };                                                                            \
        __m512 lo[SETS][ROWS], hi[SETS][ROWS];                                                                        \
        _Pragma("clang loop unroll(full)") for (int s = 0; s < SETS; s++)                                             \
            _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) lo[s][i] = hi[s][i] = _mm512_setzero_ps(); \
        int kk = 0;                                                                                                   \
        for (; kk + SETS <= k; kk += SETS) {                                                                          \
            _Pragma("clang loop unroll(full)") for (int s = 0; s < SETS; s++) {                                       \
                const int8_t *bk = b + (size_t)(kk + s) * R2EC_INT8_PANEL;                                            \
                __m512 b0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)bk)));          \
                __m512 b1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(bk + 16))));   \
                _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                   \
                    __m512 x = _mm512_set1_ps(a[(size_t)i * lda + kk + s]);                                           \
                    lo[s][i] = _mm512_fmadd_ps(x, b0, lo[s][i]);                                                      \
                    hi[s][i] = _mm512_fmadd_ps(x, b1, hi[s][i]);                                                      \
                }                                                                                                     \
            }                                                                                                         \
        }                                                                                                             \
        for (; kk < k; kk++) {                                                                                        \
            const int8_t *bk = b + (size_t)kk * R2EC_INT8_PANEL;                                                      \
            __m512 b0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)bk)));              \
            __m512 b1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(bk + 16))));       \
            _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                       \
                __m512 x = _mm512_set1_ps(a[(size_t)i * lda + kk]);                                                   \
                lo[0][i] = _mm512_fmadd_ps(x, b0, lo[0][i]);                                                          \
                hi[0][i] = _mm512_fmadd_ps(x, b1, hi[0][i]);                                                          \
            }                                                                                                         \
        }                                                                                                             \
        __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);                                          \
        __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);                  \
        __m512 va = _mm512_set1_ps(alpha);                                                                            \
        __m512 s0 = _mm512_mul_ps(va, _mm512_loadu_ps(scale)), s1 = _mm512_mul_ps(va, _mm512_loadu_ps(scale + 16));  \
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

/// AVX2: half panels of 16 items (two ymm of 8), up to 6 rows (12 accumulators); two sets up to 3 rows.
#define R2EC_INT8_TILE256(ROWS)                                                                                       \
    __attribute__((target("avx2,fma"))) static void tile256_##ROWS(int k, const float *a, int lda, const int8_t *b,  \
                                                                   const float *scale, float *c, int ldc, int cols,  \
                                                                   float alpha) {                                    \
        enum { SETS = ROWS <= 3 ? 2 : 1 };                                                                            \
        __m256 lo[SETS][ROWS], hi[SETS][ROWS];                                                                        \
        _Pragma("clang loop unroll(full)") for (int s = 0; s < SETS; s++)                                             \
            _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) lo[s][i] = hi[s][i] = _mm256_setzero_ps(); \
        int kk = 0;                                                                                                   \
        for (; kk + SETS <= k; kk += SETS) {                                                                          \
            _Pragma("clang loop unroll(full)") for (int s = 0; s < SETS; s++) {                                       \
                const int8_t *bk = b + (size_t)(kk + s) * R2EC_INT8_PANEL;                                            \
                __m256 b0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)bk)));          \
                __m256 b1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(bk + 8))));   \
                _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                   \
                    __m256 x = _mm256_broadcast_ss(a + (size_t)i * lda + kk + s);                                     \
                    lo[s][i] = _mm256_fmadd_ps(x, b0, lo[s][i]);                                                      \
                    hi[s][i] = _mm256_fmadd_ps(x, b1, hi[s][i]);                                                      \
                }                                                                                                     \
            }                                                                                                         \
        }                                                                                                             \
        for (; kk < k; kk++) {                                                                                        \
            const int8_t *bk = b + (size_t)kk * R2EC_INT8_PANEL;                                                      \
            __m256 b0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)bk)));              \
            __m256 b1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(bk + 8))));       \
            _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                       \
                __m256 x = _mm256_broadcast_ss(a + (size_t)i * lda + kk);                                             \
                lo[0][i] = _mm256_fmadd_ps(x, b0, lo[0][i]);                                                          \
                hi[0][i] = _mm256_fmadd_ps(x, b1, hi[0][i]);                                                          \
            }                                                                                                         \
        }                                                                                                             \
        __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);                                                     \
        __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);                                               \
        __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);                                           \
        __m256 va = _mm256_set1_ps(alpha);                                                                            \
        __m256 s0 = _mm256_mul_ps(va, _mm256_loadu_ps(scale)), s1 = _mm256_mul_ps(va, _mm256_loadu_ps(scale + 8));  \
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
    for (int p = first; p < last; p++) {
        const int8_t *panel = packed + (size_t)p * k * R2EC_INT8_PANEL;
        int cols = min_int(R2EC_INT8_PANEL, n - p * R2EC_INT8_PANEL);
        for (int s = 0; s * width < cols; s++) {
            int sub = min_int(width, cols - s * width);
            for (int i = 0; i < m; i += mr) {
                int rows = min_int(mr, m - i);
                tiles[rows](k, a + (size_t)i * lda, lda, panel + s * width, scales + p * R2EC_INT8_PANEL + s * width,
                            c + (size_t)i * ldc + p * R2EC_INT8_PANEL + s * width, ldc, sub, alpha);
            }
        }
    }
}
#endif

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
