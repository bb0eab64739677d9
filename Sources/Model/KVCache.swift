// The key/value cache of one sequence: per layer, the rotated keys and the values of every token seen so far
// ([offset, kvHeads * headDim] each), so that decoding reads one new token per step after a single prefill.
// Stored as float32, or as float16 to halve the memory a decode step streams (batched decoding of long contexts
// is bound by reading the caches: 32 chains of 600 tokens hold about 19 MB per step for the default model).
// Not thread-safe: one sequence belongs to one caller at a time.
import Tensor

/// How a KV cache stores keys and values.
public enum KVPrecision: String, Sendable, CaseIterable, Codable {
    /// Exact: decoding equals full recomputation to float rounding.
    case float32
    /// IEEE binary16 (rounded to nearest even): half the memory and bandwidth, ~5e-4 relative error per element.
    case float16

    public var bytesPerElement: Int { self == .float32 ? 4 : 2 }
}

public final class KVCache: @unchecked Sendable {
    public let layerCount: Int
    /// Elements per token per layer in each of keys and values (kvHeads * headDim).
    public let width: Int
    public let precision: KVPrecision
    /// Tokens held (the position the next token will take).
    public private(set) var offset: Int = 0
    public private(set) var capacity: Int = 0
    private var keys: [UnsafeMutableRawPointer] = []
    private var values: [UnsafeMutableRawPointer] = []

    public init(configuration c: Qwen2Configuration, reservingCapacity initial: Int = 256,
                precision: KVPrecision = .float32) {
        layerCount = c.numHiddenLayers
        width = c.numKeyValueHeads * c.headDim
        self.precision = precision
        reserve(max(1, initial))
    }

    deinit {
        for p in keys { p.deallocate() }
        for p in values { p.deallocate() }
    }

    /// Bytes of one token's keys (or values) in one layer.
    var rowBytes: Int { width * precision.bytesPerElement }

    /// Bytes held by the storage (both keys and values, every layer, the whole capacity).
    public var byteCount: Int { 2 * layerCount * capacity * rowBytes }

    /// Grows the storage (keeping its contents) so that `tokens` fit.
    public func reserve(_ tokens: Int) {
        if tokens <= capacity { return }
        let newCapacity = max(tokens, capacity * 2)
        let rowBytes = self.rowBytes, held = offset
        func grow(_ old: [UnsafeMutableRawPointer]) -> [UnsafeMutableRawPointer] {
            (0..<layerCount).map { l in
                let p = UnsafeMutableRawPointer.allocate(byteCount: newCapacity * rowBytes, alignment: 64)
                if l < old.count { p.copyMemory(from: old[l], byteCount: held * rowBytes); old[l].deallocate() }
                return p
            }
        }
        keys = grow(keys)
        values = grow(values)
        capacity = newCapacity
    }

    /// Forgets every token from position `length` on (e.g. to reuse a shared prompt prefix).
    public func trim(to length: Int) {
        precondition(length >= 0 && length <= offset, "KVCache.trim: \(length) outside 0...\(offset)")
        offset = length
    }

    /// An independent cache holding the same tokens (to sample several chains from one prefilled prompt).
    public func copy() -> KVCache {
        let other = KVCache(layerCount: layerCount, width: width, precision: precision)
        other.reserve(max(1, offset))
        for l in 0..<layerCount {
            other.keys[l].copyMemory(from: keys[l], byteCount: offset * rowBytes)
            other.values[l].copyMemory(from: values[l], byteCount: offset * rowBytes)
        }
        other.offset = offset
        return other
    }

    private init(layerCount: Int, width: Int, precision: KVPrecision) {
        self.layerCount = layerCount
        self.width = width
        self.precision = precision
    }

    /// Keys of `layer`, [capacity, width] elements of `precision`; rows 0..<offset are valid, and the forward
    /// pass writes rows past it.
    func keys(_ layer: Int) -> UnsafeMutableRawPointer { keys[layer] }
    func values(_ layer: Int) -> UnsafeMutableRawPointer { values[layer] }

    /// Writes one token's keys and values (`width` floats each) at `position` of `layer`, converting to the
    /// cache's precision.
    func store(layer: Int, position: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        precondition(position < capacity)
        let k = keys[layer] + position * rowBytes, v = values[layer] + position * rowBytes
        switch precision {
        case .float32:
            k.copyMemory(from: key, byteCount: rowBytes)
            v.copyMemory(from: value, byteCount: rowBytes)
        case .float16:
            Half.convert(key, to: k.assumingMemoryBound(to: UInt16.self), count: width)
            Half.convert(value, to: v.assumingMemoryBound(to: UInt16.self), count: width)
        }
    }

    /// Marks `count` rows written past `offset` by every layer as held.
    func advance(by count: Int) {
        precondition(offset + count <= capacity)
        offset += count
    }
}
