// Single-threaded GEMM against weights packed once at load time, for the projections of inference.
// C[m, n] = A[m, k] · W^T + beta · C with W a Hugging Face-layout [n, k] matrix. The packed form stores W in panels
// of R2EC_PANEL output columns, each k rows of R2EC_PANEL contiguous floats (the last panel zero-padded), so the
// micro-kernel streams one panel while an A row block stays in registers and L1: no per-call packing, which is what
// makes small-m GEMMs (decode steps) several times faster than a general sgemm here.
#ifndef R2EC_PACKED_GEMM_H
#define R2EC_PACKED_GEMM_H
#include <stddef.h>

#define R2EC_PANEL 32

#ifdef __cplusplus
extern "C" {
#endif

/// Floats of the packed form of an [n, k] matrix.
size_t r2ec_packed_count(int n, int k);

/// Packs W [n, k] (row stride k) into `packed` (r2ec_packed_count(n, k) floats).
void r2ec_pack(int n, int k, const float *w, float *packed);

/// C[:, panels first..<last] = A · W^T + beta · C over output columns [32 first, min(n, 32 last)).
/// The optimised kernel; requires r2ec_has_avx512f() (cpu.h).
void r2ec_packed_gemm(int m, int n, int k, const float *a, int lda, const float *packed, int first_panel,
                      int last_panel, float *c, int ldc, float beta);

/// The naive twin over the same packed layout (plain loops), which tests hold the optimised kernel equal to.
void r2ec_packed_gemm_reference(int m, int n, int k, const float *a, int lda, const float *packed, int first_panel,
                                int last_panel, float *c, int ldc, float beta);

#ifdef __cplusplus
}
#endif
#endif
