// VectorMath: a SIMD16 exp and sigmoid for the training kernels (SwiGLU backward, cross-entropy), and the
// load/store helpers they share. Inputs are clamped to [-87.3, 88.7]: exp underflows to 0, never to NaN.

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

    /// e^x lane by lane: x = k ln2 + r, a degree-6 polynomial for e^r, 2^k through the exponent bits. Rounding to
    /// k adds and subtracts 1.5 * 2^23 (k then sits in the low mantissa bits), so no lane-by-lane conversions run.
    @inline(__always) static func exp(_ input: Vec) -> Vec {
        let low = input .< -87.3
        var x = input.replacing(with: 88.7, where: input .> 88.7)
        x = x.replacing(with: -87.3, where: low)
        let magic: Float = 12_582_912
        let shifted = x * 1.442_695_04 + magic
        let k = shifted - magic
        let kBits = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- Int32(bitPattern: magic.bitPattern)
        let r = x - k * 0.693_359_375 + k * 2.121_944_4e-4
        var p = Vec(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_6e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_1e-1
        p = p * (r * r) + r + 1
        return (p * unsafeBitCast((kBits &+ 127) &<< 23, to: Vec.self)).replacing(with: 0, where: low)
    }

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
