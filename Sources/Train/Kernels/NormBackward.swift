// Backward twins of RMSNorm and L2Normalize over [rows, dim]: dInput is written (or added to, when `accumulate`),
// dWeight[dim] is accumulated. They read what the forward passes saved: RMSNorm's per-row rstd, L2's output and norms.
// RMSNorm's runs CKernels' r2ec_rms_norm_backward on the instruction set Tensor.CPU picks.
import CKernels
import Tensor

extension RMSNorm {
    /// y = x * rstd * w with rstd = 1/sqrt(mean(x^2) + eps). For each row:
    /// dx = rstd * (w*dy) - rstd^3/dim * x * Σ(w*dy*x);  dWeight[j] += Σ_r dy[r,j] * x[r,j] * rstd[r].
    public static func backward(dInput: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>,
                                dOut: UnsafePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                rstd: UnsafePointer<Float>, rows: Int, dim: Int, accumulate: Bool) {
        // Each slice of rows adds its dWeight terms to its own zeroed partial, in row order; the partials are then
        // added to dWeight in slice order, so the result depends only on the slice count (the pool's thread count).
        let pool = ThreadPool.shared, isa = CPU.isa.c
        let slices = max(1, min(pool.threadCount, rows / max(1, 16_384 / max(dim, 1))))
        let partials = UnsafeMutablePointer<Float>.allocate(capacity: slices * dim)
        defer { partials.deallocate() }
        partials.initialize(repeating: 0, count: slices * dim)
        pool.parallelFor(slices) { s in
            let r0 = rows * s / slices, r1 = rows * (s + 1) / slices
            r2ec_rms_norm_backward(isa, dInput + r0 * dim, partials + s * dim, dOut + r0 * dim, input + r0 * dim,
                                   weight, rstd + r0, Int32(r1 - r0), Int32(dim), accumulate ? 1 : 0)
        }
        for s in 0..<slices {
            for j in 0..<dim { dWeight[j] += partials[s * dim + j] }
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
