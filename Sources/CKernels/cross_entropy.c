// Softmax cross-entropy rows (include/cross_entropy.h): the maximum, then e^{x - max} stored with its sum, then the
// scaling by w / sum; the loss from log-sum-exp, so a tiny probability costs no precision.
#include "cross_entropy.h"
#include <math.h>
#include "vector_exp.h"

static void row_portable(float *x, int n, int t, float w, double *loss) {
    float m = x[0];
    for (int j = 1; j < n; j++) m = x[j] > m ? x[j] : m;
    float target = x[t];
    double sum = 0;
    for (int j = 0; j < n; j++) { x[j] = expf(x[j] - m); sum += x[j]; }
    float scale = (float)(w / sum);
    for (int j = 0; j < n; j++) x[j] *= scale;
    x[t] -= w;
    *loss = w * (log(sum) + m - target);
}

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static void row512(float *x, int n, int t, float w, double *loss) {
    int body = n / 16 * 16;
    __mmask16 tail = (__mmask16)((1u << (n - body)) - 1);
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < body; j += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + j));
    if (tail) vmax = _mm512_mask_max_ps(vmax, tail, vmax, _mm512_maskz_loadu_ps(tail, x + body));
    float m = _mm512_reduce_max_ps(vmax), target = x[t];
    __m512 vm = _mm512_set1_ps(m), vsum = _mm512_setzero_ps();
    for (int j = 0; j < body; j += 16) {
        __m512 e = r2ec_exp512_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(x + j), vm));
        _mm512_storeu_ps(x + j, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    if (tail) {
        __m512 e = r2ec_exp512_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + body), vm));
        _mm512_mask_storeu_ps(x + body, tail, e);
        vsum = _mm512_mask_add_ps(vsum, tail, vsum, e);
    }
    double sum = _mm512_reduce_add_ps(vsum);
    __m512 scale = _mm512_set1_ps((float)(w / sum));
    for (int j = 0; j < body; j += 16) _mm512_storeu_ps(x + j, _mm512_mul_ps(_mm512_loadu_ps(x + j), scale));
    if (tail) _mm512_mask_storeu_ps(x + body, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, x + body), scale));
    x[t] -= w;
    *loss = w * (log(sum) + m - target);
}

__attribute__((target("avx2,fma"))) static void row256(float *x, int n, int t, float w, double *loss) {
    int body = n / 8 * 8;
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    for (int j = 0; j < body; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + j));
    float lanes[8];
    _mm256_storeu_ps(lanes, vmax);
    float m = lanes[0];
    for (int i = 1; i < 8; i++) m = lanes[i] > m ? lanes[i] : m;
    for (int j = body; j < n; j++) m = x[j] > m ? x[j] : m;
    float target = x[t];
    __m256 vm = _mm256_set1_ps(m), vsum = _mm256_setzero_ps();
    for (int j = 0; j < body; j += 8) {
        __m256 e = r2ec_exp256_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm));
        _mm256_storeu_ps(x + j, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    _mm256_storeu_ps(lanes, vsum);
    double sum = 0;
    for (int i = 0; i < 8; i++) sum += lanes[i];
    for (int j = body; j < n; j++) { x[j] = expf(x[j] - m); sum += x[j]; }
    float s = (float)(w / sum);
    __m256 scale = _mm256_set1_ps(s);
    for (int j = 0; j < body; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), scale));
    for (int j = body; j < n; j++) x[j] *= s;
    x[t] -= w;
    *loss = w * (log(sum) + m - target);
}
#endif

void r2ec_softmax_cross_entropy(r2ec_isa isa, float *x, int rows, int cols, long ld, const int32_t *targets,
                                const float *weights, double *loss) {
    for (int r = 0; r < rows; r++) {
        float *row = x + r * ld;
#if defined(__x86_64__)
        if (isa == R2EC_ISA_AVX512) { row512(row, cols, targets[r], weights[r], loss + r); continue; }
        if (isa == R2EC_ISA_AVX2) { row256(row, cols, targets[r], weights[r], loss + r); continue; }
#endif
        row_portable(row, cols, targets[r], weights[r], loss + r);
    }
}
