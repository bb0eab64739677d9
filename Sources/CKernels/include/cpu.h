// Which optimised kernels this CPU can run (checked once at run time; the binary itself targets baseline x86-64).
#ifndef R2EC_CPU_H
#define R2EC_CPU_H

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when the CPU has AVX-512F (the packed GEMM and decode attention kernels), else 0.
int r2ec_has_avx512f(void);

#ifdef __cplusplus
}
#endif
#endif
