// The machine's own limits, for benchmarks to report figures against (a roofline): the FMA peak of each vector
// instruction set (a loop of independent fused multiply-adds that never touches memory), the bfloat16 dot-product
// peak, and STREAM's copy and triad kernels for memory bandwidth. Each function runs on the calling thread; the
// caller runs one per core at once (Tensor.Roofline).
#ifndef R2EC_ROOFLINE_H
#define R2EC_ROOFLINE_H
#include <stddef.h>
#include "cpu.h"

#ifdef __cplusplus
extern "C" {
#endif

/// Floating-point operations (a multiply-add counts 2) of one iteration of r2ec_fma_loop with `isa`
/// (portable: SSE2 multiplies and adds, which have no fused form).
double r2ec_fma_loop_flops(r2ec_isa isa);

/// `iterations` rounds of 12 independent accumulator chains (enough to cover the FMA latency on every current
/// core); returns a value derived from the result so the work cannot be optimised away.
float r2ec_fma_loop(r2ec_isa isa, long iterations);

/// Floating-point operations of one iteration of r2ec_bf16_dot_loop (12 vdpbf16ps of 32 products each).
double r2ec_bf16_dot_loop_flops(void);

/// The same with vdpbf16ps (AVX512_BF16); requires r2ec_cpu_has_bf16().
float r2ec_bf16_dot_loop(long iterations);

/// STREAM copy: c[i] = a[i] for i < n (8 bytes of traffic per element by STREAM's count).
void r2ec_stream_copy(r2ec_isa isa, const float *a, float *c, size_t n);

/// STREAM triad: a[i] = b[i] + s * c[i] for i < n (12 bytes per element).
void r2ec_stream_triad(r2ec_isa isa, float *a, const float *b, const float *c, float s, size_t n);

#ifdef __cplusplus
}
#endif
#endif
