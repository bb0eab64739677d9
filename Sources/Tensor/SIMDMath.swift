// SIMDMath: unaligned 16-float loads/stores, partial (tail) loads/stores, and a vector exp (Cephes-style, ~2 ulp).
// Shared by the elementwise kernels; everything here is @inline(__always) so it specialises into their loops.

/// The SIMD width the kernels use: 16 floats, one AVX-512 register (two AVX or four SSE registers otherwise).
public typealias FloatVector = SIMD16<Float>

/// Floats per FloatVector; loops step by it and handle the last `count % vectorWidth` floats as a partial vector.
@inline(__always) var vectorWidth: Int { FloatVector.scalarCount }

@inline(__always) func loadVector(_ p: UnsafePointer<Float>) -> FloatVector {
    UnsafeRawPointer(p).loadUnaligned(as: FloatVector.self)
}

@inline(__always) func loadVector(_ p: UnsafeMutablePointer<Float>) -> FloatVector {
    UnsafeRawPointer(p).loadUnaligned(as: FloatVector.self)
}

@inline(__always) func storeVector(_ v: FloatVector, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: FloatVector.self)
}

/// The first `count` (< 16) floats at p, the other lanes `fill`: lets a loop's tail run the body's vector code.
/// One memcpy into a stack vector; inserting lanes one by one costs far more.
@inline(__always) func loadPartial(_ p: UnsafePointer<Float>, _ count: Int, fill: Float = 0) -> FloatVector {
    var v = FloatVector(repeating: fill)
    withUnsafeMutableBytes(of: &v) { $0.baseAddress!.copyMemory(from: p, byteCount: count * 4) }
    return v
}

@inline(__always) func storePartial(_ v: FloatVector, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
    withUnsafeBytes(of: v) { UnsafeMutableRawPointer(p).copyMemory(from: $0.baseAddress!, byteCount: count * 4) }
}

/// The sum of the lanes by halving (the standard library's sum() walks the lanes one at a time through memory).
@inline(__always) func horizontalSum(_ v: FloatVector) -> Float {
    let eight = v.lowHalf + v.highHalf
    let four = eight.lowHalf + eight.highHalf
    let two = four.lowHalf + four.highHalf
    return two[0] + two[1]
}

/// e^x lane by lane: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n through the exponent bits.
/// Inputs above 88.7 are clamped (e^88.7 is near Float.greatestFiniteMagnitude); below -87.3 the result is 0
/// (true value < 1.2e-38, the smallest normal float), so e^-inf = 0 as masked attention scores need.
@inlinable @inline(__always) public func vectorExp(_ input: FloatVector) -> FloatVector {
    let underflow = input .< -87.3
    var x = input.replacing(with: 88.7, where: input .> 88.7)
    x = x.replacing(with: -87.3, where: underflow)
    // Adding 1.5 * 2^23 rounds x*log2(e) to the nearest integer n and leaves n in the low mantissa bits.
    let magic: Float = 12_582_912
    let shifted = x * 1.442_695_04 + magic
    let n = shifted - magic
    let nBits = unsafeBitCast(shifted, to: FloatVector.MaskStorage.self) &- Int32(bitPattern: magic.bitPattern)
    // Two-part ln2 (Cody-Waite) keeps r exact to float precision.
    let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4
    var p = FloatVector(repeating: 1.987_569_15e-4)
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_6e-2
    p = p * r + 1.666_666_55e-1
    p = p * r + 5.000_000_1e-1
    p = p * (r * r) + r + 1
    return (p * unsafeBitCast((nBits &+ 127) &<< 23, to: FloatVector.self)).replacing(with: 0, where: underflow)
}
