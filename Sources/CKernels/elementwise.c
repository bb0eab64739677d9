// Row-wise and element-wise kernels (include/elementwise.h), each body written once over 16-float vectors and
// compiled per instruction set by R2EC_PER_ISA (vector16.h); tails shorter than 16 floats run scalar.
#include "elementwise.h"
#include <math.h>
#include "vector16.h"

R2EC_PER_ISA(static void, rms_norm_rows,
             (float *out, const float *x, const float *w, int rows, int dim, float eps, float *rstd), {
    int body = dim / 16 * 16;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * dim;
        float *yr = out + (long)r * dim;
        r2ec_v16 acc = r2ec_splat16(0);
        for (int j = 0; j < body; j += 16) {
            r2ec_v16 v = r2ec_load16(xr + j);
            acc += v * v;
        }
        float s = r2ec_sum16(acc);
        for (int j = body; j < dim; j++) s += xr[j] * xr[j];
        float f = 1 / sqrtf(s / (float)dim + eps);
        if (rstd) rstd[r] = f;
        for (int j = 0; j < body; j += 16) r2ec_store16(yr + j, r2ec_load16(xr + j) * f * r2ec_load16(w + j));
        for (int j = body; j < dim; j++) yr[j] = xr[j] * f * w[j];
    }
})

void r2ec_rms_norm(r2ec_isa isa, float *out, const float *x, const float *w, int rows, int dim, float eps,
                   float *rstd) {
    R2EC_DISPATCH(isa, rms_norm_rows, (out, x, w, rows, dim, eps, rstd));
}

R2EC_PER_ISA(static void, rms_norm_backward_rows,
             (float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd, int rows,
              int dim, int accumulate), {
    int body = dim / 16 * 16;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * dim, *dyr = dy + (long)r * dim;
        float *dxr = dx + (long)r * dim;
        float a = rstd[r];
        r2ec_v16 acc = r2ec_splat16(0);
        for (int j = 0; j < body; j += 16) {
            r2ec_v16 d = r2ec_load16(dyr + j), xv = r2ec_load16(xr + j);
            acc += r2ec_load16(w + j) * d * xv;
            r2ec_store16(dw + j, r2ec_load16(dw + j) + d * xv * a);
        }
        float s = r2ec_sum16(acc);
        for (int j = body; j < dim; j++) {
            s += w[j] * dyr[j] * xr[j];
            dw[j] += dyr[j] * xr[j] * a;
        }
        float c = a * a * a * s / (float)dim;
        if (accumulate) {
            for (int j = 0; j < body; j += 16) {
                r2ec_v16 g = a * r2ec_load16(w + j) * r2ec_load16(dyr + j) - c * r2ec_load16(xr + j);
                r2ec_store16(dxr + j, r2ec_load16(dxr + j) + g);
            }
            for (int j = body; j < dim; j++) dxr[j] += a * w[j] * dyr[j] - c * xr[j];
        } else {
            for (int j = 0; j < body; j += 16)
                r2ec_store16(dxr + j, a * r2ec_load16(w + j) * r2ec_load16(dyr + j) - c * r2ec_load16(xr + j));
            for (int j = body; j < dim; j++) dxr[j] = a * w[j] * dyr[j] - c * xr[j];
        }
    }
})

void r2ec_rms_norm_backward(r2ec_isa isa, float *dx, float *dw_partial, const float *dy, const float *x,
                            const float *w, const float *rstd, int rows, int dim, int accumulate) {
    R2EC_DISPATCH(isa, rms_norm_backward_rows, (dx, dw_partial, dy, x, w, rstd, rows, dim, accumulate));
}

R2EC_PER_ISA(static void, swiglu_rows,
             (float *out, const float *gate, long gate_stride, const float *up, long up_stride, int rows, int ffn), {
    int body = ffn / 16 * 16;
    for (int r = 0; r < rows; r++) {
        const float *g = gate + r * gate_stride, *u = up + r * up_stride;
        float *y = out + (long)r * ffn;
        for (int j = 0; j < body; j += 16) {
            r2ec_v16 gv = r2ec_load16(g + j);
            r2ec_store16(y + j, gv / (1 + r2ec_exp16(-gv)) * r2ec_load16(u + j));
        }
        for (int j = body; j < ffn; j++) y[j] = g[j] / (1 + expf(-g[j])) * u[j];
    }
})

void r2ec_swiglu(r2ec_isa isa, float *out, const float *gate, long gate_stride, const float *up, long up_stride,
                 int rows, int ffn) {
    R2EC_DISPATCH(isa, swiglu_rows, (out, gate, gate_stride, up, up_stride, rows, ffn));
}

R2EC_PER_ISA(static void, swiglu_backward_rows,
             (float *dgate_up, const float *dy, const float *gate_up, int rows, int ffn), {
    int body = ffn / 16 * 16;
    for (int r = 0; r < rows; r++) {
        const float *g = gate_up + (long)r * 2 * ffn, *u = g + ffn, *dyr = dy + (long)r * ffn;
        float *dg = dgate_up + (long)r * 2 * ffn, *du = dg + ffn;
        for (int j = 0; j < body; j += 16) {
            r2ec_v16 gv = r2ec_load16(g + j), uv = r2ec_load16(u + j), d = r2ec_load16(dyr + j);
            r2ec_v16 s = r2ec_sigmoid16(gv);
            r2ec_store16(dg + j, d * uv * s * (1 + gv * (1 - s)));
            r2ec_store16(du + j, d * gv * s);
        }
        for (int j = body; j < ffn; j++) {
            float s = 1 / (1 + expf(-g[j]));
            dg[j] = dyr[j] * u[j] * s * (1 + g[j] * (1 - s));
            du[j] = dyr[j] * g[j] * s;
        }
    }
})

void r2ec_swiglu_backward(r2ec_isa isa, float *dgate_up, const float *dy, const float *gate_up, int rows, int ffn) {
    R2EC_DISPATCH(isa, swiglu_backward_rows, (dgate_up, dy, gate_up, rows, ffn));
}

R2EC_PER_ISA(static void, rope_rows,
             (float *x, const int32_t *positions, int rows, int heads, int head_dim, long row_stride,
              const float *cos_table, const float *sin_table, float direction), {
    int half = head_dim / 2, body = half / 16 * 16;
    for (int r = 0; r < rows; r++) {
        const float *c = cos_table + (long)positions[r] * half, *s = sin_table + (long)positions[r] * half;
        for (int h = 0; h < heads; h++) {
            float *first = x + r * row_stride + (long)h * head_dim, *second = first + half;
            for (int i = 0; i < body; i += 16) {
                r2ec_v16 a = r2ec_load16(first + i), b = r2ec_load16(second + i);
                r2ec_v16 cv = r2ec_load16(c + i), sv = direction * r2ec_load16(s + i);
                r2ec_store16(first + i, a * cv - b * sv);
                r2ec_store16(second + i, b * cv + a * sv);
            }
            for (int i = body; i < half; i++) {
                float a = first[i], b = second[i], sv = direction * s[i];
                first[i] = a * c[i] - b * sv;
                second[i] = b * c[i] + a * sv;
            }
        }
    }
})

void r2ec_rope(r2ec_isa isa, float *x, const int32_t *positions, int rows, int heads, int head_dim, long row_stride,
               const float *cos_table, const float *sin_table, float direction) {
    R2EC_DISPATCH(isa, rope_rows, (x, positions, rows, heads, head_dim, row_stride, cos_table, sin_table, direction));
}

// Row r's leading columns that take part: first_valid + r * valid_step, clamped to 0...cols (a causal mask: step 1).
static inline int valid_columns(int r, int cols, int first_valid, int valid_step) {
    long wanted = (long)first_valid + (long)r * valid_step;
    return wanted < 0 ? 0 : wanted > cols ? cols : (int)wanted;
}

R2EC_PER_ISA(static void, softmax_rows,
             (float *y, const float *x, int rows, int cols, int first_valid, int valid_step, float scale), {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * cols;
        float *yr = y + (long)r * cols;
        int valid = valid_columns(r, cols, first_valid, valid_step);
        int body = valid / 16 * 16;
        float m = -INFINITY;
        if (body > 0) {
            r2ec_v16 vm = r2ec_load16(xr) * scale;
            for (int j = 16; j < body; j += 16) {
                r2ec_v16 v = r2ec_load16(xr + j) * scale;
                vm = r2ec_select16(v > vm, v, vm);
            }
            for (int i = 0; i < 16; i++) m = vm[i] > m ? vm[i] : m;
        }
        for (int j = body; j < valid; j++) m = scale * xr[j] > m ? scale * xr[j] : m;
        r2ec_v16 sums = r2ec_splat16(0);
        for (int j = 0; j < body; j += 16) {
            r2ec_v16 e = r2ec_exp16(r2ec_load16(xr + j) * scale - m);
            r2ec_store16(yr + j, e);
            sums += e;
        }
        float sum = r2ec_sum16(sums);
        for (int j = body; j < valid; j++) {
            yr[j] = expf(scale * xr[j] - m);
            sum += yr[j];
        }
        float inverse = valid > 0 ? 1 / sum : 0;
        for (int j = 0; j < body; j += 16) r2ec_store16(yr + j, r2ec_load16(yr + j) * inverse);
        for (int j = body; j < valid; j++) yr[j] *= inverse;
        for (int j = valid; j < cols; j++) yr[j] = 0;
    }
})

void r2ec_softmax(r2ec_isa isa, float *y, const float *x, int rows, int cols, int first_valid, int valid_step,
                  float scale) {
    R2EC_DISPATCH(isa, softmax_rows, (y, x, rows, cols, first_valid, valid_step, scale));
}

R2EC_PER_ISA(static void, softmax_backward_rows,
             (float *dp, const float *p, int rows, int cols, int first_valid, int valid_step), {
    for (int r = 0; r < rows; r++) {
        const float *pr = p + (long)r * cols;
        float *dr = dp + (long)r * cols;
        int valid = valid_columns(r, cols, first_valid, valid_step);
        int body = valid / 16 * 16;
        r2ec_v16 acc = r2ec_splat16(0);
        for (int j = 0; j < body; j += 16) acc += r2ec_load16(pr + j) * r2ec_load16(dr + j);
        float sum = r2ec_sum16(acc);
        for (int j = body; j < valid; j++) sum += pr[j] * dr[j];
        for (int j = 0; j < body; j += 16) r2ec_store16(dr + j, r2ec_load16(pr + j) * (r2ec_load16(dr + j) - sum));
        for (int j = body; j < valid; j++) dr[j] = pr[j] * (dr[j] - sum);
        for (int j = valid; j < cols; j++) dr[j] = 0;
    }
})

void r2ec_softmax_backward(r2ec_isa isa, float *dp, const float *p, int rows, int cols, int first_valid,
                           int valid_step) {
    R2EC_DISPATCH(isa, softmax_backward_rows, (dp, p, rows, cols, first_valid, valid_step));
}

R2EC_PER_ISA(static void, sum_squares_all, (const float *x, long n, double *out), {
    long body = n / 16 * 16;
    r2ec_d8 acc0 = (r2ec_d8)(0.0), acc1 = (r2ec_d8)(0.0);
    for (long i = 0; i < body; i += 16) {
        r2ec_v16 v = r2ec_load16(x + i);
        r2ec_d8 lo = __builtin_convertvector(v.lo, r2ec_d8), hi = __builtin_convertvector(v.hi, r2ec_d8);
        acc0 += lo * lo;
        acc1 += hi * hi;
    }
    r2ec_d8 acc = acc0 + acc1;
    double s = 0;
    for (int i = 0; i < 8; i++) s += acc[i];
    for (long i = body; i < n; i++) s += (double)x[i] * (double)x[i];
    *out = s;
})

double r2ec_sum_squares(r2ec_isa isa, const float *x, long n) {
    double s = 0;
    R2EC_DISPATCH(isa, sum_squares_all, (x, n, &s));
    return s;
}

R2EC_PER_ISA(static void, adamw_all,
             (float *p, const float *grad, float *m, float *v, long n, const r2ec_adamw_step *k), {
    const float clip = k->clip, b1 = k->beta1, b2 = k->beta2, c1 = k->correction1, c2 = k->correction2;
    const float lr = k->lr, eps = k->epsilon, wd = k->weight_decay;
    long body = n / 16 * 16;
    for (long i = 0; i < body; i += 16) {
        r2ec_v16 g = r2ec_load16(grad + i) * clip;
        r2ec_v16 mv = b1 * r2ec_load16(m + i) + (1 - b1) * g;
        r2ec_v16 vv = b2 * r2ec_load16(v + i) + (1 - b2) * g * g;
        r2ec_store16(m + i, mv);
        r2ec_store16(v + i, vv);
        r2ec_v16 pv = r2ec_load16(p + i);
        r2ec_store16(p + i, pv - lr * ((mv / c1) / (__builtin_elementwise_sqrt(vv / c2) + eps) + wd * pv));
    }
    for (long i = body; i < n; i++) {
        float g = grad[i] * clip;
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        p[i] -= lr * ((m[i] / c1) / (sqrtf(v[i] / c2) + eps) + wd * p[i]);
    }
})

void r2ec_adamw(r2ec_isa isa, float *p, const float *grad, float *m, float *v, long n, const r2ec_adamw_step *step) {
    R2EC_DISPATCH(isa, adamw_all, (p, grad, m, v, n, step));
}
