// Softmax: out[rows, cols] = softmax(scale * input) per row, numerically stable (max subtracted), SIMD exp;
// masked variants normalise row r over its first lengths[r] columns and write 0 to the rest (causal, padding).
// Backward (issue 5) needs only the probabilities: dX = scale * P * (dP - rowsum(dP * P)).
import Foundation

public enum Softmax {
    /// out[rows, cols] = exp(scale*x - max) / sum over each row. out may alias input.
    public static func forward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                               rows: Int, cols: Int, scale: Float = 1) {
        ThreadPool.shared.parallelSlices(rows, minimumPerSlice: max(1, 16_384 / max(cols, 1))) { slice in
            for r in slice { row(out + r * cols, input + r * cols, valid: cols, cols: cols, scale: scale) }
        }
    }

    /// out[rows, cols]: row r is the softmax of its first lengths[r] entries (scaled), then zeros.
    /// A row with length 0 is all zeros.
    public static func forwardMasked(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                     lengths: UnsafePointer<Int32>, rows: Int, cols: Int, scale: Float = 1) {
        ThreadPool.shared.parallelSlices(rows, minimumPerSlice: max(1, 16_384 / max(cols, 1))) { slice in
            for r in slice {
                let valid = Int(lengths[r])
                precondition(valid >= 0 && valid <= cols, "Softmax: length \(valid) outside 0...\(cols)")
                row(out + r * cols, input + r * cols, valid: valid, cols: cols, scale: scale)
            }
        }
    }

    /// Causal attention probabilities: rows are queries at positions offset, offset+1, ...; query r sees keys
    /// 0...offset+r (cols keys in all, e.g. a KV cache of `offset` earlier tokens plus this chunk's `rows`).
    public static func forwardCausal(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                     rows: Int, cols: Int, offset: Int, scale: Float = 1) {
        ThreadPool.shared.parallelSlices(rows, minimumPerSlice: max(1, 16_384 / max(cols, 1))) { slice in
            for r in slice {
                let valid = min(cols, max(0, offset + r + 1))
                row(out + r * cols, input + r * cols, valid: valid, cols: cols, scale: scale)
            }
        }
    }

    @inline(__always)
    static func row(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, valid: Int, cols: Int,
                    scale: Float) {
        if valid == 0 { y.update(repeating: 0, count: cols); return }
        let vectorEnd = valid & ~(vectorWidth - 1), tailCount = valid - vectorEnd
        var maxima = FloatVector(repeating: -.infinity)
        var j = 0
        while j < vectorEnd { maxima = lanewiseMax(maxima, loadVector(x + j)); j += vectorWidth }
        maxima = lanewiseMax(maxima, loadPartial(x + vectorEnd, tailCount, fill: -.infinity))
        // max(scale*x) = scale*max(x) only for scale >= 0; attention scales are positive, others take the slow path.
        let maxScaled = scale >= 0 ? scale * horizontalMax(maxima) : scaledMaximum(x, valid, scale)
        var sums = FloatVector(repeating: 0)
        j = 0
        while j < vectorEnd {
            let e = vectorExp(loadVector(x + j) * scale - maxScaled)
            storeVector(e, y + j); sums += e; j += vectorWidth
        }
        var sum = horizontalSum(sums)
        if tailCount > 0 {
            // The tail's padding lanes hold exp(-max), not 0: store the real lanes, then add them one by one.
            storePartial(vectorExp(loadPartial(x + vectorEnd, tailCount) * scale - maxScaled), y + vectorEnd, tailCount)
            for t in vectorEnd..<valid { sum += y[t] }
        }
        let inverse = 1 / sum
        j = 0
        while j < vectorEnd { storeVector(loadVector(y + j) * inverse, y + j); j += vectorWidth }
        for t in vectorEnd..<valid { y[t] *= inverse }
        if valid < cols { (y + valid).update(repeating: 0, count: cols - valid) }
    }

    private static func scaledMaximum(_ x: UnsafePointer<Float>, _ count: Int, _ scale: Float) -> Float {
        var m = -Float.infinity
        for j in 0..<count { m = max(m, scale * x[j]) }
        return m
    }

    /// The naive twin of `forward`: scalar loops with Foundation's exp, double-precision sum.
    public static func forwardNaive(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                    rows: Int, cols: Int, scale: Float = 1) {
        for r in 0..<rows { naiveRow(out + r * cols, input + r * cols, valid: cols, cols: cols, scale: scale) }
    }

    /// The naive twin of `forwardMasked`.
    public static func forwardMaskedNaive(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                          lengths: UnsafePointer<Int32>, rows: Int, cols: Int, scale: Float = 1) {
        for r in 0..<rows {
            naiveRow(out + r * cols, input + r * cols, valid: Int(lengths[r]), cols: cols, scale: scale)
        }
    }

    /// The naive twin of `forwardCausal`.
    public static func forwardCausalNaive(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                          rows: Int, cols: Int, offset: Int, scale: Float = 1) {
        for r in 0..<rows {
            naiveRow(out + r * cols, input + r * cols, valid: min(cols, max(0, offset + r + 1)), cols: cols,
                     scale: scale)
        }
    }

    private static func naiveRow(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, valid: Int,
                                 cols: Int, scale: Float) {
        var m = -Float.infinity
        for j in 0..<valid { m = max(m, scale * x[j]) }
        var sum = 0.0
        for j in 0..<valid { let e = Foundation.exp(scale * x[j] - m); y[j] = e; sum += Double(e) }
        for j in 0..<valid { y[j] = Float(Double(y[j]) / sum) }
        for j in valid..<cols { y[j] = 0 }
    }
}
