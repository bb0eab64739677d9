// A small blocking client of the r2ec protocol over a POSIX socket: one call at a time or many pipelined.
// Used by `r2ec call`, the tests and the benchmarks' set-up; the Python package is the full-featured client.
import Foundation
import R2ecProtoC
import Serving

public final class Client {
    public let host: String
    public let port: Int
    private var fd: Int32 = -1
    private let input = ByteBuffer()
    private var decoder: FrameDecoder
    private var nextStream: UInt32 = 1

    public init(host: String = "127.0.0.1", port: Int, maxPayload: Int = 64 << 20) throws {
        self.host = host
        self.port = port
        self.decoder = FrameDecoder(maxPayload: maxPayload)
        try connect()
    }

    deinit { if fd >= 0 { Foundation.close(fd) } }

    private func connect() throws {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &res) == 0, let ai = res else {
            throw ClientError.connect("cannot resolve \(host)")
        }
        defer { freeaddrinfo(res) }
        fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
        guard fd >= 0, Foundation.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else {
            throw ClientError.connect("cannot connect to \(host):\(port): \(String(cString: strerror(errno)))")
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Sends raw bytes (tests use it for malformed traffic).
    public func sendRaw(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ClientError.closed("send failed: \(String(cString: strerror(errno)))") }
            off += n
        }
    }

    /// The socket, for tests that speak other protocols over it.
    public var rawDescriptor: Int32 { fd }

    /// Closes the socket (both directions).
    public func close() {
        if fd >= 0 { Foundation.close(fd) }
        fd = -1
    }

    /// Half-closes the write side.
    public func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// The next frame from the server, or nil at end of stream.
    public func readFrame(timeout: Double = 30) throws -> Frame? {
        while true {
            if let f = try decoder.next(from: input) { return f }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(timeout * 1000))
            guard ready > 0 else { throw ClientError.timeout }
            let p = input.reserve(64 << 10)
            let n = recv(fd, p, input.writableCount, 0)
            if n == 0 { return nil }
            guard n > 0 else { throw ClientError.closed(String(cString: strerror(errno))) }
            input.commit(n)
        }
    }

    /// Opens a call: CALL + MESSAGE(END_STREAM). Returns its stream id.
    @discardableResult
    public func start(_ method: String, _ request: [UInt8], timeoutMs: Int64 = 0,
                      metadata: [(String, String)] = []) throws -> UInt32 {
        let id = nextStream
        nextStream += 1
        let header = Client.callHeader(method: method, timeoutMs: timeoutMs, metadata: metadata)
        try sendRaw(Frame(header: FrameHeader(type: .call, streamId: id, length: 0), payload: header).bytes
            + Frame(header: FrameHeader(type: .message, flags: .endStream, streamId: id, length: 0), payload: request).bytes)
        return id
    }

    /// A unary call: the response payload, or the non-OK status as an error.
    public func call(_ method: String, _ request: [UInt8], timeoutMs: Int64 = 0,
                     metadata: [(String, String)] = []) throws -> [UInt8] {
        let id = try start(method, request, timeoutMs: timeoutMs, metadata: metadata)
        var response: [UInt8] = []
        while let f = try readFrame() {
            guard f.header.streamId == id else { continue }
            switch f.header.type {
            case .message: response = f.payload
            case .trailer:
                let status = try Client.decodeStatus(f.payload)
                if status.code != .ok { throw ClientError.status(status) }
                return response
            default: continue
            }
        }
        throw ClientError.closed("connection closed before the call's trailer")
    }

    public static func callHeader(method: String, timeoutMs: Int64, metadata: [(String, String)]) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__CallHeader.self, r2ec__v1__call_header__init)
        m.pointee.method = arena.string(method)
        m.pointee.timeout_ms = timeoutMs
        let list = arena.array(UnsafeMutablePointer<R2ec__V1__MetadataEntry>?.self, count: metadata.count)
        for (i, (k, v)) in metadata.enumerated() {
            let e = arena.message(R2ec__V1__MetadataEntry.self, r2ec__v1__metadata_entry__init)
            e.pointee.key = arena.string(k)
            e.pointee.value = arena.string(v)
            list[i] = e
        }
        m.pointee.n_metadata = metadata.count
        m.pointee.metadata = list
        return packMessage(m)
    }

    /// The last_stream_id of a GOAWAY payload (0 when it does not decode).
    public static func goAwayLastStreamId(_ payload: [UInt8]) -> UInt32 {
        guard let g = payload.withUnsafeBufferPointer({ r2ec__v1__go_away__unpack(nil, $0.count, $0.baseAddress) }) else { return 0 }
        defer { r2ec__v1__go_away__free_unpacked(g, nil) }
        return g.pointee.last_stream_id
    }

    public static func decodeStatus(_ payload: [UInt8]) throws -> ServingError {
        try ProtoCodec.decode(payload, "Status", unpack: r2ec__v1__status__unpack, free: r2ec__v1__status__free_unpacked) { m in
            ServingError(StatusCode(rawValue: m.pointee.code) ?? .unknown, swiftString(m.pointee.message),
                         field: swiftString(m.pointee.field))
        }
    }
}

/// Client-side failures.
public enum ClientError: Error, CustomStringConvertible {
    /// The server could not be reached.
    case connect(String)
    /// The connection ended or failed.
    case closed(String)
    /// No answer in time.
    case timeout
    /// The call ended with a non-OK status.
    case status(ServingError)

    public var description: String {
        switch self {
        case .connect(let m): return m
        case .closed(let m): return "connection closed: \(m)"
        case .timeout: return "timed out waiting for the server"
        case .status(let e): return "\(e.code.name): \(e.message)"
        }
    }
}
