// VectorMath: a SIMD16 dot product for the training kernels still in Swift (L2Normalize's backward).
import Tensor

typealias Vec = SIMD16<Float>

enum VectorMath {
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> Vec {
        UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
    }

    /// Σ a[i] b[i] over n floats, in float with 16 partial sums.
    @inline(__always) static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = Vec(repeating: 0)
        var i = 0
        while i + 16 <= n { acc += load(a + i) * load(b + i); i += 16 }
        var s = acc.sum()
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }
}
