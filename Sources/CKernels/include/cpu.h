// Which optimised kernels this CPU can run (checked once at run time; the binary itself targets baseline x86-64).
// Every kernel takes the instruction set to use as its first argument (r2ec_isa); Swift's Tensor.CPU chooses it in
// one place (detected, or forced lower by R2EC_ISA or by tests) and never passes one the CPU lacks.
#ifndef R2EC_CPU_H
#define R2EC_CPU_H

#ifdef __cplusplus
extern "C" {
#endif

/// The kernel families, each a superset of the one before.
typedef enum {
    /// Plain C (the compiler's baseline x86-64, SSE2): runs everywhere.
    R2EC_ISA_PORTABLE = 0,
    /// AVX2 + FMA + F16C (Haswell and later, Zen 1 and later).
    R2EC_ISA_AVX2 = 1,
    /// AVX-512F (Skylake-SP, Ice Lake, Zen 4 and later).
    R2EC_ISA_AVX512 = 2,
} r2ec_isa;

/// The widest r2ec_isa this CPU (and OS: the vector state is saved) runs.
r2ec_isa r2ec_cpu_isa(void);

/// 1 when the CPU has AVX512_BF16 (vdpbf16ps: pairs of bfloat16 products accumulated in float32) besides AVX-512F.
int r2ec_cpu_has_bf16(void);

#ifdef __cplusplus
}
#endif
#endif
