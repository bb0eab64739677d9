// Softmax: out[rows, cols] = softmax(scale * input) per row, numerically stable (max subtracted), SIMD exp;
// masked variants normalise row r over its first lengths[r] columns and write 0 to the rest (causal, padding).
// Rows run CKernels' r2ec_softmax. Backward (Train) needs only the probabilities: dX = scale * P * (dP - rowsum(dP * P)).
import CKernels
import Foundation

public enum Softmax {
    /// out[rows, cols] = exp(scale*x - max) / sum over each row. out may alias input.
    public static func forward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                               rows: Int, cols: Int, scale: Float = 1) {
        run(out: out, input: input, rows: rows, cols: cols, firstValid: cols, validStep: 0, scale: scale)
    }

    /// out[rows, cols]: row r is the softmax of its first lengths[r] entries (scaled), then zeros.
    /// A row with length 0 is all zeros.
    public static func forwardMasked(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                     lengths: UnsafePointer<Int32>, rows: Int, cols: Int, scale: Float = 1) {
        let isa = CPU.isa.c
        ThreadPool.shared.parallelSlices(rows, minimumPerSlice: max(1, 16_384 / max(cols, 1))) { slice in
            for r in slice {
                let valid = Int(lengths[r])
                precondition(valid >= 0 && valid <= cols, "Softmax: length \(valid) outside 0...\(cols)")
                r2ec_softmax(isa, out + r * cols, input + r * cols, 1, Int32(cols), Int32(valid), 0, scale)
            }
        }
    }

    /// Causal attention probabilities: rows are queries at positions offset, offset+1, ...; query r sees keys
    /// 0...offset+r (cols keys in all, e.g. a KV cache of `offset` earlier tokens plus this chunk's `rows`).
    public static func forwardCausal(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                     rows: Int, cols: Int, offset: Int, scale: Float = 1) {
        run(out: out, input: input, rows: rows, cols: cols, firstValid: offset + 1, validStep: 1, scale: scale)
    }

    /// Rows split over the pool, row r valid over its first clamp(firstValid + r validStep, 0, cols) columns
    /// (CKernels' r2ec_softmax on the instruction set CPU.isa picks).
    static func run(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, rows: Int, cols: Int,
                    firstValid: Int, validStep: Int, scale: Float) {
        let isa = CPU.isa.c
        ThreadPool.shared.parallelSlices(rows, minimumPerSlice: max(1, 16_384 / max(cols, 1))) { slice in
            let r0 = slice.lowerBound
            let first = min(max(firstValid + r0 * validStep, Int(Int32.min)), Int(Int32.max))
            r2ec_softmax(isa, out + r0 * cols, input + r0 * cols, Int32(slice.count), Int32(cols), Int32(first),
                         Int32(validStep), scale)
        }
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
