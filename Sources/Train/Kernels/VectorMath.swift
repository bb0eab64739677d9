// VectorMath: the SIMD16 exp (Tensor's) and a sigmoid for the training kernels (SwiGLU backward, cross-entropy), and the
// load/store helpers they share. Inputs are clamped to [-87.3, 88.7]: exp underflows to 0, never to NaN.

import Tensor

typealias Vec = SIMD16<Float>

enum VectorMath {
    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> Vec {
        UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
    }
    @inline(__always) static func load(_ p: UnsafeMutablePointer<Float>) -> Vec {
        UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
    }
    @inline(__always) static func store(_ v: Vec, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self)
    }

    /// e^x lane by lane: Tensor's vectorized exp (inputs clamped; underflow gives 0, never NaN).
    @inline(__always) static func exp(_ input: Vec) -> Vec { vectorExp(input) }

    @inline(__always) static func sigmoid(_ x: Vec) -> Vec { 1 / (1 + exp(-x)) }

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
