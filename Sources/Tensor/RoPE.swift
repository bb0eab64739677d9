// RoPE: rotary position embedding in Qwen2/HF "rotate_half" form, in place on x[rows, heads, headDim] with a row
// stride (so q and k rotate inside a fused QKV buffer); each row has its own position, so ragged batches work.
// Backward (issue 5) is the same rotation by the negated angle (swap the sign of sin) applied to dX.
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
        precondition(table.headDim == headDim, "RoPE: table for headDim \(table.headDim), x has \(headDim)")
        let rowStride = rowStride ?? heads * headDim
        let half = headDim / 2
        ThreadPool.shared.parallelSlices(rows, minimumPerSlice: max(1, 16_384 / max(heads * headDim, 1))) { slice in
            for r in slice {
                let p = Int(positions[r])
                precondition(p >= 0 && p < table.maxPositions, "RoPE: position \(p) outside the table")
                let cosRow = table.cos.pointer + p * half, sinRow = table.sin.pointer + p * half
                for h in 0..<heads {
                    let first = x + r * rowStride + h * headDim, second = first + half
                    var i = 0
                    while i + vectorWidth <= half {
                        let a = loadVector(first + i), b = loadVector(second + i)
                        let c = loadVector(cosRow + i), s = loadVector(sinRow + i)
                        storeVector(a * c - b * s, first + i)
                        storeVector(b * c + a * s, second + i)
                        i += vectorWidth
                    }
                    while i < half {
                        let a = first[i], b = second[i], c = cosRow[i], s = sinRow[i]
                        first[i] = a * c - b * s
                        second[i] = b * c + a * s
                        i += 1
                    }
                }
            }
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
