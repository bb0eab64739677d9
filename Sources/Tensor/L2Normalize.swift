// L2Normalize: out[rows, dim] = input / max(||input row||, eps), as torch.nn.functional.normalize; optionally saves
// the row norms for backward. The recommendation head normalises hidden states and item vectors with it.
// Backward (issue 5) reads the output and the saved norms: dX = (dY - Y * rowsum(dY * Y)) / norm.
import Foundation

public enum L2Normalize {
    /// out[rows, dim] = input[r] / max(||input[r]||_2, eps); `norms[rows]`, when given, receives ||input[r]||.
    public static func forward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, rows: Int, dim: Int,
                               eps: Float = 1e-12, norms: UnsafeMutablePointer<Float>? = nil) {
        let normsOut = norms
        ThreadPool.shared.parallelSlices(rows, minimumPerSlice: max(1, 32_768 / max(dim, 1))) { slice in
            for r in slice {
                let x = input + r * dim, y = out + r * dim
                let vectorEnd = dim & ~(vectorWidth - 1)
                var acc = FloatVector(repeating: 0)
                var j = 0
                while j < vectorEnd { let v = loadVector(x + j); acc += v * v; j += vectorWidth }
                let tail = loadPartial(x + vectorEnd, dim - vectorEnd)
                acc += tail * tail
                let norm = horizontalSum(acc).squareRoot()
                normsOut?[r] = norm
                let inverse = 1 / max(norm, eps)
                j = 0
                while j < vectorEnd { storeVector(loadVector(x + j) * inverse, y + j); j += vectorWidth }
                storePartial(tail * inverse, y + vectorEnd, dim - vectorEnd)
            }
        }
    }

    /// The naive twin: double-precision norm, scalar loops.
    public static func forwardNaive(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, rows: Int,
                                    dim: Int, eps: Float = 1e-12, norms: UnsafeMutablePointer<Float>? = nil) {
        for r in 0..<rows {
            var sumSquares = 0.0
            for j in 0..<dim { sumSquares += Double(input[r * dim + j]) * Double(input[r * dim + j]) }
            let norm = Float(sumSquares.squareRoot())
            norms?[r] = norm
            let denominator = max(norm, eps)
            for j in 0..<dim { out[r * dim + j] = input[r * dim + j] / denominator }
        }
    }
}
