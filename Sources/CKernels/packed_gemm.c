// The project's GEMM (see include/packed_gemm.h). Each instruction set's micro-kernel is compiled through a target
// attribute and chosen by the caller, so the binary still runs on CPUs without it. One driver blocks k and the rows
// for every kernel; a register tile multiplies `rows` rows of op(A) by one panel (AVX-512) or half panel (AVX2).
#include "packed_gemm.h"
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

/// k is cut in blocks of at most KC; rows in chunks whose A block (rows x kc floats) takes at most A_BLOCK bytes.
/// The first row tile over a panel block, when it is a full one, prefetches its rows AHEAD k-rows before it reads
/// them: that tile brings the panel in from L3 or memory (the others find it in L1/L2), and a decode step's 16-32
/// rows give the hardware prefetcher alone too little time to hide that latency (perf: the 12-row tiles of a
/// batch-32 step took 1.8x the time per row of the 8-row tile after them over the same panels). Tiles of few rows
/// (a batch-1 step) are pure streams, which the hardware prefetcher runs well: there the extra instructions only
/// cost.
enum { KC = 512, A_BLOCK = 192 * 1024, AHEAD = 16 };

static inline int min_int(int a, int b) { return a < b ? a : b; }
static inline int panel_count(int n) { return (n + R2EC_PANEL - 1) / R2EC_PANEL; }

size_t r2ec_packed_count(int n, int k) { return (size_t)panel_count(n) * R2EC_PANEL * (size_t)k; }

void r2ec_pack(int k, int n, const float *b, int ldb, int trans_b, int first_panel, int last_panel, float *packed) {
    for (int p = first_panel; p < last_panel; p++) {
        float *panel = packed + (size_t)p * k * R2EC_PANEL;
        int cols = min_int(R2EC_PANEL, n - p * R2EC_PANEL);
        if (trans_b) {
            for (int j = 0; j < R2EC_PANEL; j++) {
                const float *row = b + (size_t)(p * R2EC_PANEL + j) * ldb;
                for (int kk = 0; kk < k; kk++) panel[(size_t)kk * R2EC_PANEL + j] = j < cols ? row[kk] : 0.0f;
            }
        } else {
            for (int kk = 0; kk < k; kk++) {
                float *out = panel + (size_t)kk * R2EC_PANEL;
                memcpy(out, b + (size_t)kk * ldb + p * R2EC_PANEL, (size_t)cols * sizeof(float));
                memset(out + cols, 0, (size_t)(R2EC_PANEL - cols) * sizeof(float));
            }
        }
    }
}

void r2ec_packed_gemm_reference(int m, int n, int k, const float *a, long a_row_stride, long a_col_stride,
                                r2ec_panels b, int first_panel, int last_panel, float *c, int ldc, float alpha,
                                float beta) {
    for (int p = first_panel; p < last_panel; p++) {
        const float *panel = b.data + p * b.panel_stride;
        int cols = min_int(R2EC_PANEL, n - p * R2EC_PANEL);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < cols; j++) {
                float sum = 0;
                for (int kk = 0; kk < k; kk++)
                    sum += a[i * a_row_stride + kk * a_col_stride] * panel[kk * b.row_stride + j];
                float *out = c + (size_t)i * ldc + p * R2EC_PANEL + j;
                *out = beta == 0 ? alpha * sum : alpha * sum + beta * *out;
            }
    }
}

/// One register tile: `rows` rows of op(A) (k of them from a, strides rs/cs) times `cols` columns of a panel block
/// (k rows `brs` floats apart) into C (row stride ldc); prefetching B's row kk + ahead while reading row kk when
/// ahead > 0.
typedef void (*tile_fn)(int k, const float *a, long rs, long cs, const float *b, long brs, float *c, int ldc, int cols,
                        float alpha, float beta, int ahead);

/// The blocked loops shared by every kernel: `width` columns per tile (32 or 16), tiles[r] for r rows.
static void drive(const tile_fn *tiles, int mr, int width, int m, int n, int k, const float *a, long rs, long cs,
                  r2ec_panels b, int first, int last, float *c, int ldc, float alpha, float beta) {
    if (m <= 0 || first >= last) return;
    // An unpacked B's last partial panel would be read past its columns: copy it into a zero-padded panel.
    int partial = !b.padded && n % R2EC_PANEL != 0 && last == panel_count(n);
    float *padded = NULL;
    if (partial) {
        padded = aligned_alloc(64, ((size_t)k * R2EC_PANEL * sizeof(float) + 63) / 64 * 64);
        int p = last - 1, cols = n - p * R2EC_PANEL;
        for (int kk = 0; kk < k; kk++) {
            memcpy(padded + (size_t)kk * R2EC_PANEL, b.data + p * b.panel_stride + kk * b.row_stride, (size_t)cols * 4);
            memset(padded + (size_t)kk * R2EC_PANEL + cols, 0, (size_t)(R2EC_PANEL - cols) * 4);
        }
    }
    int blocks = (k + KC - 1) / KC, kc = (k + blocks - 1) / blocks;
    int mc = (A_BLOCK / 4 / kc) / mr * mr;
    if (mc < mr) mc = mr;
    // A stored [k, m] (a weight gradient's A^T, rows of the activations' gradient far apart): each A block is copied
    // once into [kc][chunk] so the tiles of every panel read it from consecutive lines instead of one page per k.
    int transposed = rs == 1 && cs != 1 && last - first > 1;
    float *block = transposed ? aligned_alloc(64, ((size_t)kc * mc * sizeof(float) + 63) / 64 * 64) : NULL;
    for (int k0 = 0; k0 < k; k0 += kc) {
        int kb = min_int(kc, k - k0);
        float bb = k0 == 0 ? beta : 1.0f;
        for (int i0 = 0; i0 < m; i0 += mc) {
            int chunk = min_int(mc, m - i0);
            const float *ablock = a + i0 * rs + k0 * cs;
            long brs_a = rs, bcs_a = cs;
            if (transposed) {
                for (int kk = 0; kk < kb; kk++)
                    memcpy(block + (size_t)kk * chunk, a + i0 + (k0 + kk) * cs, (size_t)chunk * sizeof(float));
                ablock = block;
                brs_a = 1;
                bcs_a = chunk;
            }
            for (int p = first; p < last; p++) {
                const float *panel;
                long brs;
                if (partial && p == last - 1) { panel = padded; brs = R2EC_PANEL; }
                else { panel = b.data + p * b.panel_stride; brs = b.row_stride; }
                panel += k0 * brs;
                int cols = min_int(R2EC_PANEL, n - p * R2EC_PANEL);
                for (int s = 0; s * width < cols; s++) {
                    int sub = min_int(width, cols - s * width);
                    for (int i = i0; i < i0 + chunk; i += mr) {
                        int rows = min_int(mr, i0 + chunk - i);
                        tiles[rows](kb, ablock + (i - i0) * brs_a, brs_a, bcs_a, panel + s * width, brs,
                                    c + (size_t)i * ldc + p * R2EC_PANEL + s * width, ldc, sub, alpha, bb,
                                    i == i0 && rows == mr ? AHEAD : 0);
                    }
                }
            }
        }
    }
    free(padded);
    free(block);
}

#if defined(__x86_64__)
#define R2EC_TILE512(ROWS)                                                                                            \
    __attribute__((target("avx512f"))) static void tile512_##ROWS(int k, const float *a, long rs, long cs,            \
                                                                  const float *b, long brs, float *c, int ldc,       \
                                                                  int cols, float alpha, float beta, int ahead) {                 \
        __m512 lo[ROWS], hi[ROWS];                                                                                    \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                           \
            lo[i] = hi[i] = _mm512_setzero_ps();                                                                      \
            _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);       /* C's lines arrive meanwhile */   \
            _mm_prefetch((const char *)(c + (size_t)i * ldc + 31), _MM_HINT_T0);                                      \
        }                                                                                                             \
        for (int kk = 0; kk < k; kk++) {                                                                              \
            if (ahead) {                           /* both lines of the panel row `ahead` rows on (never faults) */   \
                _mm_prefetch((const char *)(b + (kk + ahead) * brs), _MM_HINT_T0);                                    \
                _mm_prefetch((const char *)(b + (kk + ahead) * brs + 16), _MM_HINT_T0);                               \
            }                                                                                                         \
            __m512 b0 = _mm512_loadu_ps(b + kk * brs), b1 = _mm512_loadu_ps(b + kk * brs + 16);                      \
            const float *ak = a + kk * cs;                                                                            \
            _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                       \
                __m512 x = _mm512_set1_ps(ak[i * rs]);                                                                \
                lo[i] = _mm512_fmadd_ps(x, b0, lo[i]);                                                                \
                hi[i] = _mm512_fmadd_ps(x, b1, hi[i]);                                                                \
            }                                                                                                         \
        }                                                                                                             \
        __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);                                          \
        __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);                  \
        __m512 vb = _mm512_set1_ps(beta), va = _mm512_set1_ps(alpha);                                                \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                           \
            float *row = c + (size_t)i * ldc;                                                                         \
            if (alpha != 1) { lo[i] = _mm512_mul_ps(va, lo[i]); hi[i] = _mm512_mul_ps(va, hi[i]); }                   \
            if (beta != 0) {                                                                                          \
                lo[i] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), lo[i]);                                   \
                hi[i] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), hi[i]);                              \
            }                                                                                                         \
            _mm512_mask_storeu_ps(row, m0, lo[i]);                                                                    \
            _mm512_mask_storeu_ps(row + 16, m1, hi[i]);                                                               \
        }                                                                                                             \
    }
R2EC_TILE512(1) R2EC_TILE512(2) R2EC_TILE512(3) R2EC_TILE512(4) R2EC_TILE512(5) R2EC_TILE512(6)
R2EC_TILE512(7) R2EC_TILE512(8) R2EC_TILE512(9) R2EC_TILE512(10) R2EC_TILE512(11) R2EC_TILE512(12)
static const tile_fn tiles512[13] = {0, tile512_1, tile512_2, tile512_3, tile512_4, tile512_5, tile512_6,
                                     tile512_7, tile512_8, tile512_9, tile512_10, tile512_11, tile512_12};

/// AVX2: 6 rows x 16 columns (12 ymm accumulators, two B vectors and a broadcast: 15 of the 16 registers).
#define R2EC_TILE256(ROWS)                                                                                            \
    __attribute__((target("avx2,fma"))) static void tile256_##ROWS(int k, const float *a, long rs, long cs,           \
                                                                   const float *b, long brs, float *c, int ldc,      \
                                                                   int cols, float alpha, float beta, int ahead) {                \
        __m256 lo[ROWS], hi[ROWS];                                                                                    \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                           \
            lo[i] = hi[i] = _mm256_setzero_ps();                                                                      \
            _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);                                          \
            _mm_prefetch((const char *)(c + (size_t)i * ldc + 15), _MM_HINT_T0);                                      \
        }                                                                                                             \
        for (int kk = 0; kk < k; kk++) {                                                                              \
            if (ahead) _mm_prefetch((const char *)(b + (kk + ahead) * brs), _MM_HINT_T0);   /* the half panel's line */ \
            __m256 b0 = _mm256_loadu_ps(b + kk * brs), b1 = _mm256_loadu_ps(b + kk * brs + 8);                       \
            const float *ak = a + kk * cs;                                                                            \
            _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                       \
                __m256 x = _mm256_broadcast_ss(ak + i * rs);                                                          \
                lo[i] = _mm256_fmadd_ps(x, b0, lo[i]);                                                                \
                hi[i] = _mm256_fmadd_ps(x, b1, hi[i]);                                                                \
            }                                                                                                         \
        }                                                                                                             \
        __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);                                                     \
        __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);                                               \
        __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);                                           \
        __m256 vb = _mm256_set1_ps(beta), va = _mm256_set1_ps(alpha);                                                \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                           \
            float *row = c + (size_t)i * ldc;                                                                         \
            if (alpha != 1) { lo[i] = _mm256_mul_ps(va, lo[i]); hi[i] = _mm256_mul_ps(va, hi[i]); }                   \
            if (cols == 16) {                                                                                         \
                if (beta != 0) {                                                                                      \
                    lo[i] = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row), lo[i]);                                         \
                    hi[i] = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8), hi[i]);                                     \
                }                                                                                                     \
                _mm256_storeu_ps(row, lo[i]);                                                                         \
                _mm256_storeu_ps(row + 8, hi[i]);                                                                     \
            } else {                                                                                                  \
                if (beta != 0) {                                                                                      \
                    lo[i] = _mm256_fmadd_ps(vb, _mm256_maskload_ps(row, m0), lo[i]);                                  \
                    hi[i] = _mm256_fmadd_ps(vb, _mm256_maskload_ps(row + 8, m1), hi[i]);                              \
                }                                                                                                     \
                _mm256_maskstore_ps(row, m0, lo[i]);                                                                  \
                _mm256_maskstore_ps(row + 8, m1, hi[i]);                                                              \
            }                                                                                                         \
        }                                                                                                             \
    }
R2EC_TILE256(1) R2EC_TILE256(2) R2EC_TILE256(3) R2EC_TILE256(4) R2EC_TILE256(5) R2EC_TILE256(6)
static const tile_fn tiles256[7] = {0, tile256_1, tile256_2, tile256_3, tile256_4, tile256_5, tile256_6};
#endif

void r2ec_packed_gemm(r2ec_isa isa, int m, int n, int k, const float *a, long a_row_stride, long a_col_stride,
                      r2ec_panels b, int first_panel, int last_panel, float *c, int ldc, float alpha, float beta) {
#if defined(__x86_64__)
    if (k == 0) {   // an empty sum: C = beta C (drive's tiles assume k >= 1 block)
        r2ec_packed_gemm_reference(m, n, k, a, a_row_stride, a_col_stride, b, first_panel, last_panel, c, ldc, alpha, beta);
        return;
    }
    if (isa == R2EC_ISA_AVX512) {
        drive(tiles512, 12, 32, m, n, k, a, a_row_stride, a_col_stride, b, first_panel, last_panel, c, ldc, alpha, beta);
        return;
    }
    if (isa == R2EC_ISA_AVX2) {
        drive(tiles256, 6, 16, m, n, k, a, a_row_stride, a_col_stride, b, first_panel, last_panel, c, ldc, alpha, beta);
        return;
    }
#endif
    r2ec_packed_gemm_reference(m, n, k, a, a_row_stride, a_col_stride, b, first_panel, last_panel, c, ldc, alpha, beta);
}

// MARK: bfloat16

static inline uint16_t bf16_round(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);   // NaN stays a quiet NaN
    x += 0x7fffu + ((x >> 16) & 1);                                             // round to nearest even
    return (uint16_t)(x >> 16);
}

static inline float bf16_widen(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static inline int pairs(int k) { return (k + 1) / 2; }

size_t r2ec_packed_bf16_count(int n, int k) { return (size_t)panel_count(n) * R2EC_PANEL * 2 * (size_t)pairs(k); }

void r2ec_pack_bf16(int k, int n, const float *b, int ldb, int trans_b, uint16_t *packed) {
    int kq = pairs(k);
    for (int p = 0; p < panel_count(n); p++) {
        uint16_t *panel = packed + (size_t)p * kq * 2 * R2EC_PANEL;
        for (int q = 0; q < kq; q++)
            for (int j = 0; j < R2EC_PANEL; j++)
                for (int e = 0; e < 2; e++) {
                    int kk = 2 * q + e, col = p * R2EC_PANEL + j;
                    float v = kk < k && col < n ? (trans_b ? b[(size_t)col * ldb + kk] : b[(size_t)kk * ldb + col]) : 0.0f;
                    panel[(size_t)q * 2 * R2EC_PANEL + 2 * j + e] = bf16_round(v);
                }
    }
}

void r2ec_round_bf16(int m, int k, const float *a, int lda, uint16_t *out) {
    int kp = 2 * pairs(k);
    for (int i = 0; i < m; i++) {
        for (int kk = 0; kk < k; kk++) out[(size_t)i * kp + kk] = bf16_round(a[(size_t)i * lda + kk]);
        if (kp > k) out[(size_t)i * kp + k] = 0;
    }
}

void r2ec_packed_gemm_bf16_reference(int m, int n, int k, const uint16_t *a, const uint16_t *packed,
                                     int first_panel, int last_panel, float *c, int ldc, float alpha, float beta) {
    int kq = pairs(k), kp = 2 * kq;
    for (int p = first_panel; p < last_panel; p++) {
        const uint16_t *panel = packed + (size_t)p * kq * 2 * R2EC_PANEL;
        int cols = min_int(R2EC_PANEL, n - p * R2EC_PANEL);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < cols; j++) {
                float sum = 0;
                for (int kk = 0; kk < kp; kk++)
                    sum += bf16_widen(a[(size_t)i * kp + kk]) *
                           bf16_widen(panel[(size_t)(kk / 2) * 2 * R2EC_PANEL + 2 * j + kk % 2]);
                float *out = c + (size_t)i * ldc + p * R2EC_PANEL + j;
                *out = beta == 0 ? alpha * sum : alpha * sum + beta * *out;
            }
    }
}

#if defined(__x86_64__)
typedef void (*tile_bf16_fn)(int kq, const uint16_t *a, int kp, const uint16_t *b, float *c, int ldc, int cols,
                             float alpha, float beta, int ahead);

#define R2EC_TILE_BF16(ROWS)                                                                                          \
    __attribute__((target("avx512f,avx512bw,avx512bf16"))) static void tile_bf16_##ROWS(                             \
        int kq, const uint16_t *a, int kp, const uint16_t *b, float *c, int ldc, int cols, float alpha, float beta,  \
        int ahead) {                                                                                                  \
        __m512 lo[ROWS], hi[ROWS];                                                                                    \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                           \
            lo[i] = hi[i] = _mm512_setzero_ps();                                                                      \
            _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);                                          \
            _mm_prefetch((const char *)(c + (size_t)i * ldc + 31), _MM_HINT_T0);                                      \
        }                                                                                                             \
        for (int q = 0; q < kq; q++) {                                                                                \
            if (ahead) {                                                                                              \
                _mm_prefetch((const char *)(b + (size_t)(q + ahead) * 64), _MM_HINT_T0);                              \
                _mm_prefetch((const char *)(b + (size_t)(q + ahead) * 64 + 32), _MM_HINT_T0);                         \
            }                                                                                                         \
            __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + (size_t)q * 64);                                          \
            __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + (size_t)q * 64 + 32);                                     \
            _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                       \
                int pair;                                                                                             \
                memcpy(&pair, a + (size_t)i * kp + 2 * q, 4);                                                         \
                __m512bh x = (__m512bh)_mm512_set1_epi32(pair);                                                       \
                lo[i] = _mm512_dpbf16_ps(lo[i], x, b0);                                                               \
                hi[i] = _mm512_dpbf16_ps(hi[i], x, b1);                                                               \
            }                                                                                                         \
        }                                                                                                             \
        __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);                                          \
        __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);                  \
        __m512 vb = _mm512_set1_ps(beta), va = _mm512_set1_ps(alpha);                                                \
        _Pragma("clang loop unroll(full)") for (int i = 0; i < ROWS; i++) {                                           \
            float *row = c + (size_t)i * ldc;                                                                         \
            if (alpha != 1) { lo[i] = _mm512_mul_ps(va, lo[i]); hi[i] = _mm512_mul_ps(va, hi[i]); }                   \
            if (beta != 0) {                                                                                          \
                lo[i] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), lo[i]);                                   \
                hi[i] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), hi[i]);                              \
            }                                                                                                         \
            _mm512_mask_storeu_ps(row, m0, lo[i]);                                                                    \
            _mm512_mask_storeu_ps(row + 16, m1, hi[i]);                                                               \
        }                                                                                                             \
    }
R2EC_TILE_BF16(1) R2EC_TILE_BF16(2) R2EC_TILE_BF16(3) R2EC_TILE_BF16(4) R2EC_TILE_BF16(5) R2EC_TILE_BF16(6)
R2EC_TILE_BF16(7) R2EC_TILE_BF16(8) R2EC_TILE_BF16(9) R2EC_TILE_BF16(10) R2EC_TILE_BF16(11) R2EC_TILE_BF16(12)
static const tile_bf16_fn tiles_bf16[13] = {0, tile_bf16_1, tile_bf16_2, tile_bf16_3, tile_bf16_4, tile_bf16_5,
                                            tile_bf16_6, tile_bf16_7, tile_bf16_8, tile_bf16_9, tile_bf16_10,
                                            tile_bf16_11, tile_bf16_12};

void r2ec_packed_gemm_bf16(int m, int n, int k, const uint16_t *a, const uint16_t *packed, int first_panel,
                           int last_panel, float *c, int ldc, float alpha, float beta) {
    int kq = pairs(k), kp = 2 * kq;
    if (m <= 0 || first_panel >= last_panel) return;
    int blocks = (kq + KC / 2 - 1) / (KC / 2), qc = (kq + blocks - 1) / blocks;
    int mc = (A_BLOCK / 4 / qc) / 12 * 12;
    if (mc < 12) mc = 12;
    for (int q0 = 0; q0 < kq; q0 += qc) {
        int qb = min_int(qc, kq - q0);
        float bb = q0 == 0 ? beta : 1.0f;
        for (int i0 = 0; i0 < m; i0 += mc) {
            int chunk = min_int(mc, m - i0);
            for (int p = first_panel; p < last_panel; p++) {
                const uint16_t *panel = packed + (size_t)p * kq * 2 * R2EC_PANEL + (size_t)q0 * 2 * R2EC_PANEL;
                int cols = min_int(R2EC_PANEL, n - p * R2EC_PANEL);
                for (int i = i0; i < i0 + chunk; i += 12) {
                    int rows = min_int(12, i0 + chunk - i);
                    tiles_bf16[rows](qb, a + (size_t)i * kp + 2 * q0, kp, panel, c + (size_t)i * ldc + p * R2EC_PANEL,
                                     ldc, cols, alpha, bb, i == i0 && rows == 12 ? AHEAD : 0);
                }
            }
        }
    }
    if (kq == 0) r2ec_packed_gemm_bf16_reference(m, n, k, a, packed, first_panel, last_panel, c, ldc, alpha, beta);
}
#else
void r2ec_packed_gemm_bf16(int m, int n, int k, const uint16_t *a, const uint16_t *packed, int first_panel,
                           int last_panel, float *c, int ldc, float alpha, float beta) {
    r2ec_packed_gemm_bf16_reference(m, n, k, a, packed, first_panel, last_panel, c, ldc, alpha, beta);
}
#endif
