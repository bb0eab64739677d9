// The row-wise and element-wise kernels between the GEMMs of a forward or training pass: RMSNorm and its backward,
// SwiGLU (fused gate|up rows) and its backward, rotary embedding (and its transpose), softmax rows (full, masked,
// causal), and AdamW with the global gradient norm. Each is written once over 16-float vectors and compiled for AVX-512, AVX2+FMA and the baseline
// (vector16.h); `isa` picks the variant (at most r2ec_cpu_isa()). Callers split rows over threads.
#ifndef R2EC_ELEMENTWISE_H
#define R2EC_ELEMENTWISE_H
#include <stdint.h>
#include "cpu.h"

#ifdef __cplusplus
extern "C" {
#endif

/// out[r, :] = x[r, :] · rstd_r · w, rstd_r = 1 / sqrt(mean_j x[r, j]^2 + eps), rows `dim` floats apart; rstd[r]
/// receives rstd_r when rstd is not NULL. out may alias x.
void r2ec_rms_norm(r2ec_isa isa, float *out, const float *x, const float *w, int rows, int dim, float eps,
                   float *rstd);

/// The backward of r2ec_rms_norm over rows: dx = rstd · (w ⊙ dy) − rstd³/dim · x · Σ_j(w ⊙ dy ⊙ x) (written, or added
/// when `accumulate`), and dw_partial[j] += Σ_r dy[r, j] · x[r, j] · rstd_r over these rows (in row order).
void r2ec_rms_norm_backward(r2ec_isa isa, float *dx, float *dw_partial, const float *dy, const float *x,
                            const float *w, const float *rstd, int rows, int dim, int accumulate);

/// out[r, j] = silu(gate[r, j]) · up[r, j] for j < ffn (silu(g) = g / (1 + e^-g)); gate and up rows start every
/// gate_stride / up_stride floats, out rows every ffn. out may alias gate or up when their stride is ffn.
void r2ec_swiglu(r2ec_isa isa, float *out, const float *gate, long gate_stride, const float *up, long up_stride,
                 int rows, int ffn);

/// The backward of the fused form (gate_up rows [gate | up], 2 ffn floats): with s = sigmoid(g),
/// dgate = dy · u · s · (1 + g (1 − s)), dup = dy · g · s, written to dgate_up[r] = [dgate | dup].
void r2ec_swiglu_backward(r2ec_isa isa, float *dgate_up, const float *dy, const float *gate_up, int rows, int ffn);

/// Rotary embedding in place on x[rows, heads, head_dim] (row r at x + r · row_stride): for i < half = head_dim / 2 at
/// angle θ = positions[r] · invfreq(i), (a, b) = (x[i], x[i + half]) <- (a cos θ − b s, b cos θ + a s) with
/// s = direction · sin θ: direction 1 rotates (forward), −1 applies the transpose (backward). cos and sin are
/// tables [positions, half] (the caller checks positions against them).
void r2ec_rope(r2ec_isa isa, float *x, const int32_t *positions, int rows, int heads, int head_dim, long row_stride,
               const float *cos_table, const float *sin_table, float direction);

/// Row r of y [rows, cols] = softmax(scale · x_r) over its first v_r = clamp(first_valid + r · valid_step, 0, cols)
/// entries, then zeros (a row with v_r = 0 is all zeros): valid_step 0 with first_valid = cols is a full softmax,
/// valid_step 1 with first_valid = offset + 1 the causal rows of queries at positions offset, offset + 1, ...
/// The maximum of scale · x is subtracted first. y may alias x.
void r2ec_softmax(r2ec_isa isa, float *y, const float *x, int rows, int cols, int first_valid, int valid_step,
                  float scale);

/// The softmax backward in place over r2ec_softmax's rows: with p_r the probabilities and g_r = dL/dp_r (in dp),
/// dp_r[j] <- p_r[j] · (g_r[j] − Σ_k p_r[k] g_r[k]) over the row's v_r valid entries (as r2ec_softmax counts them),
/// and 0 beyond: the gradient with respect to the softmax's (scaled) input.
void r2ec_softmax_backward(r2ec_isa isa, float *dp, const float *p, int rows, int cols, int first_valid,
                           int valid_step);

/// Σ x[i]² over n floats, the products and sum in double precision.
double r2ec_sum_squares(r2ec_isa isa, const float *x, long n);

/// One AdamW step's constants (AdamW.swift): the gradient is scaled by `clip` first; corrections are 1 − β^t.
typedef struct {
    float clip, beta1, beta2, correction1, correction2, lr, epsilon, weight_decay;
} r2ec_adamw_step;

/// For i < n, with g = grad[i] · clip: m = β1 m + (1 − β1) g, v = β2 v + (1 − β2) g², and
/// p −= lr · ((m / c1) / (sqrt(v / c2) + ε) + wd · p).
void r2ec_adamw(r2ec_isa isa, float *p, const float *grad, float *m, float *v, long n, const r2ec_adamw_step *step);

#ifdef __cplusplus
}
#endif
#endif
