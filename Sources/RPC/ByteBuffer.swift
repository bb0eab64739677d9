// A growable byte buffer with a read cursor: readers consume from the front, writers append at the back, and
// compact() moves the unread bytes to the start once per batch (redis-style), not once per message.

public final class ByteBuffer {
    public private(set) var base: UnsafeMutablePointer<UInt8>
    public private(set) var capacity: Int
    public private(set) var readIndex = 0
    public private(set) var writeIndex = 0

    public init(capacity: Int = 64 << 10) {
        self.capacity = max(capacity, 64)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    public var readable: Int { writeIndex - readIndex }
    public var readPointer: UnsafeMutablePointer<UInt8> { base + readIndex }

    public func consume(_ n: Int) {
        precondition(n <= readable)
        readIndex += n
        if readIndex == writeIndex { readIndex = 0; writeIndex = 0 }
    }

    /// Moves unread bytes to the front.
    public func compact() {
        guard readIndex > 0 else { return }
        let n = readable
        if n > 0 { (base).update(from: base + readIndex, count: n) }
        readIndex = 0
        writeIndex = n
    }

    /// Room for at least `n` more bytes at the back (compacting or growing); returns where to write.
    public func reserve(_ n: Int) -> UnsafeMutablePointer<UInt8> {
        if capacity - writeIndex < n { compact() }
        if capacity - writeIndex < n {
            var newCapacity = capacity
            while newCapacity - writeIndex < n { newCapacity *= 2 }
            let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
            grown.update(from: base, count: writeIndex)
            base.deallocate()
            base = grown
            capacity = newCapacity
        }
        return base + writeIndex
    }

    public var writableCount: Int { capacity - writeIndex }

    /// Marks `n` bytes written after a reserve().
    public func commit(_ n: Int) {
        precondition(writeIndex + n <= capacity)
        writeIndex += n
    }

    public func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        let p = reserve(bytes.count)
        UnsafeMutableRawPointer(p).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        commit(bytes.count)
    }

    public func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    /// Shrinks a buffer that grew for one large burst back to `capacity` once it is empty.
    public func shrinkIfIdle(to target: Int) {
        guard readable == 0, capacity > target * 4 else { return }
        base.deallocate()
        capacity = target
        base = .allocate(capacity: target)
        readIndex = 0
        writeIndex = 0
    }
}
