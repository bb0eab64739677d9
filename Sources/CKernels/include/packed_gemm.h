// The project's GEMM: C[m, n] = op(A)[m, k] · B[k, n] + beta · C, single-threaded over a range of B's column
// panels (Tensor's PackedMatrix / PackedGEMM split the work over the pool).
//
// B is read in panels of R2EC_PANEL (32) columns, each k rows of 32 floats. Packed B (weights, packed once at load
// for inference or once per step in training) stores the panels contiguously (panel p at p * k * 32, rows 32 floats
// apart, the last panel zero-padded); an unpacked row-major B [k, n] is read in place (panel p at column 32p, rows ldb
// apart), which spares the training graph a copy of its activations. op(A) element (i, kk) is at
// a[i * row_stride + kk * col_stride]: (lda, 1) for A stored [m, k], (1, lda) for A stored [k, m] (the A^T B of a
// weight gradient).
//
// Register tiles: AVX-512 12 rows x 32 columns (24 zmm accumulators), AVX2 6 x 16 over half panels (12 ymm),
// portable plain loops. The k dimension is cut in blocks of at most 512 (a panel block stays in L1/L2) and rows in
// chunks whose A block fits L2, so every panel of a chunk streams past an A block already in cache.
#ifndef R2EC_PACKED_GEMM_H
#define R2EC_PACKED_GEMM_H
#include <stddef.h>
#include <stdint.h>
#include "cpu.h"

#define R2EC_PANEL 32

#ifdef __cplusplus
extern "C" {
#endif

/// Floats of the packed form of a [k, n] operand.
size_t r2ec_packed_count(int n, int k);

/// Packs panels first..<last of op(B) [k, n] into `packed` (the whole packed form: r2ec_packed_count(n, k) floats):
/// B stored [n, k] with row stride ldb when trans_b (Hugging Face weights [out, in], for C = A · W^T), else [k, n]
/// with row stride ldb. Panels are independent, so threads may pack disjoint ranges at once.
void r2ec_pack(int k, int n, const float *b, int ldb, int trans_b, int first_panel, int last_panel, float *packed);

/// Where B's panels are: packed (panel_stride = k * 32, row_stride = 32, padded = 1) or a row-major [k, n] read in
/// place (panel_stride = 32, row_stride = ldb, padded = 0: its last partial panel, if any, is copied to a
/// zero-padded scratch panel, since the kernels read whole panels).
typedef struct {
    const float *data;
    long panel_stride;
    long row_stride;
    int padded;
} r2ec_panels;

/// C[rows, panel columns first..<last] = alpha · op(A) · B + beta · C over output columns [32 first, min(n, 32 last)), for
/// the instruction set `isa` (at most r2ec_cpu_isa()). beta == 0 never reads C.
void r2ec_packed_gemm(r2ec_isa isa, int m, int n, int k, const float *a, long a_row_stride, long a_col_stride,
                      r2ec_panels b, int first_panel, int last_panel, float *c, int ldc, float alpha, float beta);

/// The naive twin (plain loops over the same operands), which tests hold the optimised kernels equal to.
void r2ec_packed_gemm_reference(int m, int n, int k, const float *a, long a_row_stride, long a_col_stride,
                                r2ec_panels b, int first_panel, int last_panel, float *c, int ldc, float alpha,
                                float beta);

// bfloat16 weights (AVX512_BF16, vdpbf16ps): each panel holds ceil(k / 2) rows of 32 column pairs (B[2q, j],
// B[2q+1, j]) as bfloat16 (round to nearest even), zero-padded; the activations are rounded to bfloat16 pairs per
// call, the products accumulate in float32.

/// uint16 elements of the bf16 packed form of a [k, n] operand.
size_t r2ec_packed_bf16_count(int n, int k);

/// Packs op(B) [k, n] (as r2ec_pack) into bfloat16 pairs.
void r2ec_pack_bf16(int k, int n, const float *b, int ldb, int trans_b, uint16_t *packed);

/// Rounds A [m, k] (row stride lda) to bfloat16 rows of kp = k rounded up to even elements (zero-padded).
void r2ec_round_bf16(int m, int k, const float *a, int lda, uint16_t *out);

/// C[m, panels first..<last] = alpha · A · B + beta · C with A from r2ec_round_bf16 (rows kp apart) and B from
/// r2ec_pack_bf16; requires r2ec_cpu_has_bf16().
void r2ec_packed_gemm_bf16(int m, int n, int k, const uint16_t *a, const uint16_t *packed, int first_panel,
                           int last_panel, float *c, int ldc, float alpha, float beta);

/// The naive twin of r2ec_packed_gemm_bf16 (float32 products of the same bfloat16 values).
void r2ec_packed_gemm_bf16_reference(int m, int n, int k, const uint16_t *a, const uint16_t *packed,
                                     int first_panel, int last_panel, float *c, int ldc, float alpha, float beta);

#ifdef __cplusplus
}
#endif
#endif
