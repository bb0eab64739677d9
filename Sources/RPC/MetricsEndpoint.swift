// The HTTP side door on the server's loop: GET /metrics (Prometheus text exposition) and GET /healthz
// (200 SERVING / 503 NOT_SERVING). Requests are parsed by Debian's http-parser; one response per connection, then
// close. Runs on the loop thread like everything else there. Bounded: at most `maxConnections` open at once (one
// more is answered 503 and closed at once), and a connection must have sent its whole request within
// `requestTimeout` (else 408 and close) and be gone within twice that, so half-sent requests cannot hold
// descriptors for long or starve the RPC port of them.
import CHTTPParser
import CLibUV
import Foundation

final class MetricsEndpoint {
    unowned let server: Server
    private let listener = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
    private let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
    private var initialized = false
    private var stopped = false
    private var open: [ObjectIdentifier: HTTPConnection] = [:]
    /// The bound port.
    private(set) var port = 0
    let maxConnections: Int
    let requestTimeoutNanos: UInt64

    init(server: Server) {
        self.server = server
        maxConnections = max(1, server.config.metricsMaxConnections)
        requestTimeoutNanos = UInt64(max(0.001, server.config.metricsRequestTimeoutSeconds) * 1e9)
    }

    func start(loop: UnsafeMutablePointer<uv_loop_t>, address: ListenAddress) throws {
        uv_tcp_init(loop, listener)
        uv_timer_init(loop, timer)
        initialized = true
        let me = Unmanaged.passUnretained(self).toOpaque()
        listener.pointee.data = me
        timer.pointee.data = me
        let bound = address.withSockaddr { uv_tcp_bind(listener, $0, 0) }
        guard bound == 0 else { throw ServerError.bind("\(address) (metrics)", uvError(bound)) }
        let r = uv_listen(UnsafeMutableRawPointer(listener).assumingMemoryBound(to: uv_stream_t.self), 128) { s, status in
            let endpoint = Unmanaged<MetricsEndpoint>.fromOpaque(s!.pointee.data).takeUnretainedValue()
            guard status == 0 else { return endpoint.server.log("metrics: accept failed: \(uvError(status))") }
            endpoint.accept()
        }
        guard r == 0 else { throw ServerError.bind("\(address) (metrics)", uvError(r)) }
        var storage = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            uv_tcp_getsockname(listener, UnsafeMutableRawPointer($0).assumingMemoryBound(to: sockaddr.self), &len)
        }
        self.port = withUnsafeBytes(of: &storage) { Int(UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self))) }
        let tick = max(UInt64(10), min(UInt64(250), requestTimeoutNanos / 4_000_000))
        uv_timer_start(timer, { t in
            Unmanaged<MetricsEndpoint>.fromOpaque(t!.pointee.data).takeUnretainedValue().sweep()
        }, tick, tick)
    }

    func stop() {
        guard initialized, !stopped else { return }
        stopped = true
        uv_close(UnsafeMutableRawPointer(listener).assumingMemoryBound(to: uv_handle_t.self), nil)
        uv_close(UnsafeMutableRawPointer(timer).assumingMemoryBound(to: uv_handle_t.self), nil)
        for c in Array(open.values) { c.close() }
    }

    /// Connections open now (tests, metrics).
    var openCount: Int { open.count }

    private func accept() {
        let c = HTTPConnection(endpoint: self)
        uv_tcp_init(listener.pointee.loop, c.tcp)
        c.retain()
        guard uv_accept(UnsafeMutableRawPointer(listener).assumingMemoryBound(to: uv_stream_t.self), c.stream) == 0 else {
            c.close()
            return
        }
        open[ObjectIdentifier(c)] = c
        if open.count > maxConnections {
            server.core.metrics.limitHit("metrics_connections")
            server.log("metrics: refused a connection: \(maxConnections) already open")
            c.refuse("503 Service Unavailable", "too many connections to the metrics endpoint (limit \(maxConnections))\n")
            return
        }
        c.start()
    }

    /// Answers 408 to a request not complete within the timeout; closes whatever is still open at twice it.
    private func sweep() {
        let now = DispatchTime.now().uptimeNanoseconds
        for c in Array(open.values) {
            if now >= c.opened + 2 * requestTimeoutNanos {
                c.close()
            } else if now >= c.opened + requestTimeoutNanos && !c.isAnswered {
                server.core.metrics.limitHit("metrics_request_timeout")
                c.refuse("408 Request Timeout",
                         "request not complete within \(Double(requestTimeoutNanos) / 1e9) s\n")
            }
        }
    }

    func closed(_ c: HTTPConnection) { open[ObjectIdentifier(c)] = nil }

    /// Status line, content type and body for a request path.
    func respond(method: String, path: String) -> (String, String, [UInt8]) {
        guard method == "GET" || method == "HEAD" else { return ("405 Method Not Allowed", "text/plain", Array("GET only\n".utf8)) }
        switch path.split(separator: "?").first.map(String.init) ?? path {
        case "/metrics":
            server.core.metrics.connections(open: server.openConnections)
            server.core.sampleQueueDepths()
            return ("200 OK", "text/plain; version=0.0.4; charset=utf-8", server.core.metrics.render())
        case "/healthz":
            return server.isServing ? ("200 OK", "text/plain", Array("SERVING\n".utf8))
                : ("503 Service Unavailable", "text/plain", Array("NOT_SERVING\n".utf8))
        default:
            return ("404 Not Found", "text/plain", Array("not found: try /metrics or /healthz\n".utf8))
        }
    }
}

/// One HTTP client: read until http-parser completes a request, answer it, close.
final class HTTPConnection {
    unowned let endpoint: MetricsEndpoint
    let tcp = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
    /// On the heap: http-parser's callbacks read it while http_parser_execute runs.
    private let parser = UnsafeMutablePointer<http_parser>.allocate(capacity: 1)
    private var url: [UInt8] = []
    private static let bufferSize = 8192
    private let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: HTTPConnection.bufferSize)
    private var answered = false
    private var closing = false
    /// When the connection was accepted (monotonic ns).
    let opened = DispatchTime.now().uptimeNanoseconds
    var isAnswered: Bool { answered }
    private var retained: Unmanaged<HTTPConnection>?

    /// http-parser's callbacks, shared by every connection (they find theirs through parser.data).
    private static let settings: UnsafeMutablePointer<http_parser_settings> = {
        let s = UnsafeMutablePointer<http_parser_settings>.allocate(capacity: 1)
        s.initialize(to: http_parser_settings())
        s.pointee.on_url = { p, at, n in
            let c = Unmanaged<HTTPConnection>.fromOpaque(p!.pointee.data).takeUnretainedValue()
            c.url += UnsafeRawBufferPointer(start: at, count: n)
            return c.url.count > 4096 ? 1 : 0
        }
        s.pointee.on_message_complete = { p in
            let c = Unmanaged<HTTPConnection>.fromOpaque(p!.pointee.data).takeUnretainedValue()
            c.complete()
            return 0
        }
        return s
    }()

    init(endpoint: MetricsEndpoint) {
        self.endpoint = endpoint
        parser.initialize(to: http_parser())
        http_parser_init(parser, HTTP_REQUEST)
    }

    deinit {
        parser.deallocate()
        buffer.deallocate()
    }

    var stream: UnsafeMutablePointer<uv_stream_t> { UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_stream_t.self) }

    /// Keeps the connection alive until its handle's close callback; call right after uv_tcp_init.
    func retain() {
        retained = Unmanaged.passRetained(self)
        tcp.pointee.data = retained!.toOpaque()
        parser.pointee.data = retained!.toOpaque()
    }

    func start() {
        uv_read_start(stream, { h, _, buf in
            let c = Unmanaged<HTTPConnection>.fromOpaque(h!.pointee.data).takeUnretainedValue()
            buf!.pointee = uv_buf_init(c.buffer, UInt32(HTTPConnection.bufferSize))
        }, { s, n, _ in
            let c = Unmanaged<HTTPConnection>.fromOpaque(s!.pointee.data).takeUnretainedValue()
            c.onRead(n)
        })
    }

    private func onRead(_ n: Int) {
        guard n > 0 else { if n < 0 { close() }; return }
        let parsed = http_parser_execute(parser, HTTPConnection.settings, buffer, n)
        if !answered && (parsed != n || parser.pointee.http_errno != 0) {
            write("400 Bad Request", "text/plain", Array("bad request\n".utf8), head: false)
        }
    }

    private func complete() {
        guard !answered else { return }
        let method = String(cString: http_method_str(http_method(rawValue: parser.pointee.method)))
        let (status, type, body) = endpoint.respond(method: method, path: String(decoding: url, as: UTF8.self))
        write(status, type, body, head: method == "HEAD")
    }

    /// Answers `status` with a plain-text body (refusal, timeout) and closes.
    func refuse(_ status: String, _ body: String) {
        guard !answered, !closing else { return }
        write(status, "text/plain", Array(body.utf8), head: false)
    }

    private func write(_ status: String, _ type: String, _ body: [UInt8], head: Bool) {
        answered = true
        uv_read_stop(stream)
        let header = "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(header.utf8) + (head ? [] : body)
        let req = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
        let data = UnsafeMutablePointer<UInt8>.allocate(capacity: bytes.count)
        data.initialize(from: bytes, count: bytes.count)
        req.pointee.data = UnsafeMutableRawPointer(data)
        var buf = uv_buf_init(UnsafeMutableRawPointer(data).assumingMemoryBound(to: CChar.self), UInt32(bytes.count))
        let r = uv_write(req, stream, &buf, 1) { req, _ in
            let c = Unmanaged<HTTPConnection>.fromOpaque(req!.pointee.handle.pointee.data).takeUnretainedValue()
            req!.pointee.data.deallocate()
            req!.deallocate()
            c.close()
        }
        if r != 0 { data.deallocate(); req.deallocate(); close() }
    }

    func close() {
        guard !closing else { return }
        closing = true
        endpoint.closed(self)
        uv_close(UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_handle_t.self)) { h in
            let c = Unmanaged<HTTPConnection>.fromOpaque(h!.pointee.data)
            c.takeUnretainedValue().tcp.deallocate()
            c.release()
        }
    }
}
