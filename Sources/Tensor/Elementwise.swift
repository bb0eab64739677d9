// Elementwise: residual add (out = a + b) and scale (out = s * x) over flat buffers, SIMD and split over the pool.
// out may alias either input; these are memory-bound, so they only go parallel on buffers of ~64K floats or more.

public enum Residual {
    /// out[count] = a[count] + b[count] (the residual stream update x += sublayer(x) when out == a).
    public static func forward(out: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                               count: Int) {
        Elementwise.map2(out, a, b, count) { $0 + $1 }
    }

    /// The naive twin.
    public static func forwardNaive(out: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>,
                                    b: UnsafePointer<Float>, count: Int) {
        for j in 0..<count { out[j] = a[j] + b[j] }
    }
}

public enum Scale {
    /// out[count] = scale * input[count].
    public static func forward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, scale: Float,
                               count: Int) {
        Elementwise.map1(out, input, count) { $0 * scale }
    }

    /// The naive twin.
    public static func forwardNaive(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, scale: Float,
                                    count: Int) {
        for j in 0..<count { out[j] = scale * input[j] }
    }
}

enum Elementwise {
    /// Vectors per slice before a flat loop is split across threads (64K floats with 16-float vectors).
    static let vectorsPerSlice = 4096

    @inline(__always)
    static func map1(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ count: Int,
                     _ f: (FloatVector) -> FloatVector) {
        ThreadPool.shared.parallelSlices((count + vectorWidth - 1) / vectorWidth, minimumPerSlice: vectorsPerSlice) { slice in
            let start = slice.lowerBound * vectorWidth, end = min(count, slice.upperBound * vectorWidth)
            var j = start
            while j + vectorWidth <= end { storeVector(f(loadVector(x + j)), out + j); j += vectorWidth }
            if j < end { storePartial(f(loadPartial(x + j, end - j)), out + j, end - j) }
        }
    }

    @inline(__always)
    static func map2(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                     _ count: Int, _ f: (FloatVector, FloatVector) -> FloatVector) {
        ThreadPool.shared.parallelSlices((count + vectorWidth - 1) / vectorWidth, minimumPerSlice: vectorsPerSlice) { slice in
            let start = slice.lowerBound * vectorWidth, end = min(count, slice.upperBound * vectorWidth)
            var j = start
            while j + vectorWidth <= end { storeVector(f(loadVector(a + j), loadVector(b + j)), out + j); j += vectorWidth }
            if j < end {
                storePartial(f(loadPartial(a + j, end - j), loadPartial(b + j, end - j)), out + j, end - j)
            }
        }
    }
}
