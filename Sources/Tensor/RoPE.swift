// RoPE: rotary position embedding in Qwen2/HF "rotate_half" form, in place on x[rows, heads, headDim] with a row
// stride (so q and k rotate inside a fused QKV buffer); each row has its own position, so ragged batches work.
// Backward (Train) is the same rotation by the negated angle (the sign of sin swapped) applied to dX; both run
// CKernels' r2ec_rope on the instruction set CPU.isa picks.
import CKernels
import Foundation

/// cos and sin of position * theta^(-2i/headDim) for i in 0..<headDim/2, computed in double, stored [maxPositions, half].
public final class RoPETable: @unchecked Sendable {
    public let headDim: Int
    public let maxPositions: Int
    public let theta: Double
    public let cos: FloatBuffer
    public let sin: FloatBuffer

    /// theta is Qwen2's rope_theta (1e6 by default; Llama uses 1e4).
    public init(headDim: Int, maxPositions: Int, theta: Double = 1_000_000) {
        precondition(headDim > 0 && headDim % 2 == 0, "RoPETable: headDim \(headDim) must be even")
        self.headDim = headDim
        self.maxPositions = maxPositions
        self.theta = theta
        let half = headDim / 2
        cos = FloatBuffer(shape: [maxPositions, half])
        sin = FloatBuffer(shape: [maxPositions, half])
        for p in 0..<maxPositions {
            for i in 0..<half {
                let angle = Double(p) * RoPE.inverseFrequency(i, headDim: headDim, theta: theta)
                cos.data[p * half + i] = Float(Foundation.cos(angle))
                sin.data[p * half + i] = Float(Foundation.sin(angle))
            }
        }
    }
}

public enum RoPE {
    /// theta^(-2i/headDim): the rotation speed of pair (i, i + headDim/2).
    public static func inverseFrequency(_ i: Int, headDim: Int, theta: Double) -> Double {
        1 / pow(theta, Double(2 * i) / Double(headDim))
    }

    /// x[rows, heads, headDim] (row r starts at x + r * rowStride) rotated in place: for i < half,
    /// (x[i], x[i+half]) <- (x[i] cos - x[i+half] sin, x[i+half] cos + x[i] sin) at angle positions[r] * invFreq(i).
    public static func forward(x: UnsafeMutablePointer<Float>, positions: UnsafePointer<Int32>, rows: Int,
                               heads: Int, headDim: Int, rowStride: Int? = nil, table: RoPETable) {
        let rowStride = rowStride ?? heads * headDim
        rotate(x: x, positions: positions, rows: rows, heads: heads, headDim: headDim, rowStride: rowStride,
               table: table, direction: 1)
    }

    /// `forward` with the sine's sign `direction` (1 rotates, -1 applies the transpose), on CKernels' r2ec_rope.
    public static func rotate(x: UnsafeMutablePointer<Float>, positions: UnsafePointer<Int32>, rows: Int,
                              heads: Int, headDim: Int, rowStride: Int, table: RoPETable, direction: Float) {
        precondition(table.headDim == headDim, "RoPE: table for headDim \(table.headDim), x has \(headDim)")
        for r in 0..<rows {
            precondition(positions[r] >= 0 && Int(positions[r]) < table.maxPositions,
                         "RoPE: position \(positions[r]) outside the table")
        }
        let isa = CPU.isa.c
        ThreadPool.shared.parallelSlices(rows, minimumPerSlice: max(1, 16_384 / max(heads * headDim, 1))) { slice in
            r2ec_rope(isa, x + slice.lowerBound * rowStride, positions + slice.lowerBound, Int32(slice.count),
                      Int32(heads), Int32(headDim), rowStride, table.cos.pointer, table.sin.pointer, direction)
        }
    }

    /// The naive twin: angles computed directly in double, no table, one element pair at a time.
    public static func forwardNaive(x: UnsafeMutablePointer<Float>, positions: UnsafePointer<Int32>, rows: Int,
                                    heads: Int, headDim: Int, rowStride: Int? = nil, theta: Double = 1_000_000) {
        let rowStride = rowStride ?? heads * headDim
        let half = headDim / 2
        for r in 0..<rows {
            for h in 0..<heads {
                let base = x + r * rowStride + h * headDim
                for i in 0..<half {
                    let angle = Double(positions[r]) * inverseFrequency(i, headDim: headDim, theta: theta)
                    let c = Float(Foundation.cos(angle)), s = Float(Foundation.sin(angle))
                    let a = base[i], b = base[i + half]
                    base[i] = a * c - b * s
                    base[i + half] = b * c + a * s
                }
            }
        }
    }
}
