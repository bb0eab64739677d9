// The decode attention kernels (include/decode_attention.h), AVX-512F and AVX2 through target attributes. Scores
// take one pass over the keys with every head of the group per key row; the softmax exponential is a degree-6
// polynomial scaled by 2^n (scalef, or exponent bits on AVX2); keys are scored 16 (AVX2: 8) at a time with one
// transposing reduction; the weighted sum of values takes four vector accumulators per head per pass over the rows,
// two heads sharing each pass. One body per instruction set, two instances each: keys/values in float32, or in
// float16 widened as they are loaded (vcvtph2ps). On AVX-512, pairs of heads are scored together, 8 keys per reduction,
// each key widened once for both. A decode step of a batch reads every sequence's cache once, megabytes
// that are rarely in L1/L2 and whose rows (one per token, a head's slice of it) are too short for the hardware
// prefetcher to run ahead: the scores prefetch the next block's key rows into L1 and the block's value rows into L2,
// and the weighted sum the value row AHEAD_ROWS on into L1 (perf had both loops waiting on their loads).
#include "decode_attention.h"
#include <immintrin.h>
#include "vector_exp.h"

enum { AHEAD_ROWS = 8 };

/// Prefetches rows first..<first+count of `base` (row stride `stride` bytes, the first `bytes` bytes of each).
#define R2EC_PREFETCH_ROWS(base, stride, first, count, bytes, hint)                                                   \
    for (int r_ = 0; r_ < (count); r_++) {                                                                            \
        const char *p_ = (const char *)(base) + (size_t)((first) + r_) * (size_t)(stride);                            \
        for (int b_ = 0; b_ < (bytes); b_ += 64) _mm_prefetch(p_ + b_, hint);                                         \
    }

#if defined(__x86_64__)
#define R2EC_AVX512 __attribute__((target("avx512f")))

/// row[0..<n] = exp(row - max(row)) in place; returns the sum.
R2EC_AVX512 static float softmax_numerators(float *row, int n) {
    __m512 vmax = _mm512_set1_ps(-__builtin_inff());
    int j = 0;
    for (; j + 16 <= n; j += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(row + j));
    __mmask16 tail = (__mmask16)((1u << (n - j)) - 1);
    if (n > j) vmax = _mm512_mask_max_ps(vmax, tail, vmax, _mm512_maskz_loadu_ps(tail, row + j));
    __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(vmax)), sum = _mm512_setzero_ps();
    for (j = 0; j + 16 <= n; j += 16) {
        __m512 e = r2ec_exp512_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(row + j), m));
        _mm512_storeu_ps(row + j, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (n > j) {
        __m512 e = r2ec_exp512_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, row + j), m));
        _mm512_mask_storeu_ps(row + j, tail, e);
        sum = _mm512_mask_add_ps(sum, tail, sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

/// The 16 horizontal sums of v[0..15] as one vector (lane t = sum of v[t]): pairwise unpack/shuffle and add,
/// 15 vector adds in place of 16 separate reductions.
R2EC_AVX512 static inline __m512 sum16(const __m512 v[16]) {
    __m512 a[8], b[4];
    for (int i = 0; i < 8; i++)   // per 128-bit lane: [v2i 0+2, v2i+1 0+2, v2i 1+3, v2i+1 1+3]
        a[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++)   // per 128-bit lane: the lane's sums of v4i .. v4i+3
        b[i] = _mm512_add_ps(_mm512_shuffle_ps(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(a[2 * i], a[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    // Sum the four 128-bit lanes of each b[i] into lane i of the result.
    __m512 c01 = _mm512_add_ps(_mm512_shuffle_f32x4(b[0], b[1], _MM_SHUFFLE(1, 0, 1, 0)),
                               _mm512_shuffle_f32x4(b[0], b[1], _MM_SHUFFLE(3, 2, 3, 2)));
    __m512 c23 = _mm512_add_ps(_mm512_shuffle_f32x4(b[2], b[3], _MM_SHUFFLE(1, 0, 1, 0)),
                               _mm512_shuffle_f32x4(b[2], b[3], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(c01, c23, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(c01, c23, _MM_SHUFFLE(3, 1, 3, 1)));
}

#define R2EC_LOAD_F32(p) _mm512_loadu_ps(p)
#define R2EC_LOAD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))

/// scores[h, j] = scale · q[h] · k[j] for every head h < heads and key j < context (16 keys per reduction).
#define R2EC_SCORES(NAME, T, LOAD)                                                                                    \
    R2EC_AVX512 static void NAME(const float *q, int heads, const T *keys, const T *values, int stride, int context,  \
                                 int vectors, int head_dim, float scale, float *scores) {                             \
        int j0 = 0, bytes = head_dim * (int)sizeof(T), row = stride * (int)sizeof(T);                                 \
        R2EC_PREFETCH_ROWS(keys, row, 0, context < 16 ? context : 16, bytes, _MM_HINT_T0)                             \
        for (; j0 + 16 <= context; j0 += 16) {                                                                        \
            int next = context - j0 - 16 < 16 ? context - j0 - 16 : 16;                                               \
            R2EC_PREFETCH_ROWS(keys, row, j0 + 16, next, bytes, _MM_HINT_T0)                                          \
            R2EC_PREFETCH_ROWS(values, row, j0, 16, bytes, _MM_HINT_T1)                                               \
            for (int h = 0; h < heads; h++) {                                                                         \
                const float *qh = q + (size_t)h * head_dim;                                                           \
                const T *k = keys + (size_t)j0 * stride;                                                              \
                __m512 acc[16];                                                                                       \
                _Pragma("clang loop unroll(full)") for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();         \
                for (int v = 0; v < vectors; v++) {     /* 16 accumulators stay in registers across the head */      \
                    __m512 qv = _mm512_loadu_ps(qh + 16 * v);                                                         \
                    _Pragma("clang loop unroll(full)") for (int t = 0; t < 16; t++)                                   \
                        acc[t] = _mm512_fmadd_ps(qv, LOAD(k + (size_t)t * stride + 16 * v), acc[t]);                 \
                }                                                                                                     \
                _mm512_storeu_ps(scores + (size_t)h * context + j0, _mm512_mul_ps(sum16(acc), _mm512_set1_ps(scale))); \
            }                                                                                                         \
        }                                                                                                             \
        R2EC_PREFETCH_ROWS(values, row, j0, context - j0, bytes, _MM_HINT_T1)                                         \
        for (int j = j0; j < context; j++) {                                                                          \
            const T *k = keys + (size_t)j * stride;                                                                   \
            for (int h = 0; h < heads; h++) {                                                                         \
                const float *qh = q + (size_t)h * head_dim;                                                           \
                __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(qh), LOAD(k));                                             \
                for (int v = 1; v < vectors; v++)                                                                     \
                    acc = _mm512_fmadd_ps(_mm512_loadu_ps(qh + 16 * v), LOAD(k + 16 * v), acc);                       \
                scores[(size_t)h * context + j] = _mm512_reduce_add_ps(acc) * scale;                                  \
            }                                                                                                         \
        }                                                                                                             \
    }

/// The same for two heads at once (q and q + head_dim; scores rows h and h + 1): 8 keys per reduction, each key vector
/// widened once for both heads (16 accumulators: 8 keys x 2 heads), so a GQA group of two reads its keys once.
#define R2EC_SCORES_PAIR(NAME, T, LOAD)                                                                               \
    R2EC_AVX512 static void NAME(const float *q, const T *keys, const T *values, int stride, int context,             \
                                 int vectors, int head_dim, float scale, float *scores) {                             \
        const float *q1 = q + head_dim;                                                                               \
        float *s0 = scores, *s1 = scores + context;                                                                   \
        int j0 = 0, bytes = head_dim * (int)sizeof(T), row = stride * (int)sizeof(T);                                 \
        R2EC_PREFETCH_ROWS(keys, row, 0, context < 8 ? context : 8, bytes, _MM_HINT_T0)                               \
        for (; j0 + 8 <= context; j0 += 8) {                                                                          \
            int next = context - j0 - 8 < 8 ? context - j0 - 8 : 8;                                                   \
            R2EC_PREFETCH_ROWS(keys, row, j0 + 8, next, bytes, _MM_HINT_T0)                                           \
            R2EC_PREFETCH_ROWS(values, row, j0, 8, bytes, _MM_HINT_T1)                                                \
            const T *k = keys + (size_t)j0 * stride;                                                                  \
            __m512 acc[16];                                                                                           \
            _Pragma("clang loop unroll(full)") for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();             \
            for (int v = 0; v < vectors; v++) {                                                                       \
                __m512 qa = _mm512_loadu_ps(q + 16 * v), qb = _mm512_loadu_ps(q1 + 16 * v);                           \
                _Pragma("clang loop unroll(full)") for (int t = 0; t < 8; t++) {                                      \
                    __m512 kv = LOAD(k + (size_t)t * stride + 16 * v);                                                \
                    acc[t] = _mm512_fmadd_ps(qa, kv, acc[t]);                                                         \
                    acc[8 + t] = _mm512_fmadd_ps(qb, kv, acc[8 + t]);                                                 \
                }                                                                                                     \
            }                                                                                                         \
            __m512 sums = _mm512_mul_ps(sum16(acc), _mm512_set1_ps(scale));   /* lanes 0-7 head 0, 8-15 head 1 */    \
            _mm256_storeu_ps(s0 + j0, _mm512_castps512_ps256(sums));                                                  \
            _mm256_storeu_ps(s1 + j0, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sums), 1)));           \
        }                                                                                                             \
        R2EC_PREFETCH_ROWS(values, row, j0, context - j0, bytes, _MM_HINT_T1)                                         \
        for (int j = j0; j < context; j++) {                                                                          \
            const T *k = keys + (size_t)j * stride;                                                                   \
            __m512 kv = LOAD(k), a0 = _mm512_mul_ps(_mm512_loadu_ps(q), kv), a1 = _mm512_mul_ps(_mm512_loadu_ps(q1), kv); \
            for (int v = 1; v < vectors; v++) {                                                                       \
                kv = LOAD(k + 16 * v);                                                                                \
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + 16 * v), kv, a0);                                            \
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q1 + 16 * v), kv, a1);                                           \
            }                                                                                                         \
            s0[j] = _mm512_reduce_add_ps(a0) * scale;                                                                 \
            s1[j] = _mm512_reduce_add_ps(a1) * scale;                                                                 \
        }                                                                                                             \
    }

/// out[h] = inverse[h] · sum_j p[h, j] · v[j] for H (1 or 2) heads sharing each pass over the value rows, 64 floats
/// of the head at a time (p rows `context` apart, outputs `head_dim` apart).
#define R2EC_WEIGHTED_SUM(NAME, T, LOAD, H)                                                                           \
    R2EC_AVX512 static void NAME(const float *p, const T *values, int stride, int context, int vectors, int head_dim, \
                                 const float *inverse, float *out) {                                                  \
        for (int v = 0; v < vectors; v += 4) {                                                                        \
            int n = vectors - v < 4 ? vectors - v : 4;                                                                \
            __m512 acc[H][4];                                                                                         \
            _Pragma("clang loop unroll(full)") for (int h = 0; h < H; h++)                                            \
                acc[h][0] = acc[h][1] = acc[h][2] = acc[h][3] = _mm512_setzero_ps();                                  \
            const T *base = values + 16 * v;                                                                          \
            for (int j = 0; j < context; j++, base += stride) {                                                       \
                for (int i = 0; i < n; i++) _mm_prefetch((const char *)(base + AHEAD_ROWS * stride + 16 * i), _MM_HINT_T0); \
                __m512 x0 = LOAD(base), zero = _mm512_setzero_ps();                                                   \
                __m512 x1 = n > 1 ? LOAD(base + 16) : zero, x2 = n > 2 ? LOAD(base + 32) : zero;                      \
                __m512 x3 = n > 3 ? LOAD(base + 48) : zero;                                                           \
                _Pragma("clang loop unroll(full)") for (int h = 0; h < H; h++) {                                      \
                    __m512 w = _mm512_set1_ps(p[(size_t)h * context + j]);                                            \
                    acc[h][0] = _mm512_fmadd_ps(w, x0, acc[h][0]);                                                    \
                    acc[h][1] = _mm512_fmadd_ps(w, x1, acc[h][1]);                                                    \
                    acc[h][2] = _mm512_fmadd_ps(w, x2, acc[h][2]);                                                    \
                    acc[h][3] = _mm512_fmadd_ps(w, x3, acc[h][3]);                                                    \
                }                                                                                                     \
            }                                                                                                         \
            _Pragma("clang loop unroll(full)") for (int h = 0; h < H; h++) {                                          \
                __m512 scale = _mm512_set1_ps(inverse[h]);                                                            \
                float *target = out + (size_t)h * head_dim + 16 * v;                                                  \
                for (int i = 0; i < n; i++) _mm512_storeu_ps(target + 16 * i, _mm512_mul_ps(acc[h][i], scale));       \
            }                                                                                                         \
        }                                                                                                             \
    }

#define R2EC_DECODE_ATTENTION(NAME, T, LOAD)                                                                          \
    R2EC_SCORES(NAME##_scores, T, LOAD)                                                                               \
    R2EC_SCORES_PAIR(NAME##_scores2, T, LOAD)                                                                         \
    R2EC_WEIGHTED_SUM(NAME##_sum1, T, LOAD, 1)                                                                        \
    R2EC_WEIGHTED_SUM(NAME##_sum2, T, LOAD, 2)                                                                        \
    R2EC_AVX512 static void NAME(const float *q, int heads, const T *keys, const T *values, int stride, int context,         \
                          int head_dim, float scale, float *scores, float *out) {                                     \
        int vectors = head_dim / 16, paired = heads / 2 * 2;                                                          \
        for (int h = 0; h < paired; h += 2)                                                                           \
            NAME##_scores2(q + (size_t)h * head_dim, keys, values, stride, context, vectors, head_dim, scale,          \
                           scores + (size_t)h * context);                                                             \
        if (paired < heads)                                                                                           \
            NAME##_scores(q + (size_t)paired * head_dim, 1, keys, values, stride, context, vectors, head_dim, scale,  \
                          scores + (size_t)paired * context);                                                         \
        float inverse[heads];                                                                                         \
        for (int h = 0; h < heads; h++) inverse[h] = 1.0f / softmax_numerators(scores + (size_t)h * context, context); \
        int h = 0;                                                                                                    \
        for (; h + 2 <= heads; h += 2)                                                                                \
            NAME##_sum2(scores + (size_t)h * context, values, stride, context, vectors, head_dim, inverse + h,        \
                        out + (size_t)h * head_dim);                                                                  \
        if (h < heads)                                                                                                \
            NAME##_sum1(scores + (size_t)h * context, values, stride, context, vectors, head_dim, inverse + h,        \
                        out + (size_t)h * head_dim);                                                                  \
    }

R2EC_DECODE_ATTENTION(attention512_f32, float, R2EC_LOAD_F32)
R2EC_DECODE_ATTENTION(attention512_f16, uint16_t, R2EC_LOAD_F16)

// MARK: AVX2 + FMA + F16C: the same algorithm on 8-float vectors.
#define R2EC_AVX2 __attribute__((target("avx2,fma,f16c")))

R2EC_AVX2 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

R2EC_AVX2 static inline float hmax256(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// row[0..<n] = exp(row - max(row)) in place; returns the sum (the tail one by one through the vector exp).
R2EC_AVX2 static float softmax_numerators256(float *row, int n) {
    __m256 vmax = _mm256_set1_ps(-__builtin_inff());
    int j = 0;
    for (; j + 8 <= n; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(row + j));
    float m = hmax256(vmax);
    for (int t = j; t < n; t++) m = row[t] > m ? row[t] : m;
    __m256 vm = _mm256_set1_ps(m), sum = _mm256_setzero_ps();
    for (j = 0; j + 8 <= n; j += 8) {
        __m256 e = r2ec_exp256_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(row + j), vm));
        _mm256_storeu_ps(row + j, e);
        sum = _mm256_add_ps(sum, e);
    }
    float total = hsum256(sum);
    if (j < n) {
        float tail[8];
        for (int t = 0; t < 8; t++) tail[t] = j + t < n ? row[j + t] - m : -100.0f;
        _mm256_storeu_ps(tail, r2ec_exp256_nonpositive(_mm256_loadu_ps(tail)));
        for (int t = j; t < n; t++) { row[t] = tail[t - j]; total += tail[t - j]; }
    }
    return total;
}

/// The 8 horizontal sums of v[0..7] as one vector (lane t = sum of v[t]).
R2EC_AVX2 static inline __m256 sum8(const __m256 v[8]) {
    __m256 a0 = _mm256_hadd_ps(v[0], v[1]), a1 = _mm256_hadd_ps(v[2], v[3]);
    __m256 a2 = _mm256_hadd_ps(v[4], v[5]), a3 = _mm256_hadd_ps(v[6], v[7]);
    __m256 b0 = _mm256_hadd_ps(a0, a1), b1 = _mm256_hadd_ps(a2, a3);   // per 128-bit half: sums of 0-3 | 4-7 halves
    return _mm256_add_ps(_mm256_permute2f128_ps(b0, b1, 0x20), _mm256_permute2f128_ps(b0, b1, 0x31));
}

#define R2EC_LOAD256_F32(p) _mm256_loadu_ps(p)
#define R2EC_LOAD256_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))

#define R2EC_SCORES256(NAME, T, LOAD)                                                                                 \
    R2EC_AVX2 static void NAME(const float *q, int heads, const T *keys, const T *values, int stride, int context,    \
                               int vectors, int head_dim, float scale, float *scores) {                               \
        int j0 = 0, bytes = head_dim * (int)sizeof(T), row = stride * (int)sizeof(T);                                 \
        R2EC_PREFETCH_ROWS(keys, row, 0, context < 8 ? context : 8, bytes, _MM_HINT_T0)                               \
        for (; j0 + 8 <= context; j0 += 8) {                                                                          \
            int next = context - j0 - 8 < 8 ? context - j0 - 8 : 8;                                                   \
            R2EC_PREFETCH_ROWS(keys, row, j0 + 8, next, bytes, _MM_HINT_T0)                                           \
            R2EC_PREFETCH_ROWS(values, row, j0, 8, bytes, _MM_HINT_T1)                                                \
            for (int h = 0; h < heads; h++) {                                                                         \
                const float *qh = q + (size_t)h * head_dim;                                                           \
                const T *k = keys + (size_t)j0 * stride;                                                              \
                __m256 acc[8];                                                                                        \
                _Pragma("clang loop unroll(full)") for (int t = 0; t < 8; t++) acc[t] = _mm256_setzero_ps();          \
                for (int v = 0; v < vectors; v++) {                                                                   \
                    __m256 qv = _mm256_loadu_ps(qh + 8 * v);                                                          \
                    _Pragma("clang loop unroll(full)") for (int t = 0; t < 8; t++)                                    \
                        acc[t] = _mm256_fmadd_ps(qv, LOAD(k + (size_t)t * stride + 8 * v), acc[t]);                  \
                }                                                                                                     \
                _mm256_storeu_ps(scores + (size_t)h * context + j0, _mm256_mul_ps(sum8(acc), _mm256_set1_ps(scale))); \
            }                                                                                                         \
        }                                                                                                             \
        R2EC_PREFETCH_ROWS(values, row, j0, context - j0, bytes, _MM_HINT_T1)                                         \
        for (int j = j0; j < context; j++) {                                                                          \
            const T *k = keys + (size_t)j * stride;                                                                   \
            for (int h = 0; h < heads; h++) {                                                                         \
                const float *qh = q + (size_t)h * head_dim;                                                           \
                __m256 acc = _mm256_mul_ps(_mm256_loadu_ps(qh), LOAD(k));                                             \
                for (int v = 1; v < vectors; v++)                                                                     \
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(qh + 8 * v), LOAD(k + 8 * v), acc);                         \
                scores[(size_t)h * context + j] = hsum256(acc) * scale;                                               \
            }                                                                                                         \
        }                                                                                                             \
    }

#define R2EC_WEIGHTED_SUM256(NAME, T, LOAD, H)                                                                        \
    R2EC_AVX2 static void NAME(const float *p, const T *values, int stride, int context, int vectors, int head_dim,   \
                               const float *inverse, float *out) {                                                    \
        for (int v = 0; v < vectors; v += 4) {                                                                        \
            int n = vectors - v < 4 ? vectors - v : 4;                                                                \
            __m256 acc[H][4];                                                                                         \
            _Pragma("clang loop unroll(full)") for (int h = 0; h < H; h++)                                            \
                acc[h][0] = acc[h][1] = acc[h][2] = acc[h][3] = _mm256_setzero_ps();                                  \
            const T *base = values + 8 * v;                                                                           \
            for (int j = 0; j < context; j++, base += stride) {                                                       \
                for (int i = 0; i < n; i++) _mm_prefetch((const char *)(base + AHEAD_ROWS * stride + 8 * i), _MM_HINT_T0); \
                __m256 x0 = LOAD(base), zero = _mm256_setzero_ps();                                                   \
                __m256 x1 = n > 1 ? LOAD(base + 8) : zero, x2 = n > 2 ? LOAD(base + 16) : zero;                       \
                __m256 x3 = n > 3 ? LOAD(base + 24) : zero;                                                           \
                _Pragma("clang loop unroll(full)") for (int h = 0; h < H; h++) {                                      \
                    __m256 w = _mm256_broadcast_ss(p + (size_t)h * context + j);                                      \
                    acc[h][0] = _mm256_fmadd_ps(w, x0, acc[h][0]);                                                    \
                    acc[h][1] = _mm256_fmadd_ps(w, x1, acc[h][1]);                                                    \
                    acc[h][2] = _mm256_fmadd_ps(w, x2, acc[h][2]);                                                    \
                    acc[h][3] = _mm256_fmadd_ps(w, x3, acc[h][3]);                                                    \
                }                                                                                                     \
            }                                                                                                         \
            _Pragma("clang loop unroll(full)") for (int h = 0; h < H; h++) {                                          \
                __m256 scale = _mm256_set1_ps(inverse[h]);                                                            \
                float *target = out + (size_t)h * head_dim + 8 * v;                                                   \
                for (int i = 0; i < n; i++) _mm256_storeu_ps(target + 8 * i, _mm256_mul_ps(acc[h][i], scale));        \
            }                                                                                                         \
        }                                                                                                             \
    }

#define R2EC_DECODE_ATTENTION256(NAME, T, LOAD)                                                                       \
    R2EC_SCORES256(NAME##_scores, T, LOAD)                                                                            \
    R2EC_WEIGHTED_SUM256(NAME##_sum1, T, LOAD, 1)                                                                     \
    R2EC_WEIGHTED_SUM256(NAME##_sum2, T, LOAD, 2)                                                                     \
    R2EC_AVX2 static void NAME(const float *q, int heads, const T *keys, const T *values, int stride, int context,    \
                               int head_dim, float scale, float *scores, float *out) {                                \
        int vectors = head_dim / 8;                                                                                   \
        NAME##_scores(q, heads, keys, values, stride, context, vectors, head_dim, scale, scores);                     \
        float inverse[heads];                                                                                         \
        for (int h = 0; h < heads; h++)                                                                               \
            inverse[h] = 1.0f / softmax_numerators256(scores + (size_t)h * context, context);                         \
        int h = 0;                                                                                                    \
        for (; h + 2 <= heads; h += 2)                                                                                \
            NAME##_sum2(scores + (size_t)h * context, values, stride, context, vectors, head_dim, inverse + h,        \
                        out + (size_t)h * head_dim);                                                                  \
        if (h < heads)                                                                                                \
            NAME##_sum1(scores + (size_t)h * context, values, stride, context, vectors, head_dim, inverse + h,        \
                        out + (size_t)h * head_dim);                                                                  \
    }

R2EC_DECODE_ATTENTION256(attention256_f32, float, R2EC_LOAD256_F32)
R2EC_DECODE_ATTENTION256(attention256_f16, uint16_t, R2EC_LOAD256_F16)

void r2ec_decode_attention(r2ec_isa isa, const float *q, int heads, const float *keys, const float *values, int stride,
                           int context, int head_dim, float scale, float *scores, float *out) {
    if (isa == R2EC_ISA_AVX512) attention512_f32(q, heads, keys, values, stride, context, head_dim, scale, scores, out);
    else if (isa == R2EC_ISA_AVX2) attention256_f32(q, heads, keys, values, stride, context, head_dim, scale, scores, out);
    else __builtin_trap();
}

void r2ec_decode_attention_f16(r2ec_isa isa, const float *q, int heads, const uint16_t *keys, const uint16_t *values,
                               int stride, int context, int head_dim, float scale, float *scores, float *out) {
    if (isa == R2EC_ISA_AVX512) attention512_f16(q, heads, keys, values, stride, context, head_dim, scale, scores, out);
    else if (isa == R2EC_ISA_AVX2) attention256_f16(q, heads, keys, values, stride, context, head_dim, scale, scores, out);
    else __builtin_trap();
}
#else
// Callers pass an instruction set the CPU has; there is none on this architecture.
void r2ec_decode_attention(r2ec_isa isa, const float *q, int heads, const float *keys, const float *values, int stride,
                           int context, int head_dim, float scale, float *scores, float *out) {
    __builtin_trap();
}
void r2ec_decode_attention_f16(r2ec_isa isa, const float *q, int heads, const uint16_t *keys, const uint16_t *values,
                               int stride, int context, int head_dim, float scale, float *scores, float *out) {
    __builtin_trap();
}
#endif
