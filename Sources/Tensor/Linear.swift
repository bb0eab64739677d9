// Linear: out[rows, outDim] = input[rows, inDim] · weight[outDim, inDim]^T (+ bias[outDim]), Hugging Face layout.
// The llm.c matmul_forward; backward (issue 5) will be the two GEMMs dInput = dOut·W and dW += dOut^T·input.

public enum Linear {
    /// out[rows, outDim] = input[rows, inDim] · weight[outDim, inDim]^T + bias[outDim].
    /// Several projections that read the same input (q, k, v; gate, up) should be one Linear over their
    /// weights stacked along outDim: one wide GEMM runs closer to peak than three narrow ones.
    public static func forward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               rows: Int, inDim: Int, outDim: Int) {
        if let bias {
            for r in 0..<rows { (out + r * outDim).update(from: bias, count: outDim) }
        }
        GEMM.forward(m: rows, n: outDim, k: inDim, a: input, b: weight, transB: true, c: out,
                     beta: bias == nil ? 0 : 1)
    }

    /// The naive twin: dot products row by row.
    public static func forwardNaive(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                    weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                    rows: Int, inDim: Int, outDim: Int) {
        for r in 0..<rows {
            for o in 0..<outDim {
                var sum: Float = bias?[o] ?? 0
                for i in 0..<inDim { sum += input[r * inDim + i] * weight[o * inDim + i] }
                out[r * outDim + o] = sum
            }
        }
    }
}
