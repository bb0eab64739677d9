// An int8 item table for the scoring product (scores = alpha · queries · dequant(table)^T): each row of W [n, k] is
// stored as k int8 values q with one float32 scale s = max|w| / 127 (symmetric, q = round(w / s), a zero row has
// s = 0), so a row costs k + 4 bytes instead of 4k. Rows are packed in panels of R2EC_INT8_PANEL (32): panel p holds
// k rows of 32 int8 (item 32p + j's value kk at p * 32k + 32 kk + j), the last panel zero-padded, and the scales in
// an array of panels * 32 floats (padding 0).
//
// The kernels widen each int8 to float32 and accumulate float32 products of the float32 queries (FMA), then scale each
// item's sum by alpha · s: the result is the float32 product with the dequantised table (s · q), up to float
// rounding; the queries are not quantised. AVX-512: up to 12 query rows x 32 items per register tile; AVX2: 6 x 16;
// portable: plain loops. The table is read once per call however many query rows (the panel stays in L1 while the
// row tiles pass over it), so at batch 1 the product is bound by the table's bytes.
#ifndef R2EC_INT8_TABLE_H
#define R2EC_INT8_TABLE_H
#include <stddef.h>
#include <stdint.h>
#include "cpu.h"

#define R2EC_INT8_PANEL 32

#ifdef __cplusplus
extern "C" {
#endif

/// Panels of an [n, k] table: ceil(n / 32). The packed values take panels * 32 * k bytes, the scales panels * 32 floats.
int r2ec_int8_panels(int n);

/// Quantises rows of panels first..<last of W [n, k] (row stride ldw) into `packed` and `scales` (the whole packed
/// form). Panels are independent, so threads may pack disjoint ranges at once.
void r2ec_int8_pack(int k, int n, const float *w, int ldw, int first_panel, int last_panel, int8_t *packed,
                    float *scales);

/// C[m, items of panels first..<last] = alpha · A[m, k] · dequant(W)^T, A rows lda apart, C rows ldc apart; writes
/// only the items < n (C is never read). `isa` at most r2ec_cpu_isa().
void r2ec_int8_gemm(r2ec_isa isa, int m, int n, int k, const float *a, int lda, const int8_t *packed,
                    const float *scales, int first_panel, int last_panel, float *c, int ldc, float alpha);

#ifdef __cplusplus
}
#endif
#endif
