// The RPC server: one libuv loop thread owns every socket, timer and signal handle; model work runs on the serving
// core's dedicated workers and comes back through a queue plus uv_async_send (the loop drains the whole queue on
// each wake-up). SIGTERM/SIGINT drain gracefully: GOAWAY, finish what was accepted, exit 0.
import CLibUV
import Foundation
import Logging
import Serving

public final class Server: @unchecked Sendable {
    public let config: ServerConfig
    public let core: ServingCore
    /// Loads a model for the Admin service (name, path) on a background thread.
    public var modelLoader: (@Sendable (String, String) throws -> ServedModel)?

    private let loop: UnsafeMutablePointer<uv_loop_t>
    private let listener = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
    private let wakeup = UnsafeMutablePointer<uv_async_t>.allocate(capacity: 1)
    private let sweep = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
    private var signals: [UnsafeMutablePointer<uv_signal_t>] = []
    private var logger = Logger(label: "r2ec.rpc")

    private var connections: [ObjectIdentifier: Connection] = [:]
    private var dirty: [Connection] = []
    /// Work handed back to the loop thread. An NSLock (pthread mutex), not Synchronization's Mutex: ThreadSanitizer
    /// sees pthread locks but not the futex the stdlib's Mutex uses on Linux, and reported the hand-over as a race.
    private let completionsLock = NSLock()
    private var completions: [() -> Void] = []
    private var deadlineCalls: [(Connection.Call, Connection)] = []
    private var watchers: [(Connection.Call, Connection, String)] = []
    private var draining = false
    private var drainDeadline: UInt64 = 0
    private var listenerClosed = false
    public private(set) var boundPort = 0
    /// The bound port of the /metrics endpoint, when one was asked for.
    public var metricsPort: Int? { metricsEndpoint?.port }
    private var metricsEndpoint: MetricsEndpoint?
    private var sweeps = 0
    private var callsFinished = 0
    private var callsFailed = 0

    public init(config: ServerConfig, core: ServingCore) {
        self.config = config
        self.core = core
        loop = .allocate(capacity: 1)
        uv_loop_init(loop)
        logger.logLevel = .info
    }

    // MARK: Running

    /// Binds, listens and runs the loop until a drain completes. Calls `ready` with the bound port once listening.
    public func run(ready: (Int) -> Void = { _ in }) throws {
        signal(SIGPIPE, SIG_IGN)
        let me = Unmanaged.passUnretained(self).toOpaque()

        uv_async_init(loop, wakeup) { h in Server.from(h!).drainCompletions() }
        wakeup.pointee.data = me
        uv_timer_init(loop, sweep)
        sweep.pointee.data = me
        uv_timer_start(sweep, { t in Server.from(t!).sweepTimers() }, 10, 10)
        for signum in [SIGTERM, SIGINT, SIGHUP] {
            let s = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)
            uv_signal_init(loop, s)
            s.pointee.data = me
            uv_signal_start(s, { s, signum in Server.from(s!).onSignal(signum) }, signum)
            signals.append(s)
        }

        uv_tcp_init(loop, listener)
        listener.pointee.data = me
        var storage = sockaddr_storage()
        let parsed = withUnsafeMutablePointer(to: &storage) { p -> Int32 in
            config.host.contains(":")
                ? uv_ip6_addr(config.host, Int32(config.port), UnsafeMutableRawPointer(p).assumingMemoryBound(to: sockaddr_in6.self))
                : uv_ip4_addr(config.host, Int32(config.port), UnsafeMutableRawPointer(p).assumingMemoryBound(to: sockaddr_in.self))
        }
        guard parsed == 0 else { throw ServerError.badAddress(config.host, uvError(parsed)) }
        let bound = withUnsafePointer(to: &storage) {
            uv_tcp_bind(listener, UnsafeRawPointer($0).assumingMemoryBound(to: sockaddr.self), 0)
        }
        guard bound == 0 else { throw ServerError.bind("\(config.host):\(config.port)", uvError(bound)) }
        let listening = uv_listen(listenerStream, 1024) { s, status in
            Server.from(s!).onConnection(status)
        }
        guard listening == 0 else { throw ServerError.bind("\(config.host):\(config.port)", uvError(listening)) }
        boundPort = localPort()
        if let port = config.metricsPort {
            let endpoint = MetricsEndpoint(server: self)
            try endpoint.start(loop: loop, host: config.host.contains(":") ? "127.0.0.1" : config.host, port: port)
            metricsEndpoint = endpoint
        }
        ready(boundPort)
        uv_run(loop, UV_RUN_DEFAULT)
        core.shutdown()
    }

    /// Starts a graceful drain from any thread (tests, embedding programs).
    public func shutdown() { post { [self] in beginDrain(reason: "shutdown requested") } }

    // MARK: Cross-thread hand-back

    /// Runs `work` on the loop thread, from any thread.
    public func post(_ work: @escaping () -> Void) {
        completionsLock.lock()
        completions.append(work)
        completionsLock.unlock()
        uv_async_send(wakeup)
    }

    private func drainCompletions() {
        completionsLock.lock()
        let batch = completions
        completions.removeAll(keepingCapacity: true)
        completionsLock.unlock()
        for work in batch { work() }
        flushDirty()
    }

    // MARK: Connections

    private var listenerStream: UnsafeMutablePointer<uv_stream_t> {
        UnsafeMutableRawPointer(listener).assumingMemoryBound(to: uv_stream_t.self)
    }

    private func onConnection(_ status: Int32) {
        guard status == 0 else { return log("accept failed: \(uvError(status))") }
        let tcp = UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<uv_tcp_t>.size, alignment: 16)
            .bindMemory(to: uv_tcp_t.self, capacity: 1)
        uv_tcp_init(loop, tcp)
        let stream = UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_stream_t.self)
        guard uv_accept(listenerStream, stream) == 0 else {
            uv_close(UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_handle_t.self)) { h in
                UnsafeMutableRawPointer(h!).deallocate()
            }
            return
        }
        uv_tcp_nodelay(tcp, 1)
        let conn = Connection(server: self, tcp: tcp, peer: peerName(tcp))
        tcp.pointee.data = Unmanaged.passRetained(conn).toOpaque()
        connections[ObjectIdentifier(conn)] = conn
        conn.startReading()
        if connections.count > config.maxConnections {
            core.metrics.limitHit("connections")
            conn.refuse("too many connections (limit \(config.maxConnections))")
        } else if draining {
            conn.drain()
        }
        flushDirty()
    }

    func connectionClosed(_ conn: Connection) {
        connections[ObjectIdentifier(conn)] = nil
        deadlineCalls.removeAll { $0.1 === conn }
        watchers.removeAll { $0.1 === conn }
        if draining { finishDrainIfDone() }
    }

    func markDirty(_ conn: Connection) {
        if !conn.isDirty {
            conn.isDirty = true
            dirty.append(conn)
        }
    }

    /// Writes what every touched connection queued during this callback.
    func flushDirty() {
        while !dirty.isEmpty {
            let batch = dirty
            dirty.removeAll(keepingCapacity: true)
            for conn in batch {
                conn.isDirty = false
                conn.flush()
            }
        }
    }

    // MARK: Calls

    func authorize(_ method: Method, metadata: [(String, String)]) -> ServingError? {
        guard !config.tokens.isEmpty || !config.adminTokens.isEmpty else { return nil }
        let presented = metadata.first { $0.0 == "authorization" }.map { value -> String in
            let v = value.1
            return v.hasPrefix("Bearer ") ? String(v.dropFirst(7)) : ""
        }
        guard let token = presented, !token.isEmpty else {
            return ServingError(.unauthenticated, "missing bearer token (metadata 'authorization: Bearer <token>')")
        }
        let isAdmin = TokenCompare.contains(config.adminTokens, token)
        guard isAdmin || TokenCompare.contains(config.tokens, token) else {
            return ServingError(.unauthenticated, "invalid bearer token")
        }
        if method.isAdmin && !isAdmin {
            return ServingError(.permissionDenied, "\(method.rawValue) needs an admin token")
        }
        return nil
    }

    func watchDeadline(of call: Connection.Call, on conn: Connection) {
        deadlineCalls.append((call, conn))
    }

    /// Answers `call` on the loop thread with the outcome of work done elsewhere.
    private func complete<T>(_ call: Connection.Call, on conn: Connection, _ result: Result<T, ServingError>,
                             encode: (T) -> [UInt8]) {
        switch result {
        case .success(let value): conn.finish(call, payload: encode(value))
        case .failure(let error): conn.finish(call, error)
        }
    }

    /// Decodes a request and starts its work. Runs on the loop thread.
    func dispatch(_ call: Connection.Call, payload: [UInt8], on conn: Connection) {
        do {
            switch call.method {
            case .healthCheck:
                let service = try ProtoCodec.decodeHealthRequest(payload)
                guard Method.healthServices.contains(service) else {
                    throw ServingError(.notFound, "service: unknown service '\(service)'", field: "service")
                }
                conn.finish(call, payload: ProtoCodec.encodeHealthResponse(serving: !draining))
            case .healthWatch:
                let service = try ProtoCodec.decodeHealthRequest(payload)
                conn.message(call, ProtoCodec.encodeHealthResponse(serving: !draining))
                watchers.append((call, conn, service))
            case .recommend:
                let q = try ProtoCodec.decodeRecommendRequest(payload)
                core.recommend(q, ctx: call.ctx) { [self] r in
                    post { [self] in complete(call, on: conn, r, encode: ProtoCodec.encodeRecommendResponse) }
                }
            case .recommendStream:
                let q = try ProtoCodec.decodeRecommendRequest(payload)
                core.recommendStream(q, ctx: call.ctx, onDelta: { [self] text in
                    post { conn.message(call, ProtoCodec.encodeStreamDelta(text)) }
                }, done: { [self] r in
                    post { [self] in complete(call, on: conn, r, encode: ProtoCodec.encodeStreamResult) }
                })
            case .recommendBatch:
                let queries = try ProtoCodec.decodeRecommendBatchRequest(payload)
                guard !queries.isEmpty else { throw ServingError.invalid("requests", "empty batch") }
                guard queries.count <= core.limits.maxBatchRequests else {
                    core.metrics.limitHit("batch_requests")
                    throw ServingError(.invalidArgument,
                                       "requests: \(queries.count) exceeds the server's limit of \(core.limits.maxBatchRequests)",
                                       field: "requests", limit: "batch_requests")
                }
                var results = [Result<RecommendResult, ServingError>?](repeating: nil, count: queries.count)
                var remaining = queries.count
                for (i, q) in queries.enumerated() {
                    core.recommend(q, ctx: call.ctx) { [self] r in
                        post { [self] in
                            results[i] = r
                            remaining -= 1
                            if remaining == 0 {
                                conn.finish(call, payload: ProtoCodec.encodeRecommendBatchResponse(results.map { $0! }))
                            }
                        }
                    }
                }
            case .scoreItems:
                let q = try ProtoCodec.decodeScoreItemsRequest(payload)
                let name = try core.registry.model(q.model).name
                core.scoreItems(q, ctx: call.ctx) { [self] r in
                    post { [self] in complete(call, on: conn, r) { ProtoCodec.encodeScoreItemsResponse($0, model: name) } }
                }
            case .similarItems:
                let q = try ProtoCodec.decodeSimilarItemsRequest(payload)
                let name = try core.registry.model(q.model).name
                core.similarItems(q, ctx: call.ctx) { [self] r in
                    post { [self] in complete(call, on: conn, r) { ProtoCodec.encodeSimilarItemsResponse($0, model: name) } }
                }
            case .getItems:
                let (ids, model) = try ProtoCodec.decodeGetItemsRequest(payload)
                conn.finish(call, payload: ProtoCodec.encodeGetItemsResponse(try core.getItems(ids, model: model)))
            case .modelInfo:
                let info = try core.modelInfo(try ProtoCodec.decodeModelInfoRequest(payload))
                conn.finish(call, payload: ProtoCodec.encodeModelInfoResponse(model: info.model, loaded: info.loaded,
                                                                             defaultName: info.defaultName))
            case .loadModel:
                let (name, path, makeDefault) = try ProtoCodec.decodeLoadModelRequest(payload)
                guard !name.isEmpty else { throw ServingError.invalid("name", "empty") }
                guard !path.isEmpty else { throw ServingError.invalid("path", "empty") }
                guard let loader = modelLoader else {
                    throw ServingError(.unimplemented, "this server was started without a model loader")
                }
                let registry = core.registry
                let thread = Thread { [self] in
                    let r = Result<ServedModel, Error> { try loader(name, path) }
                    post { [self] in
                        switch r {
                        case .success(let model):
                            registry.install(model, makeDefault: makeDefault)
                            log("loaded model '\(name)' version \(model.version) from \(path)")
                            conn.finish(call, payload: ProtoCodec.encodeLoadModelResponse(name: name, version: model.version))
                        case .failure(let e as ServingError): conn.finish(call, e)
                        case .failure(let e): conn.finish(call, ServingError(.invalidArgument, "path: \(e)", field: "path"))
                        }
                    }
                }
                thread.start()
            case .unloadModel:
                try core.registry.remove(try ProtoCodec.decodeUnloadModelRequest(payload))
                conn.finish(call, payload: ProtoCodec.encodeUnloadModelResponse())
            }
        } catch let e as ServingError {
            conn.finish(call, e)
        } catch {
            conn.finish(call, ServingError(.internal, "\(error)"))
        }
    }

    // MARK: Timers, signals, drain

    private func sweepTimers() {
        let now = DispatchTime.now().uptimeNanoseconds
        if !deadlineCalls.isEmpty {
            deadlineCalls.removeAll { call, conn in
                guard conn.calls[call.id] === call else { return true }
                guard let d = call.ctx.deadline, now >= d else { return false }
                call.ctx.cancel()
                conn.finish(call, status: .deadlineExceeded, "deadline exceeded")
                return true
            }
        }
        sweeps &+= 1
        let checkTimeouts = sweeps % 10 == 0  // every 100 ms
        let idle = UInt64(config.idleTimeoutSeconds * 1e9), frame = UInt64(config.frameReadTimeoutSeconds * 1e9)
        for conn in Array(connections.values) {
            if let linger = conn.lingerDeadline, now >= linger { conn.close(); continue }
            if checkTimeouts { conn.checkTimeouts(now: now, idleNanos: idle, frameNanos: frame) }
        }
        if draining && now >= drainDeadline {
            log("drain timeout: closing \(connections.count) connection(s) with calls still in flight")
            for conn in connections.values { conn.close() }
        }
        flushDirty()
    }

    private func onSignal(_ signum: Int32) {
        if signum == SIGHUP { return reloadAll() }
        if draining {
            log("second signal \(signum): exiting at once")
            exit(1)
        }
        beginDrain(reason: "signal \(signum)")
        flushDirty()
    }

    private func beginDrain(reason: String) {
        guard !draining else { return }
        draining = true
        drainDeadline = DispatchTime.now().uptimeNanoseconds + UInt64(config.drainTimeoutSeconds * 1e9)
        log("draining (\(reason)): \(connections.count) connection(s)")
        let notServing = ProtoCodec.encodeHealthResponse(serving: false)
        for (call, conn, _) in watchers {
            conn.message(call, notServing)
            conn.finish(call, status: .unavailable, "server is shutting down")
        }
        watchers.removeAll()
        metricsEndpoint?.stop()
        uv_close(UnsafeMutableRawPointer(listener).assumingMemoryBound(to: uv_handle_t.self)) { h in
            Server.from(h!).listenerClosed = true
            Server.from(h!).finishDrainIfDone()
        }
        for conn in Array(connections.values) { conn.drain() }
        flushDirty()
    }

    private func finishDrainIfDone() {
        guard draining, listenerClosed, connections.isEmpty else { return }
        log("drained: \(callsFinished) call(s) answered, \(callsFailed) with an error status")
        uv_stop(loop)
    }

    /// Reloads every model from its spec beside the old one and swaps each in when it is ready (SIGHUP). Calls
    /// already holding the old model finish on it; nothing in flight is dropped.
    public func reloadAll() {
        guard let loader = modelLoader else { return log("SIGHUP: no model loader, nothing reloaded") }
        let models = core.registry.all
        let registry = core.registry
        log("reloading \(models.count) model(s)")
        Thread { [self] in
            for old in models {
                do {
                    let fresh = try loader(old.name, old.spec)
                    post { [self] in
                        registry.install(fresh, makeDefault: registry.defaultModelName == old.name)
                        log("reloaded model '\(old.name)' (version \(fresh.version)) from \(old.spec)")
                    }
                } catch {
                    post { [self] in log("reload of '\(old.name)' from \(old.spec) failed, keeping version \(old.version): \(error)") }
                }
            }
        }.start()
    }

    // MARK: Logging and stats

    func record(_ call: Connection.Call, status: StatusCode, message: String, peer: String) {
        callsFinished += 1
        core.metrics.call(method: call.method.rawValue, code: status,
                          seconds: Double(DispatchTime.now().uptimeNanoseconds - call.opened) / 1e9)
        if status != .ok {
            callsFailed += 1
            logger.warning("call failed", metadata: ["method": "\(call.method.rawValue)", "stream": "\(call.id)",
                                                    "peer": "\(peer)", "code": "\(status.name)", "message": "\(message)"])
        }
    }

    func recordRefused(_ error: ServingError, peer: String) {
        callsFinished += 1
        callsFailed += 1
        core.metrics.call(method: "(refused)", code: error.code, seconds: 0)
        logger.warning("call refused", metadata: ["peer": "\(peer)", "code": "\(error.code.name)", "message": "\(error.message)"])
    }

    var openConnections: Int { connections.count }
    var isServing: Bool { !draining }

    func log(_ message: String) { logger.info("\(message)") }

    // MARK: Helpers

    private static func from<T>(_ p: UnsafeMutablePointer<T>) -> Server {
        let h = UnsafeMutableRawPointer(p).assumingMemoryBound(to: uv_handle_t.self)
        return Unmanaged<Server>.fromOpaque(h.pointee.data).takeUnretainedValue()
    }

    private func localPort() -> Int {
        var storage = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            uv_tcp_getsockname(listener, UnsafeMutableRawPointer($0).assumingMemoryBound(to: sockaddr.self), &len)
        }
        return Server.port(of: storage)
    }

    private func peerName(_ tcp: UnsafeMutablePointer<uv_tcp_t>) -> String {
        var storage = sockaddr_storage()
        var len = Int32(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            uv_tcp_getpeername(tcp, UnsafeMutableRawPointer($0).assumingMemoryBound(to: sockaddr.self), &len)
        }
        var name = [CChar](repeating: 0, count: 64)
        let family = storage.ss_family
        withUnsafePointer(to: &storage) { p in
            if family == sa_family_t(AF_INET6) {
                _ = uv_ip6_name(UnsafeRawPointer(p).assumingMemoryBound(to: sockaddr_in6.self), &name, name.count)
            } else {
                _ = uv_ip4_name(UnsafeRawPointer(p).assumingMemoryBound(to: sockaddr_in.self), &name, name.count)
            }
        }
        return "\(String(cString: name)):\(Server.port(of: storage))"
    }

    private static func port(of storage: sockaddr_storage) -> Int {
        var s = storage
        let family = s.ss_family
        return withUnsafePointer(to: &s) { p in
            if family == sa_family_t(AF_INET6) {
                return Int(UInt16(bigEndian: UnsafeRawPointer(p).assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_port))
            }
            return Int(UInt16(bigEndian: UnsafeRawPointer(p).assumingMemoryBound(to: sockaddr_in.self).pointee.sin_port))
        }
    }
}

func uvError(_ code: Int32) -> String { String(cString: uv_strerror(code)) }

/// Why the server could not start.
public enum ServerError: Error, CustomStringConvertible {
    /// The --host value is not an IPv4 or IPv6 address.
    case badAddress(String, String)
    /// Binding or listening failed (port in use, no permission).
    case bind(String, String)

    public var description: String {
        switch self {
        case .badAddress(let h, let e): return "cannot use host '\(h)': \(e)"
        case .bind(let a, let e): return "cannot listen on \(a): \(e)"
        }
    }
}

/// Token membership without early exit on the first differing byte.
enum TokenCompare {
    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(truncatingIfNeeded: x.count ^ y.count)
        for i in 0..<max(x.count, y.count) {
            diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return diff == 0
    }

    static func contains(_ set: Set<String>, _ token: String) -> Bool {
        var found = false
        for t in set where equal(t, token) { found = true }
        return found
    }
}
