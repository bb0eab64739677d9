// RMSNorm: out[rows, dim] = input * weight[dim] / sqrt(mean(input^2) + eps); optionally saves rstd[rows] for backward.
// out may alias input. Rows are spread over ThreadPool when the buffer is large.
// Backward (issue 5) reads input, weight and the saved rstd; it accumulates dWeight across rows.

public enum RMSNorm {
    /// out[rows, dim] = input[rows, dim] * rstd[r] * weight[dim], rstd[r] = 1/sqrt(mean_j input[r, j]^2 + eps).
    /// `rstd`, when given, receives the per-row factor (the llm.c cache the backward pass reads).
    public static func forward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, rows: Int, dim: Int, eps: Float = 1e-6,
                               rstd: UnsafeMutablePointer<Float>? = nil) {
        let rstdOut = rstd
        ThreadPool.shared.parallelSlices(rows, minimumPerSlice: max(1, 32_768 / max(dim, 1))) { slice in
            for r in slice {
                let x = input + r * dim, y = out + r * dim
                let vectorEnd = dim & ~(vectorWidth - 1)
                var acc = FloatVector(repeating: 0)
                var j = 0
                while j < vectorEnd { let v = loadVector(x + j); acc += v * v; j += vectorWidth }
                let tail = loadPartial(x + vectorEnd, dim - vectorEnd)
                acc += tail * tail
                let factor = 1 / (horizontalSum(acc) / Float(dim) + eps).squareRoot()
                rstdOut?[r] = factor
                j = 0
                while j < vectorEnd { storeVector(loadVector(x + j) * factor * loadVector(weight + j), y + j); j += vectorWidth }
                let w = loadPartial(weight + vectorEnd, dim - vectorEnd)
                storePartial(tail * factor * w, y + vectorEnd, dim - vectorEnd)
            }
        }
    }

    /// The naive twin: scalar loops in double precision for the mean square.
    public static func forwardNaive(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                    weight: UnsafePointer<Float>, rows: Int, dim: Int, eps: Float = 1e-6,
                                    rstd: UnsafeMutablePointer<Float>? = nil) {
        for r in 0..<rows {
            var sumSquares = 0.0
            for j in 0..<dim { sumSquares += Double(input[r * dim + j]) * Double(input[r * dim + j]) }
            let factor = Float(1 / (sumSquares / Double(dim) + Double(eps)).squareRoot())
            rstd?[r] = factor
            for j in 0..<dim { out[r * dim + j] = input[r * dim + j] * factor * weight[j] }
        }
    }
}
