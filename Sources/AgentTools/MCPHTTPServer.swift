// `r2ec mcp --http HOST:PORT`: MCP's Streamable HTTP transport in its stateless form (POST /mcp carries one
// JSON-RPC message and gets its JSON answer; GET and DELETE are 405, no sessions), served over plain HTTP/1.1 with
// keep-alive. Stateless means every POST is answered by a server of its own (the SDK's Server remembers one
// initialize), so any number of clients can initialize, and nothing is kept between requests. Bounded like the server's metrics door: at most `maxConnections` at once (more are answered 503),
// headers up to 16 KiB, bodies up to 1 MiB (413), and a connection idle for `idleSeconds` is closed.
import Foundation
import MCP

#if canImport(Glibc)
import Glibc
#endif

public final class MCPHTTPServer: @unchecked Sendable {
    public static let path = "/mcp"
    static let maxHeaderBytes = 16 << 10
    static let maxBodyBytes = 1 << 20
    /// A fresh MCP server with the tools registered, for one request.
    let makeServer: @Sendable () async -> MCP.Server
    let maxConnections: Int
    let idleSeconds: Int
    private let listener: Int32
    /// The bound port (useful with port 0).
    public let port: Int
    private let lock = NSLock()
    private var open = 0

    public init(host: String, port: Int, maxConnections: Int = 64, idleSeconds: Int = 30,
                makeServer: @escaping @Sendable () async -> MCP.Server) throws {
        self.makeServer = makeServer
        self.maxConnections = maxConnections
        self.idleSeconds = idleSeconds
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var info: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &info) == 0, let first = info else {
            throw ToolError("INVALID_ARGUMENT", "http: cannot resolve '\(host)'")
        }
        defer { freeaddrinfo(info) }
        let fd = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ToolError("UNAVAILABLE", "http: socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0, listen(fd, 128) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw ToolError("UNAVAILABLE", "http: cannot listen on \(host):\(port): \(reason)")
        }
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { getsockname(fd, UnsafeMutableRawPointer($0).assumingMemoryBound(to: sockaddr.self), &len) }
        self.port = withUnsafeBytes(of: &storage) { Int(UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self))) }
        listener = fd
    }

    /// Accepts connections until the process ends; each is served on its own thread.
    public func run() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 { if errno == EINTR || errno == ECONNABORTED { continue }; return }
            lock.lock()
            let admitted = open < maxConnections
            if admitted { open += 1 }
            lock.unlock()
            guard admitted else {
                write(fd, Self.response(503, body: Data("too many connections\n".utf8), close: true))
                close(fd)
                continue
            }
            Thread.detachNewThread { [self] in
                serve(fd)
                close(fd)
                lock.lock(); open -= 1; lock.unlock()
            }
        }
    }

    private func serve(_ fd: Int32) {
        var timeout = timeval(tv_sec: idleSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = Data()
        while true {
            guard let (request, keepAlive, status) = readRequest(fd, &buffer) else { return }
            if let status {
                write(fd, Self.response(status, body: Data("\(Self.reason(status))\n".utf8), close: true))
                return
            }
            let answer: HTTPResponse
            if request.path?.split(separator: "?").first.map(String.init) != Self.path {
                write(fd, Self.response(404, body: Data("not found: the MCP endpoint is \(Self.path)\n".utf8), close: !keepAlive))
                if keepAlive { continue } else { return }
            }
            answer = blocking { await self.answer(request) }
            var headers = answer.headers
            if answer.bodyData != nil, headers["Content-Type"] == nil { headers["Content-Type"] = "application/json" }
            write(fd, Self.response(answer.statusCode, headers: headers, body: answer.bodyData ?? Data(), close: !keepAlive))
            if !keepAlive { return }
        }
    }

    /// One request answered by a server of its own over a stateless transport.
    private func answer(_ request: HTTPRequest) async -> HTTPResponse {
        let transport = StatelessHTTPServerTransport()
        let server = await makeServer()
        do {
            try await server.start(transport: transport)
        } catch {
            return .error(statusCode: 500, MCPError.internalError("cannot start the MCP server: \(error)"))
        }
        let response = await transport.handleRequest(request)
        await server.stop()
        return response
    }

    /// The next request on the connection: nil when the peer closed or went idle; a status for a request refused
    /// before it reached the transport.
    private func readRequest(_ fd: Int32, _ buffer: inout Data) -> (HTTPRequest, Bool, Int?)? {
        let separator = Data("\r\n\r\n".utf8)
        var headerEnd: Range<Data.Index>?
        while true {
            headerEnd = buffer.range(of: separator)
            if let end = headerEnd {
                if end.lowerBound - buffer.startIndex > Self.maxHeaderBytes { return (HTTPRequest(method: ""), false, 431) }
                break
            }
            if buffer.count > Self.maxHeaderBytes { return (HTTPRequest(method: ""), false, 431) }
            guard receive(fd, &buffer) else { return nil }
        }
        let head = String(decoding: buffer[buffer.startIndex..<headerEnd!.lowerBound], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ")
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1.") else { return (HTTPRequest(method: ""), false, 400) }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { return (HTTPRequest(method: ""), false, 400) }
            headers[String(line[..<colon]).trimmingCharacters(in: .whitespaces)] =
                String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        }
        let lower = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
        if lower["transfer-encoding"] != nil { return (HTTPRequest(method: ""), false, 411) }
        guard let length = Int(lower["content-length"] ?? "0"), length >= 0 else { return (HTTPRequest(method: ""), false, 400) }
        guard length <= Self.maxBodyBytes else { return (HTTPRequest(method: ""), false, 413) }
        buffer.removeSubrange(buffer.startIndex..<headerEnd!.upperBound)
        while buffer.count < length { guard receive(fd, &buffer) else { return nil } }
        let body = buffer.prefix(length)
        buffer.removeFirst(length)
        let keepAlive = requestLine[2] == "HTTP/1.1" ? lower["connection"]?.lowercased() != "close"
                                                     : lower["connection"]?.lowercased() == "keep-alive"
        return (HTTPRequest(method: String(requestLine[0]), headers: headers, body: length > 0 ? Data(body) : nil,
                            path: String(requestLine[1])), keepAlive, nil)
    }

    private func receive(_ fd: Int32, _ buffer: inout Data) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    private func write(_ fd: Int32, _ bytes: Data) {
        bytes.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let n = send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                sent += n
            }
        }
    }

    static func response(_ status: Int, headers: [String: String] = ["Content-Type": "text/plain"], body: Data,
                         close: Bool) -> Data {
        var head = "HTTP/1.1 \(status) \(reason(status))\r\n"
        for (k, v) in headers.sorted(by: { $0.key < $1.key }) where k.lowercased() != "content-length" {
            head += "\(k): \(v)\r\n"
        }
        head += "Content-Length: \(body.count)\r\n"
        if close { head += "Connection: close\r\n" }
        return Data((head + "\r\n").utf8) + body
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 202: return "Accepted"
        case 400: return "Bad Request"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 411: return "Length Required"
        case 413: return "Payload Too Large"
        case 415: return "Unsupported Media Type"
        case 431: return "Request Header Fields Too Large"
        case 503: return "Service Unavailable"
        default: return "Status \(status)"
        }
    }
}

/// Runs async work from a plain thread and waits for it.
func blocking<T: Sendable>(_ work: @escaping @Sendable () async -> T) -> T {
    let done = DispatchSemaphore(value: 0)
    let box = ResultBox<T>()
    Task {
        box.value = await work()
        done.signal()
    }
    done.wait()
    return box.value!
}

private final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}
