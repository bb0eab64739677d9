// The LM head's loss and its gradient in one kernel: per row of logits, softmax cross-entropy against a target token
// with a weight, the logits overwritten in place by the gradient. Three passes over a row (max; exponentials and
// their sum; scaling), vectorised per instruction set, where a separate softmax, loss and scaling took six.
#ifndef R2EC_CROSS_ENTROPY_H
#define R2EC_CROSS_ENTROPY_H
#include <stdint.h>
#include "cpu.h"

#ifdef __cplusplus
extern "C" {
#endif

/// For each row r < rows of x [rows, cols] (row stride ld), with target t = targets[r] (0 <= t < cols) and weight
/// w = weights[r]: loss[r] = w · (log Σ_j e^{x_j} − x_t) (as a double), and x_r is replaced by
/// w · (softmax(x_r) − onehot(t)), the gradient of that loss with respect to the logits.
void r2ec_softmax_cross_entropy(r2ec_isa isa, float *x, int rows, int cols, long ld, const int32_t *targets,
                                const float *weights, double *loss);

#ifdef __cplusplus
}
#endif
#endif
