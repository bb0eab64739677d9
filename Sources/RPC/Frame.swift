// The frame layer of docs/protocol.md: a 16-byte big-endian header (magic "R2EC", version, type, flags,
// stream id, length) followed by the payload.

public enum FrameType: UInt8, Sendable, CaseIterable {
    case call = 0x01, message = 0x02, trailer = 0x03, cancel = 0x04, ping = 0x05, pong = 0x06, goAway = 0x07
}

public struct FrameFlags: OptionSet, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// On a client MESSAGE: the last message of the call's request.
    public static let endStream = FrameFlags(rawValue: 0x0001)
}

public struct FrameHeader: Sendable, Equatable {
    public static let size = 16
    public static let magic: UInt32 = 0x5232_4543  // "R2EC"
    public static let version: UInt8 = 1
    /// Default payload limit: 4 MiB.
    public static let defaultMaxPayload = 4 << 20

    public var type: FrameType
    public var flags: FrameFlags
    public var streamId: UInt32
    public var length: UInt32

    public init(type: FrameType, flags: FrameFlags = [], streamId: UInt32, length: UInt32) {
        self.type = type
        self.flags = flags
        self.streamId = streamId
        self.length = length
    }

    /// Writes the 16 header bytes at `p`.
    public func write(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: FrameHeader.magic.bigEndian, toByteOffset: 0, as: UInt32.self)
        p.storeBytes(of: FrameHeader.version, toByteOffset: 4, as: UInt8.self)
        p.storeBytes(of: type.rawValue, toByteOffset: 5, as: UInt8.self)
        p.storeBytes(of: flags.rawValue.bigEndian, toByteOffset: 6, as: UInt16.self)
        p.storeBytes(of: streamId.bigEndian, toByteOffset: 8, as: UInt32.self)
        p.storeBytes(of: length.bigEndian, toByteOffset: 12, as: UInt32.self)
    }

    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: FrameHeader.size)
        out.withUnsafeMutableBytes { write(to: $0.baseAddress!) }
        return out
    }

    /// Parses and checks the 16 bytes at `p` (magic, version, type, length limit).
    public static func parse(_ p: UnsafeRawPointer, maxPayload: Int) throws(FrameError) -> FrameHeader {
        let magic = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        guard magic == FrameHeader.magic else { throw .badMagic(magic) }
        let version = p.load(fromByteOffset: 4, as: UInt8.self)
        guard version == FrameHeader.version else { throw .badVersion(version) }
        let rawType = p.load(fromByteOffset: 5, as: UInt8.self)
        guard let type = FrameType(rawValue: rawType) else { throw .unknownType(rawType) }
        let flags = FrameFlags(rawValue: UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 6, as: UInt16.self)))
        let stream = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        let length = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        guard Int(length) <= maxPayload else { throw .tooLarge(length: Int(length), limit: maxPayload) }
        return FrameHeader(type: type, flags: flags, streamId: stream, length: length)
    }
}

public struct Frame: Sendable, Equatable {
    public var header: FrameHeader
    public var payload: [UInt8]
    public init(header: FrameHeader, payload: [UInt8]) {
        self.header = header
        self.payload = payload
    }
}

/// Why a byte stream is not valid framing; each closes the connection with GOAWAY (docs/protocol.md).
public enum FrameError: Error, Equatable, CustomStringConvertible {
    /// The first four bytes of a header are not "R2EC".
    case badMagic(UInt32)
    /// A protocol version this server does not speak.
    case badVersion(UInt8)
    /// A frame type outside 0x01...0x07.
    case unknownType(UInt8)
    /// A payload length over the server's frame limit (refused before reading the payload).
    case tooLarge(length: Int, limit: Int)

    public var description: String {
        switch self {
        case .badMagic(let m):
            return "bad frame magic 0x\(String(m, radix: 16, uppercase: true)) (expected 0x52324543, \"R2EC\")"
        case .badVersion(let v): return "unsupported protocol version \(v) (this server speaks 1)"
        case .unknownType(let t): return "unknown frame type 0x\(String(t, radix: 16))"
        case .tooLarge(let l, let limit): return "frame payload of \(l) bytes exceeds the limit of \(limit) bytes"
        }
    }
}
