// Incremental frame decoder, a two-state machine (waiting for a header / waiting for a payload of length N).
// It peeks before it consumes, and refuses an over-limit length on the header alone, before any allocation.

public struct FrameDecoder {
    private enum State {
        case header
        case payload(FrameHeader)
    }

    public let maxPayload: Int
    private var state = State.header

    public init(maxPayload: Int = FrameHeader.defaultMaxPayload) { self.maxPayload = maxPayload }

    /// True while part of a frame has been read (a disconnect now truncates it).
    public var isMidFrame: Bool { if case .payload = state { return true } else { return false } }

    /// The next complete frame in `buffer`, consuming it, or nil when more bytes are needed.
    public mutating func next(from buffer: ByteBuffer) throws(FrameError) -> Frame? {
        if case .header = state {
            guard buffer.readable >= FrameHeader.size else { return nil }
            let header = try FrameHeader.parse(buffer.readPointer, maxPayload: maxPayload)
            buffer.consume(FrameHeader.size)
            state = .payload(header)
        }
        guard case .payload(let header) = state else { return nil }
        let n = Int(header.length)
        guard buffer.readable >= n else { return nil }
        let payload = [UInt8](UnsafeBufferPointer(start: buffer.readPointer, count: n))
        buffer.consume(n)
        state = .header
        return Frame(header: header, payload: payload)
    }

    /// How many more bytes the current frame needs (0 when waiting for a header).
    public func pendingPayload(in buffer: ByteBuffer) -> Int {
        if case .payload(let h) = state { return max(0, Int(h.length) - buffer.readable) }
        return max(0, FrameHeader.size - buffer.readable)
    }
}

extension Frame {
    /// Header and payload as one byte array (clients and tests).
    public var bytes: [UInt8] {
        var h = header
        h.length = UInt32(payload.count)
        return h.bytes + payload
    }
}
