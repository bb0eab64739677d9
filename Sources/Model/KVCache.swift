// The key/value cache of one sequence: per layer, the rotated keys and the values of every token seen so far
// ([offset, kvHeads * headDim] each), so that decoding reads one new token per step after a single prefill.
// Not thread-safe: one sequence belongs to one caller at a time.

public final class KVCache: @unchecked Sendable {
    public let layerCount: Int
    /// Floats per token per layer in each of keys and values (kvHeads * headDim).
    public let width: Int
    /// Tokens held (the position the next token will take).
    public private(set) var offset: Int = 0
    public private(set) var capacity: Int = 0
    private var keys: [UnsafeMutablePointer<Float>] = []
    private var values: [UnsafeMutablePointer<Float>] = []

    public init(configuration c: Qwen2Configuration, reservingCapacity initial: Int = 256) {
        layerCount = c.numHiddenLayers
        width = c.numKeyValueHeads * c.headDim
        reserve(max(1, initial))
    }

    deinit {
        for p in keys { p.deallocate() }
        for p in values { p.deallocate() }
    }

    /// Grows the storage (keeping its contents) so that `tokens` fit.
    public func reserve(_ tokens: Int) {
        if tokens <= capacity { return }
        let newCapacity = max(tokens, capacity * 2)
        func grow(_ old: [UnsafeMutablePointer<Float>]) -> [UnsafeMutablePointer<Float>] {
            (0..<layerCount).map { l in
                let p = UnsafeMutablePointer<Float>.allocate(capacity: newCapacity * width)
                if l < old.count { p.update(from: old[l], count: offset * width); old[l].deallocate() }
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
        let other = KVCache(layerCount: layerCount, width: width)
        other.reserve(max(1, offset))
        for l in 0..<layerCount {
            other.keys[l].update(from: keys[l], count: offset * width)
            other.values[l].update(from: values[l], count: offset * width)
        }
        other.offset = offset
        return other
    }

    private init(layerCount: Int, width: Int) {
        self.layerCount = layerCount
        self.width = width
    }

    /// Keys of `layer`, [capacity, width]; rows 0..<offset are valid, and the forward pass writes rows past it.
    func keys(_ layer: Int) -> UnsafeMutablePointer<Float> { keys[layer] }
    func values(_ layer: Int) -> UnsafeMutablePointer<Float> { values[layer] }

    /// Marks `count` rows written past `offset` by every layer as held.
    func advance(by count: Int) {
        precondition(offset + count <= capacity)
        offset += count
    }
}
