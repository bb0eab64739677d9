// FloatBuffer: an owning, contiguous, 64-byte-aligned Float32 buffer with a row-major shape.
// Kernels never take a FloatBuffer: they take its `data` pointer and explicit dimensions (llm.c style).

/// Owns `count` floats laid out row-major for `shape`; freed when the last reference goes.
/// Not thread-safe by itself: callers partition the rows they write (see `ThreadPool`).
public final class FloatBuffer: @unchecked Sendable {
    /// Alignment of every allocation in bytes: one cache line, and one AVX-512 vector.
    public static let alignment = 64

    public let shape: [Int]
    public let count: Int
    public let data: UnsafeMutablePointer<Float>

    /// A zero-filled buffer of `shape` (every dimension >= 0).
    public init(shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "FloatBuffer: negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(count, 1) * MemoryLayout<Float>.stride,
                                                   alignment: FloatBuffer.alignment)
        data = raw.bindMemory(to: Float.self, capacity: Swift.max(count, 1))
        data.initialize(repeating: 0, count: count)
    }

    /// A buffer of `shape` holding `values` (row-major; `values.count` must equal the shape's product).
    public convenience init(shape: [Int], values: [Float]) {
        self.init(shape: shape)
        precondition(values.count == count, "FloatBuffer: \(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    /// A buffer of `shape` whose element at flat index i is `value(i)`.
    public convenience init(shape: [Int], _ value: (Int) -> Float) {
        self.init(shape: shape)
        for i in 0..<count { data[i] = value(i) }
    }

    deinit { UnsafeMutableRawPointer(data).deallocate() }

    /// Read-only view of the data, for kernel inputs.
    @inlinable public var pointer: UnsafePointer<Float> { UnsafePointer(data) }

    @inlinable public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }

    /// Elements per index of the first dimension (a "row" of a [rows, ...] buffer).
    @inlinable public var rowCount: Int { shape.isEmpty ? 1 : shape[0] }
    @inlinable public var rowLength: Int { shape.isEmpty || shape[0] == 0 ? count : count / shape[0] }

    /// Pointer to row `r` of the first dimension.
    @inlinable public func row(_ r: Int) -> UnsafeMutablePointer<Float> {
        precondition(r >= 0 && r < rowCount, "FloatBuffer.row: \(r) out of 0..<\(rowCount)")
        return data + r * rowLength
    }

    @inlinable public subscript(i: Int) -> Float {
        get { precondition(i >= 0 && i < count); return data[i] }
        set { precondition(i >= 0 && i < count); data[i] = newValue }
    }

    public func toArray() -> [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    public func fill(_ value: Float) { data.update(repeating: value, count: count) }

    /// Copies all of `other` (same element count) into this buffer.
    public func copy(from other: FloatBuffer) {
        precondition(other.count == count, "FloatBuffer.copy: \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }
}
