// An int8 item table for the scoring product (scores = alpha · queries · dequant(table)^T): each row of W [n, k] is
// stored as k int8 values q with one float32 scale s = max|w| / 127 (symmetric, q = round(w / s), a zero row has
// s = 0) and the int32 sum of its q, so a row costs k + 8 bytes instead of 4k. Rows are packed in panels of
// R2EC_INT8_PANEL (32) items; a panel holds groups of 4 consecutive k values (ceil(k / 4) groups of R2EC_INT8_GROUP
// bytes): item j's values 4g..4g+3 are the bytes 4j..4j+3 of group g (the operand layout of vpdpbusd, one item per
// 32-bit lane). Values past k and items past n are 0; the scales and sums are arrays of panels * 32 (padding 0).
//
// Exact kernels (r2ec_int8_gemm): widen each int8 to float32 and accumulate float32 products of the float32 queries
// (FMA), then scale each item's sum by alpha · s: the float32 product with the dequantised table (s · q), up to float
// rounding. AVX-512: up to 12 query rows x 32 items per register tile; AVX2: 6 x 16; portable: plain loops. The table
// is read once per call however many query rows (the panel stays in L1 while the row tiles pass over it).
//
// VNNI kernel (r2ec_int8_gemm_vnni, AVX512_VNNI): the queries quantised too, in two levels (r2ec_int8_quantize_queries:
// x ~ t1 · xq1 + t2 · xq2, the second level the first's remainder, stored as u = xq + 128 in uint8), integer dot
// products by vpdpbusd, and sum(u q) - 128 · sum(q) = sum(xq q) exactly: scores alpha · s · (t1 · sum(xq1 q) + t2 ·
// sum(xq2 q)). They differ from the exact kernel's by at most |alpha| · ||s q||_2 · ||x - t1 xq1 - t2 xq2||_2
// (Cauchy-Schwarz; the second level makes that about 127 times smaller than one level would), which the caller bounds
// with the largest row norm r2ec_int8_pack returns and the error r2ec_int8_quantize_queries reports, then re-scores
// every item the bound cannot rule out of a ranking exactly (r2ec_kth_largest, r2ec_collect_at_least,
// r2ec_int8_rescore).
#ifndef R2EC_INT8_TABLE_H
#define R2EC_INT8_TABLE_H
#include <stddef.h>
#include <stdint.h>
#include "cpu.h"

#define R2EC_INT8_PANEL 32
/// Bytes of one group of a panel: 32 items x 4 values.
#define R2EC_INT8_GROUP 128

#ifdef __cplusplus
extern "C" {
#endif

/// Panels of an [n, k] table: ceil(n / 32). The packed values take panels * r2ec_int8_groups(k) * 128 bytes.
int r2ec_int8_panels(int n);
/// Groups of 4 values in a row of k: ceil(k / 4).
int r2ec_int8_groups(int k);

/// Quantises rows of panels first..<last of W [n, k] (row stride ldw) into `packed`, `scales` and `sums` (the whole
/// packed form). Panels are independent, so threads may pack disjoint ranges at once. Returns the largest
/// ||s q||_2 of those rows (the dequantised row's norm).
float r2ec_int8_pack(int k, int n, const float *w, int ldw, int first_panel, int last_panel, int8_t *packed,
                     float *scales, int32_t *sums);

/// C[m, items of panels first..<last] = alpha · A[m, k] · dequant(W)^T, A rows lda apart, C rows ldc apart; writes
/// only the items < n (C is never read). `isa` at most r2ec_cpu_isa().
void r2ec_int8_gemm(r2ec_isa isa, int m, int n, int k, const float *a, int lda, const int8_t *packed,
                    const float *scales, int first_panel, int last_panel, float *c, int ldc, float alpha);

/// 1 when the CPU has AVX512_VNNI and AVX512BW besides AVX-512F (what r2ec_int8_gemm_vnni needs).
int r2ec_int8_has_vnni(void);

/// Quantises m query rows of X [m, k] (row stride ldx) in two levels: x ~ t1 · xq1 + t2 · xq2, with t1 = max|x| / 127,
/// xq1 = round(x / t1), and the remainder r = x - t1 · xq1 (rounded to float) quantised the same way (t2 = max|r| /
/// 127). u holds per row the two levels, each 4 · groups(k) bytes of xq + 128 (padding 128); steps[2i], steps[2i+1]
/// = t1, t2 (0 for a zero row or remainder); errors[i] = ||x - t1 xq1 - t2 xq2||_2 (float64). `residual`: k floats of
/// scratch.
void r2ec_int8_quantize_queries(int m, int k, const float *x, int ldx, uint8_t *u, float *steps, float *errors,
                                float *residual);

/// C[m, items of panels first..<last] = s_j · (factors[2i] · sum_k xq1[i, k] q[j, k] + factors[2i+1] · sum_k
/// xq2[i, k] q[j, k]) from two-level quantised queries u (as r2ec_int8_quantize_queries writes them; factors = alpha ·
/// steps). Writes only the items < n. Needs r2ec_int8_has_vnni(); a no-op off x86-64.
void r2ec_int8_gemm_vnni(int m, int n, int k, const uint8_t *u, const float *factors, const int8_t *packed,
                         const float *scales, const int32_t *sums, int first_panel, int last_panel, float *c,
                         int ldc);

/// row[items[c]] = alpha · s · sum_k x[k] q[k] for each of the `count` items, summed in float64 and rounded once.
void r2ec_int8_rescore(int k, const float *x, const int8_t *packed, const float *scales, const int32_t *items,
                       int count, float alpha, float *row);

/// The k-th largest value of x[0..<n] (NaN skipped; -infinity when fewer than k are numbers), with `heap` of k floats
/// as scratch. 1 <= k.
float r2ec_kth_largest(r2ec_isa isa, const float *x, long n, int k, float *heap);

/// The indices i (rising) with x[i] >= threshold: the first `cap` written to out, the count of all returned.
long r2ec_collect_at_least(r2ec_isa isa, const float *x, long n, float threshold, int32_t *out, long cap);

#ifdef __cplusplus
}
#endif
#endif
