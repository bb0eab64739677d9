// Backward twins of SwiGLU (fused gate|up rows), rotary embedding and the embedding gather.
// SwiGLU: from the saved gate|up buffer; RoPE: the inverse rotation applied to the gradient (both CKernels', on the
// instruction set Tensor.CPU picks); Embedding: scatter-add.
import CKernels
import Tensor

extension SwiGLU {
    /// y[rows, ffn] = silu(g) * u with g|u = gateUp[r, 0..<ffn | ffn..<2ffn]:
    /// dg = dy * u * s * (1 + g * (1 - s)), du = dy * g * s (s = sigmoid(g)), written to dGateUp[rows, 2ffn].
    public static func backwardFused(dGateUp: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                                     gateUp: UnsafePointer<Float>, rows: Int, ffn: Int) {
        let isa = CPU.isa.c
        ThreadPool.shared.parallelSlices(rows, minimumPerSlice: max(1, 8192 / max(ffn, 1))) { slice in
            let r0 = slice.lowerBound
            r2ec_swiglu_backward(isa, dGateUp + r0 * 2 * ffn, dOut + r0 * ffn, gateUp + r0 * 2 * ffn,
                                 Int32(slice.count), Int32(ffn))
        }
    }
}

extension RoPE {
    /// The transpose of `forward` (rotation by the negated angle), in place on dx[rows, heads, headDim] with a row
    /// stride: (da, db) <- (da cos + db sin, db cos - da sin).
    public static func backward(dx: UnsafeMutablePointer<Float>, positions: UnsafePointer<Int32>, rows: Int,
                                heads: Int, headDim: Int, rowStride: Int, table: RoPETable) {
        rotate(x: dx, positions: positions, rows: rows, heads: heads, headDim: headDim, rowStride: rowStride,
               table: table, direction: -1)
    }
}

extension Embedding {
    /// dTable[ids[r], :] += dOut[r, :] for every row (serial, so rows sharing an id add up deterministically).
    public static func backward(dTable: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                                ids: UnsafePointer<Int32>, rows: Int, dim: Int) {
        for r in 0..<rows {
            let target = dTable + Int(ids[r]) * dim, source = dOut + r * dim
            for j in 0..<dim { target[j] += source[j] }
        }
    }
}
