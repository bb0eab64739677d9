// Backward twins of SwiGLU (fused gate|up rows), rotary embedding and the embedding gather.
// SwiGLU: from the saved gate|up buffer; RoPE: the inverse rotation applied to the gradient; Embedding: scatter-add.
import Tensor

extension SwiGLU {
    /// y[rows, ffn] = silu(g) * u with g|u = gateUp[r, 0..<ffn | ffn..<2ffn]:
    /// dg = dy * u * s * (1 + g * (1 - s)), du = dy * g * s (s = sigmoid(g)), written to dGateUp[rows, 2ffn].
    public static func backwardFused(dGateUp: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                                     gateUp: UnsafePointer<Float>, rows: Int, ffn: Int) {
        ThreadPool.shared.parallelSlices(rows, minimumPerSlice: max(1, 8192 / max(ffn, 1))) { slice in
            for r in slice {
                let g = gateUp + r * 2 * ffn, u = g + ffn, dy = dOut + r * ffn
                let dg = dGateUp + r * 2 * ffn, du = dg + ffn
                var j = 0
                while j + 16 <= ffn {
                    let gv = VectorMath.load(g + j), uv = VectorMath.load(u + j), dyv = VectorMath.load(dy + j)
                    let s = VectorMath.sigmoid(gv)
                    VectorMath.store(dyv * uv * s * (1 + gv * (1 - s)), dg + j)
                    VectorMath.store(dyv * gv * s, du + j)
                    j += 16
                }
                while j < ffn {
                    let s = 1 / (1 + _exp(-g[j]))
                    dg[j] = dy[j] * u[j] * s * (1 + g[j] * (1 - s))
                    du[j] = dy[j] * g[j] * s
                    j += 1
                }
            }
        }
    }

    @inline(__always) static func _exp(_ x: Float) -> Float { VectorMath.exp(Vec(repeating: x))[0] }
}

extension RoPE {
    /// The transpose of `forward` (rotation by the negated angle), in place on dx[rows, heads, headDim] with a row
    /// stride: (da, db) <- (da cos + db sin, db cos - da sin).
    public static func backward(dx: UnsafeMutablePointer<Float>, positions: UnsafePointer<Int32>, rows: Int,
                                heads: Int, headDim: Int, rowStride: Int, table: RoPETable) {
        let half = headDim / 2
        ThreadPool.shared.parallelSlices(rows, minimumPerSlice: max(1, 8192 / max(heads * headDim, 1))) { slice in
            for r in slice {
                let p = Int(positions[r])
                let cosRow = table.cos.pointer + p * half, sinRow = table.sin.pointer + p * half
                for h in 0..<heads {
                    let first = dx + r * rowStride + h * headDim, second = first + half
                    for i in 0..<half {
                        let a = first[i], b = second[i], c = cosRow[i], s = sinRow[i]
                        first[i] = a * c + b * s
                        second[i] = b * c - a * s
                    }
                }
            }
        }
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
