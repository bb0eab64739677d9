// FNV-1a, 64-bit: the project's one content fingerprint (datasets, item prompts, weights, training inputs, the random
// baseline's per-history seed). Not cryptographic: it tells equal inputs from changed ones.
public struct FNV1a {
    public var value: UInt64 = 0xCBF2_9CE4_8422_2325

    @inlinable public init() {}

    /// One step over `v` taken whole (the weights' hashes take eight bytes per step).
    @inlinable public mutating func mix(_ v: UInt64) { value = (value ^ v) &* 0x0000_0100_0000_01B3 }

    @inlinable public mutating func bytes<S: Sequence>(_ s: S) where S.Element == UInt8 { for b in s { mix(UInt64(b)) } }

    /// `raw` eight bytes per step (whole little-endian words), the tail byte by byte: how weights and item tables
    /// are hashed, fast enough for hundreds of megabytes.
    @inlinable public mutating func words(_ raw: UnsafeRawBufferPointer) {
        let words = raw.count / 8
        for i in 0..<words { mix(raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) }
        bytes(raw[(8 * words)...])
    }

    /// The eight bytes of `v`, least significant first.
    @inlinable public mutating func word(_ v: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { mix((v >> UInt64(shift)) & 0xFF) }
    }

    /// 16 hex digits, zero-padded.
    public var hex16: String {
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
