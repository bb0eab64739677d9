// The packed-weight GEMM (see include/packed_gemm.h). The optimised kernel is compiled for AVX-512F through a
// target attribute and chosen at run time, so the binary still runs on CPUs without it. Register tile: up to 12
// rows of A x one 32-column panel (24 zmm accumulators); rows are processed in chunks of MC so that a chunk of A
// stays in L2 while every panel streams past it.
#include "packed_gemm.h"
#include <immintrin.h>

enum { MR = 12, MC = 96 };

size_t r2ec_packed_count(int n, int k) {
    return (size_t)((n + R2EC_PANEL - 1) / R2EC_PANEL) * R2EC_PANEL * (size_t)k;
}

void r2ec_pack(int n, int k, const float *w, float *packed) {
    int panels = (n + R2EC_PANEL - 1) / R2EC_PANEL;
    for (int p = 0; p < panels; p++) {
        float *panel = packed + (size_t)p * k * R2EC_PANEL;
        for (int kk = 0; kk < k; kk++)
            for (int j = 0; j < R2EC_PANEL; j++) {
                int row = p * R2EC_PANEL + j;
                panel[(size_t)kk * R2EC_PANEL + j] = row < n ? w[(size_t)row * k + kk] : 0.0f;
            }
    }
}

void r2ec_packed_gemm_reference(int m, int n, int k, const float *a, int lda, const float *packed, int first_panel,
                                int last_panel, float *c, int ldc, float beta) {
    for (int p = first_panel; p < last_panel; p++) {
        const float *panel = packed + (size_t)p * k * R2EC_PANEL;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < R2EC_PANEL && p * R2EC_PANEL + j < n; j++) {
                float sum = 0;
                for (int kk = 0; kk < k; kk++) sum += a[(size_t)i * lda + kk] * panel[(size_t)kk * R2EC_PANEL + j];
                float *out = c + (size_t)i * ldc + p * R2EC_PANEL + j;
                *out = beta == 0 ? sum : sum + beta * *out;
            }
    }
}

#if defined(__x86_64__)
// One tile: ROWS rows of A (row stride lda) against one packed panel, into `cols` (<= 32) columns of C.
#define R2EC_TILE(ROWS)                                                                                            \
    __attribute__((target("avx512f"))) static void tile_##ROWS(int k, const float *a, int lda, const float *panel, \
                                                               float *c, int ldc, int cols, float beta) {          \
        __m512 lo[ROWS], hi[ROWS];                                                                                 \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                        \
            lo[i] = _mm512_setzero_ps();                                                                           \
            hi[i] = _mm512_setzero_ps();                                                                           \
        }                                                                                                          \
        for (int kk = 0; kk < k; kk++) {                                                                           \
            __m512 b0 = _mm512_loadu_ps(panel + (size_t)kk * R2EC_PANEL);                                          \
            __m512 b1 = _mm512_loadu_ps(panel + (size_t)kk * R2EC_PANEL + 16);                                     \
            _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                    \
                __m512 x = _mm512_set1_ps(a[(size_t)i * lda + kk]);                                                \
                lo[i] = _mm512_fmadd_ps(x, b0, lo[i]);                                                             \
                hi[i] = _mm512_fmadd_ps(x, b1, hi[i]);                                                             \
            }                                                                                                      \
        }                                                                                                          \
        __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);                                       \
        __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);               \
        __m512 vb = _mm512_set1_ps(beta);                                                                          \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                        \
            float *row = c + (size_t)i * ldc;                                                                      \
            if (beta != 0) {                                                                                       \
                lo[i] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), lo[i]);                                \
                hi[i] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), hi[i]);                           \
            }                                                                                                      \
            _mm512_mask_storeu_ps(row, m0, lo[i]);                                                                 \
            _mm512_mask_storeu_ps(row + 16, m1, hi[i]);                                                            \
        }                                                                                                          \
    }
R2EC_TILE(1) R2EC_TILE(2) R2EC_TILE(3) R2EC_TILE(4) R2EC_TILE(5) R2EC_TILE(6)
R2EC_TILE(7) R2EC_TILE(8) R2EC_TILE(9) R2EC_TILE(10) R2EC_TILE(11) R2EC_TILE(12)

typedef void (*tile_fn)(int, const float *, int, const float *, float *, int, int, float);
static const tile_fn tiles[MR + 1] = {0,      tile_1, tile_2, tile_3,  tile_4,  tile_5, tile_6,
                                      tile_7, tile_8, tile_9, tile_10, tile_11, tile_12};

void r2ec_packed_gemm(int m, int n, int k, const float *a, int lda, const float *packed, int first_panel,
                      int last_panel, float *c, int ldc, float beta) {
    for (int i0 = 0; i0 < m; i0 += MC) {
        int chunk = m - i0 < MC ? m - i0 : MC;
        for (int p = first_panel; p < last_panel; p++) {
            const float *panel = packed + (size_t)p * k * R2EC_PANEL;
            int cols = n - p * R2EC_PANEL < R2EC_PANEL ? n - p * R2EC_PANEL : R2EC_PANEL;
            for (int i = i0; i < i0 + chunk; i += MR) {
                int rows = i0 + chunk - i < MR ? i0 + chunk - i : MR;
                tiles[rows](k, a + (size_t)i * lda, lda, panel, c + (size_t)i * ldc + p * R2EC_PANEL, ldc, cols, beta);
            }
        }
    }
}
#else
void r2ec_packed_gemm(int m, int n, int k, const float *a, int lda, const float *packed, int first_panel,
                      int last_panel, float *c, int ldc, float beta) {
    r2ec_packed_gemm_reference(m, n, k, a, lda, packed, first_panel, last_panel, c, ldc, beta);
}
#endif
