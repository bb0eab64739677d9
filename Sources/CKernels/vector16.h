// Sixteen-float vectors in clang's vector extensions, for kernels written once and compiled per instruction set
// (not part of the module's interface): a function with target("avx512f") runs a v16 operation as one zmm
// instruction, with target("avx2,fma") as two ymm ones, at the baseline as four SSE2 ones.
#ifndef R2EC_VECTOR16_H
#define R2EC_VECTOR16_H
#include <stdint.h>
#include <string.h>

typedef float r2ec_v16 __attribute__((ext_vector_type(16)));
typedef int32_t r2ec_i16 __attribute__((ext_vector_type(16)));
typedef double r2ec_d8 __attribute__((ext_vector_type(8)));
typedef float r2ec_v8 __attribute__((ext_vector_type(8)));

// The helpers are macros (statement expressions), not functions: a function taking or returning a 64-byte vector
// would have a different ABI under each target, which clang refuses even when it is always inlined.

#define r2ec_load16(p) ({ r2ec_v16 r2ec_v_; memcpy(&r2ec_v_, (p), sizeof r2ec_v_); r2ec_v_; })

#define r2ec_store16(p, v) do { r2ec_v16 r2ec_s_ = (v); memcpy((p), &r2ec_s_, sizeof r2ec_s_); } while (0)

#define r2ec_splat16(x) ((r2ec_v16)(float)(x))

/// The sum of the lanes by halving (the order Tensor's Swift horizontalSum used).
#define r2ec_sum16(v) ({                                                                                           \
    r2ec_v16 r2ec_h_ = (v);                                                                                        \
    r2ec_v8 r2ec_8_ = r2ec_h_.lo + r2ec_h_.hi;                                                                     \
    float __attribute__((ext_vector_type(4))) r2ec_4_ = r2ec_8_.lo + r2ec_8_.hi;                                   \
    float __attribute__((ext_vector_type(2))) r2ec_2_ = r2ec_4_.lo + r2ec_4_.hi;                                   \
    r2ec_2_.x + r2ec_2_.y;                                                                                         \
})

/// Lanes of a where mask is set (all bits), else b.
#define r2ec_select16(mask, a, b) ((r2ec_v16)(((mask) & (r2ec_i16)(a)) | (~(mask) & (r2ec_i16)(b))))

/// e^x lane by lane (Tensor's Swift vectorExp, the same constants and steps): x = n ln2 + r, |r| <= ln2/2, e^r by a
/// degree-6 polynomial, 2^n through the exponent bits. Inputs above 88.7 are clamped; below -87.3 the result is 0.
/// Adding 1.5 * 2^23 rounds x log2(e) to the nearest integer n and leaves n in the low mantissa bits.
#define r2ec_exp16(input) ({                                                                                       \
    r2ec_v16 e_in_ = (input);                                                                                      \
    r2ec_i16 e_under_ = e_in_ < -87.3f;                                                                            \
    r2ec_v16 e_x_ = r2ec_select16(e_in_ > 88.7f, r2ec_splat16(88.7f), e_in_);                                      \
    e_x_ = r2ec_select16(e_under_, r2ec_splat16(-87.3f), e_x_);                                                    \
    r2ec_v16 e_shifted_ = e_x_ * 1.44269504f + 12582912.0f;                                                        \
    r2ec_v16 e_n_ = e_shifted_ - 12582912.0f;                                                                      \
    r2ec_i16 e_bits_ = (r2ec_i16)e_shifted_ - (r2ec_i16)(0x4B400000);                                              \
    r2ec_v16 e_r_ = e_x_ - e_n_ * 0.693359375f + e_n_ * 2.1219444e-4f;                                             \
    r2ec_v16 e_p_ = r2ec_splat16(1.98756915e-4f);                                                                  \
    e_p_ = e_p_ * e_r_ + 1.39819995e-3f;                                                                           \
    e_p_ = e_p_ * e_r_ + 8.3334519e-3f;                                                                            \
    e_p_ = e_p_ * e_r_ + 4.1665796e-2f;                                                                            \
    e_p_ = e_p_ * e_r_ + 1.66666655e-1f;                                                                           \
    e_p_ = e_p_ * e_r_ + 5.0000001e-1f;                                                                            \
    e_p_ = e_p_ * (e_r_ * e_r_) + e_r_ + 1;                                                                        \
    r2ec_select16(e_under_, r2ec_splat16(0), e_p_ * (r2ec_v16)((e_bits_ + 127) << 23));                            \
})

/// 1 / (1 + e^-x).
#define r2ec_sigmoid16(x) (1 / (1 + r2ec_exp16(-(x))))

/// Declares `name##512`, `name##256` and `name##_portable` with one body: `R2EC_PER_ISA(static void, f, (args), {...})`.
/// The body is a macro argument (commas allowed), so it is compiled three times, once under each target (three
/// plain copies off x86-64, where R2EC_ISA_PORTABLE is the only choice).
#if defined(__x86_64__)
#define R2EC_PER_ISA(ret, name, params, ...)                                                                       \
    __attribute__((target("avx512f"))) ret name##512 params __VA_ARGS__                                            \
    __attribute__((target("avx2,fma"))) ret name##256 params __VA_ARGS__                                           \
    ret name##_portable params __VA_ARGS__
#else
#define R2EC_PER_ISA(ret, name, params, ...)                                                                       \
    ret name##_portable params __VA_ARGS__                                                                         \
    ret name##512 params __VA_ARGS__                                                                               \
    ret name##256 params __VA_ARGS__
#endif

/// Calls the variant of `name` for `isa` with `args`.
#define R2EC_DISPATCH(isa, name, args)                                                                             \
    do {                                                                                                           \
        if ((isa) == R2EC_ISA_AVX512) name##512 args;                                                              \
        else if ((isa) == R2EC_ISA_AVX2) name##256 args;                                                           \
        else name##_portable args;                                                                                 \
    } while (0)

#endif
