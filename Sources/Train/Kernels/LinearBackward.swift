// Backward twin of Linear (Hugging Face layout, weight [outDim, inDim]): two GEMMs and a column sum.
// dInput = dOut · W (written or added), dWeight += dOut^T · input, dBias += Σ_rows dOut.
import Tensor

extension Linear {
    /// dOut[rows, outDim], input[rows, inDim], weight[outDim, inDim]. dInput may be nil (the embedding's input).
    public static func backward(dInput: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>,
                                dBias: UnsafeMutablePointer<Float>?, dOut: UnsafePointer<Float>,
                                input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                rows: Int, inDim: Int, outDim: Int, accumulateInput: Bool = false) {
        if let dInput {
            GEMM.forward(m: rows, n: inDim, k: outDim, a: dOut, b: weight, c: dInput, beta: accumulateInput ? 1 : 0)
        }
        GEMM.forward(m: outDim, n: inDim, k: rows, a: dOut, transA: true, b: input, c: dWeight, beta: 1)
        if let dBias {
            ThreadPool.shared.parallelSlices(outDim, minimumPerSlice: 64) { columns in
                for r in 0..<rows {
                    let row = dOut + r * outDim
                    for j in columns { dBias[j] += row[j] }
                }
            }
        }
    }
}
