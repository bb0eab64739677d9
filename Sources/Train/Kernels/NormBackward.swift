// Backward twins of RMSNorm and L2Normalize over [rows, dim]: dInput is written (or added to, when `accumulate`),
// dWeight[dim] is accumulated. They read what the forward passes saved: RMSNorm's per-row rstd, L2's output and norms.
import Tensor

extension RMSNorm {
    /// y = x * rstd * w with rstd = 1/sqrt(mean(x^2) + eps). For each row:
    /// dx = rstd * (w*dy) - rstd^3/dim * x * Σ(w*dy*x);  dWeight[j] += Σ_r dy[r,j] * x[r,j] * rstd[r].
    public static func backward(dInput: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>,
                                dOut: UnsafePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                rstd: UnsafePointer<Float>, rows: Int, dim: Int, accumulate: Bool) {
        let pool = ThreadPool.shared
        pool.parallelSlices(rows, minimumPerSlice: max(1, 16_384 / max(dim, 1))) { slice in
            for r in slice {
                let x = input + r * dim, dy = dOut + r * dim, dx = dInput + r * dim
                var s: Float = 0
                for j in 0..<dim { s += weight[j] * dy[j] * x[j] }
                let a = rstd[r], c = a * a * a * s / Float(dim)
                if accumulate {
                    for j in 0..<dim { dx[j] += a * weight[j] * dy[j] - c * x[j] }
                } else {
                    for j in 0..<dim { dx[j] = a * weight[j] * dy[j] - c * x[j] }
                }
            }
        }
        // Weight gradient: columns split across threads, rows summed in order (deterministic).
        pool.parallelSlices(dim, minimumPerSlice: 16) { columns in
            for r in 0..<rows {
                let x = input + r * dim, dy = dOut + r * dim, a = rstd[r]
                for j in columns { dWeight[j] += dy[j] * x[j] * a }
            }
        }
    }
}

extension L2Normalize {
    /// y = x / max(||x||, eps): dx = (dy - y * (y·dy)) / max(||x||, eps), from the output y and the saved norms.
    public static func backward(dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                                output: UnsafePointer<Float>, norms: UnsafePointer<Float>, rows: Int, dim: Int,
                                eps: Float = 1e-12, accumulate: Bool) {
        for r in 0..<rows {
            let y = output + r * dim, dy = dOut + r * dim, dx = dInput + r * dim
            let projection = VectorMath.dot(y, dy, dim)
            let inverse = 1 / max(norms[r], eps)
            if accumulate {
                for j in 0..<dim { dx[j] += (dy[j] - y[j] * projection) * inverse }
            } else {
                for j in 0..<dim { dx[j] = (dy[j] - y[j] * projection) * inverse }
            }
        }
    }
}
