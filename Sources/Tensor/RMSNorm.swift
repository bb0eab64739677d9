// RMSNorm: out[rows, dim] = input * weight[dim] / sqrt(mean(input^2) + eps); optionally saves rstd[rows] for backward.
// out may alias input. Rows are spread over ThreadPool when the buffer is large; each slice runs CKernels'
// r2ec_rms_norm on the instruction set CPU.isa picks. Backward (Train) reads input, weight and the saved rstd.
import CKernels

public enum RMSNorm {
    /// out[rows, dim] = input[rows, dim] * rstd[r] * weight[dim], rstd[r] = 1/sqrt(mean_j input[r, j]^2 + eps).
    /// `rstd`, when given, receives the per-row factor (the llm.c cache the backward pass reads).
    public static func forward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, rows: Int, dim: Int, eps: Float = 1e-6,
                               rstd: UnsafeMutablePointer<Float>? = nil) {
        let isa = CPU.isa.c
        ThreadPool.shared.parallelSlices(rows, minimumPerSlice: max(1, 32_768 / max(dim, 1))) { slice in
            r2ec_rms_norm(isa, out + slice.lowerBound * dim, input + slice.lowerBound * dim, weight,
                          Int32(slice.count), Int32(dim), eps, rstd.map { $0 + slice.lowerBound })
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
