// The RPC server: one libuv loop thread owns every socket, timer and signal handle; model work runs on the serving
// core's dedicated workers and comes back through a queue plus uv_async_send (the loop drains the whole queue on
// each wake-up). SIGTERM/SIGINT drain gracefully: with a drain grace period, health turns NOT_SERVING first (/healthz
// answers 503) while calls are still accepted, so orchestrators stop routing here; then GOAWAY, finish what was
// accepted, exit 0.
import CLibUV
import Data
import Foundation
import Logging
import Serving
import Synchronization

public final class Server: @unchecked Sendable {
    public let config: ServerConfig
    public let core: ServingCore
    /// Every method this server answers, by name (shared with any other front door of the same core).
    public let router: ServiceRouter
    public let health: HealthService
    public let admin: AdminService
    let authorizer: CallAuthorizer
    let machineSettings: ConnectionStateMachine.Settings
    /// Called on the loop thread when a drain begins (another front door of the same router drains with it).
    public var onDrain: (() -> Void)?
    /// Called after the loop ended, before the serving core shuts down (another door waits for its calls here).
    public var beforeCoreShutdown: (() -> Void)?
    /// Loads a model for the Admin service and SIGHUP reloads (name, path), on the model-load thread, one at a time.
    public var modelLoader: (@Sendable (String, String) throws -> ServedModel)? {
        get { admin.loader }
        set { admin.loader = newValue }
    }

    private let loop: UnsafeMutablePointer<uv_loop_t>
    private let listener = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
    private let wakeup = UnsafeMutablePointer<uv_async_t>.allocate(capacity: 1)
    private let sweep = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
    private var signals: [UnsafeMutablePointer<uv_signal_t>] = []
    private var logger = Logger(label: "r2ec.rpc")
    private var logLimiter = LogLimiter()

    private var connections: [ObjectIdentifier: Connection] = [:] {
        didSet { openConnectionCount.store(connections.count, ordering: .relaxed) }
    }
    /// `connections.count`, readable from any thread (the metrics endpoint, tests): the dictionary is the loop's.
    private let openConnectionCount = Atomic<Int>(0)
    private var dirty: [Connection] = []
    /// Work handed back to the loop thread. An NSLock (pthread mutex), not Synchronization's Mutex: ThreadSanitizer
    /// sees pthread locks but not the futex the stdlib's Mutex uses on Linux, and reported the hand-over as a race.
    private let completionsLock = NSLock()
    private var completions: [() -> Void] = []
    /// The loop thread, once running (handlers answering on it are applied at once, not queued).
    private var loopThread: pthread_t?
    /// Large requests are decoded here, off the loop thread.
    private let decodeQueue = DispatchQueue(label: "r2ec-decode", attributes: .concurrent)
    private var draining = false
    /// When the grace period after a drain signal ends (monotonic ns); 0 = not in one.
    private var graceDeadline: UInt64 = 0
    private var graceReason = ""
    private var drainAborted = false
    private var drainDeadline: UInt64 = 0
    private var listenerClosed = false
    private var listenerInitialized = false
    public private(set) var boundPort = 0
    /// The bound port of the /metrics endpoint, when one was asked for.
    public var metricsPort: Int? { metricsEndpoint?.port }
    private var metricsEndpoint: MetricsEndpoint?
    private var sweeps = 0
    private var lastSweep: UInt64 = 0
    private var callsFinished = 0
    private var callsFailed = 0

    /// The standard services (Recommender, Health, Admin, Events) plus `services`.
    public init(config: ServerConfig, core: ServingCore, services: [RPCService] = []) {
        self.config = config
        self.core = core
        health = HealthService()
        admin = AdminService(core: core)
        router = ServiceRouter(Server.standardServices(core: core, health: health, admin: admin) + services)
        authorizer = CallAuthorizer(tokens: config.tokens, adminTokens: config.adminTokens)
        var settings = ConnectionStateMachine.Settings()
        settings.maxCallsPerConnection = config.maxCallsPerConnection
        settings.defaultTimeoutMs = config.defaultTimeoutMs
        settings.requestTimeoutNanos = UInt64(config.frameReadTimeoutSeconds * 1e9)
        settings.outputBudget = config.connectionOutputBudget
        machineSettings = settings
        loop = .allocate(capacity: 1)
        uv_loop_init(loop)
        logger.logLevel = config.logLevel
    }

    /// The services every server answers, over one serving core.
    public static func standardServices(core: ServingCore, health: HealthService, admin: AdminService) -> [RPCService] {
        [RecommenderService(core: core), health, admin, EventsService(core: core)]
    }

    // MARK: Running

    /// Binds, listens and runs the loop until a drain completes. Calls `ready` with the bound port once listening.
    public func run(ready: (Int) -> Void = { _ in }) throws {
        signal(SIGPIPE, SIG_IGN)
        loopThread = pthread_self()
        let me = Unmanaged.passUnretained(self).toOpaque()
        // Listening first: when it fails, nothing but the listeners is on the loop, and the core's threads are
        // stopped before the error goes up (a core dropped with its threads running crashed the process).
        do {
            try listen()
        } catch {
            abandon()
            throw error
        }

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
        ready(boundPort)
        uv_run(loop, UV_RUN_DEFAULT)
        core.shutdown()
    }

    /// Binds and listens on the RPC address and, when asked for, the metrics port on the same address.
    private func listen() throws {
        let address = try ListenAddress(host: config.host, port: config.port)
        let metricsAddress = try config.metricsPort.map { try address.with(port: $0) }
        if let m = config.metricsPort, m == config.port, m != 0 {
            throw ServerError.config("the metrics port \(m) is the RPC port; give the metrics endpoint another port (or 0 for a free one)")
        }
        uv_tcp_init(loop, listener)
        listener.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        listenerInitialized = true
        let bound = address.withSockaddr { uv_tcp_bind(listener, $0, 0) }
        guard bound == 0 else { throw ServerError.bind("\(address)", uvError(bound)) }
        let listening = uv_listen(listenerStream, 1024) { s, status in
            Server.from(s!).onConnection(status)
        }
        guard listening == 0 else { throw ServerError.bind("\(address)", uvError(listening)) }
        boundPort = localPort()
        if let metricsAddress {
            let endpoint = MetricsEndpoint(server: self)
            metricsEndpoint = endpoint
            try endpoint.start(loop: loop, address: metricsAddress)
        }
    }

    /// After a failed start: closes what listen() opened, lets the loop run the close callbacks, stops the core.
    private func abandon() {
        metricsEndpoint?.stop()
        metricsEndpoint = nil
        if listenerInitialized {
            uv_close(UnsafeMutableRawPointer(listener).assumingMemoryBound(to: uv_handle_t.self), nil)
        }
        uv_run(loop, UV_RUN_DEFAULT)
        beforeCoreShutdown?()
        core.shutdown()
    }

    /// Starts a graceful drain from any thread (tests, embedding programs).
    public func shutdown() { post { [self] in beginGraceOrDrain(reason: "shutdown requested") } }

    // MARK: Cross-thread hand-back

    /// Runs `work` on the loop thread, from any thread.
    public func post(_ work: @escaping () -> Void) {
        completionsLock.lock()
        completions.append(work)
        completionsLock.unlock()
        uv_async_send(wakeup)
    }

    /// True on the loop thread.
    var isOnLoopThread: Bool {
        guard let t = loopThread else { return false }
        return pthread_equal(t, pthread_self()) != 0
    }

    /// Runs `work` on the loop thread: at once when called on it, else queued.
    func onLoop(_ work: @escaping () -> Void) {
        if isOnLoopThread { work() } else { post(work) }
    }

    /// Runs `work` off the loop thread (decoding large requests).
    func offload(_ work: @escaping @Sendable () -> Void) { decodeQueue.async(execute: work) }

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

    // MARK: Timers, signals, drain

    private func sweepTimers() {
        let now = DispatchTime.now().uptimeNanoseconds
        if lastSweep != 0 { noteLoopLag(now &- lastSweep) }
        lastSweep = now
        sweeps &+= 1
        let slow = sweeps % 10 == 0  // every 100 ms
        if sweeps % 100 == 0 { flushLogNotes() }
        let idle = UInt64(config.idleTimeoutSeconds * 1e9), frame = UInt64(config.frameReadTimeoutSeconds * 1e9)
        for conn in Array(connections.values) {
            if let linger = conn.lingerDeadline, now >= linger { conn.close(); continue }
            conn.checkTimers(now: now, idleNanos: idle, frameNanos: frame, slow: slow)
        }
        if graceDeadline != 0 && now >= graceDeadline && !draining { beginDrain(reason: graceReason) }
        if draining && now >= drainDeadline && !drainAborted {
            drainAborted = true
            log("drain timeout: answering UNAVAILABLE and closing \(connections.count) connection(s) with calls still in flight")
            for conn in Array(connections.values) {
                conn.abort("server shut down before the call finished (drain timeout \(config.drainTimeoutSeconds) s)")
            }
        }
        flushDirty()
    }

    /// The sweep timer is due every 10 ms; what it came later than that is time the loop could not answer anyone.
    /// Stalls of 50 ms and more are logged (rate-limited), so an operator can line them up with the other lines.
    private func noteLoopLag(_ sinceLastSweep: UInt64) {
        let lag = Double(sinceLastSweep.subtractingReportingOverflow(10_000_000).overflow ? 0 : sinceLastSweep - 10_000_000) / 1e9
        core.metrics.loopLag(seconds: lag)
        if lag >= 0.05 {
            emit("event loop stalled", kind: "event loop stalled", level: .warning,
                 metadata: ["milliseconds": String(format: "%.1f", lag * 1000)])
        }
    }

    private func onSignal(_ signum: Int32) {
        if signum == SIGHUP { return reloadAll() }
        if draining {
            log("second signal \(signum): exiting at once")
            exit(1)
        }
        if graceDeadline != 0 {
            log("second signal \(signum) in the drain grace period: draining now")
            beginDrain(reason: "signal \(signum)")
        } else {
            beginGraceOrDrain(reason: "signal \(signum)")
        }
        flushDirty()
    }

    /// With a drain grace period: health turns NOT_SERVING (/healthz 503, Health Check/Watch) while the listener
    /// and every connection keep working; the drain begins when the period ends. Without one: the drain at once.
    private func beginGraceOrDrain(reason: String) {
        guard !draining, graceDeadline == 0 else { return }
        guard config.drainGraceSeconds > 0 else { return beginDrain(reason: reason) }
        graceDeadline = DispatchTime.now().uptimeNanoseconds + UInt64(config.drainGraceSeconds * 1e9)
        graceReason = reason
        log("not serving (\(reason)): health answers NOT_SERVING, draining in \(config.drainGraceSeconds) s")
        health.stopServing()
    }

    private func beginDrain(reason: String) {
        guard !draining else { return }
        draining = true
        drainDeadline = DispatchTime.now().uptimeNanoseconds + UInt64(config.drainTimeoutSeconds * 1e9)
        log("draining (\(reason)): \(connections.count) connection(s)")
        health.stopServing()
        onDrain?()
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

    /// Reloads every model from its spec beside the old one and swaps each in when it is ready (SIGHUP), on the
    /// model-load thread after any load before it. Calls already holding the old model finish on it; nothing in
    /// flight is dropped.
    public func reloadAll() {
        guard modelLoader != nil else { return log("SIGHUP: no model loader, nothing reloaded") }
        let queued = admin.queueReload { [self] old, result in
            post { [self] in
                switch result {
                case .success(let fresh): log("reloaded model '\(old.name)' (version \(fresh.version)) from \(old.spec)")
                case .failure(let error):
                    log("reload of '\(old.name)' from \(old.spec) failed, keeping version \(old.version): \(error)")
                }
            }
        }
        log(queued ? "reloading \(core.registry.all.count) model(s)" : "SIGHUP: a reload is already queued; this one joins it")
    }

    // MARK: Logging and stats

    func record(_ call: RPCCall, status: CallStatus) {
        callsFinished += 1
        let seconds = Double(DispatchTime.now().uptimeNanoseconds &- call.opened) / 1e9
        let model = call.servedModel
        core.metrics.call(method: call.method, code: status.code, seconds: seconds, model: model?.name ?? "",
                          version: model?.version)
        if status.code != .ok {
            callsFailed += 1
            emit("call failed", kind: "call failed \(call.method) \(status.code.name)",
                 metadata: ["method": call.method, "peer": call.peer, "code": status.code.name, "message": status.message,
                            "request_id": call.requestId.value])
        } else if logger.logLevel <= .debug {
            // The access log: every call, at debug level only (its id only when the client gave one).
            var metadata: Logger.Metadata = ["method": .string(call.method), "peer": .string(call.peer),
                                             "code": "OK", "seconds": .string(String(format: "%.6f", seconds))]
            if call.requestId.fromClient { metadata["request_id"] = .string(ClientText.clip(call.requestId.value, limit: 128)) }
            if let model { metadata["model"] = .string(model.name); metadata["version"] = .string(String(model.version)) }
            logger.debug("call", metadata: metadata)
        }
    }

    func recordRefused(_ error: ServingError, peer: String, requestId: String) {
        callsFinished += 1
        callsFailed += 1
        core.metrics.call(method: "(refused)", code: error.code, seconds: 0)
        emit("call refused", kind: "call refused \(error.code.name)",
             metadata: ["peer": peer, "code": error.code.name, "message": error.message, "request_id": requestId])
    }

    /// Open connections; safe to read from any thread.
    public var openConnections: Int { openConnectionCount.load(ordering: .relaxed) }
    /// False from a drain signal on (during the grace period too): /healthz answers 503.
    var isServing: Bool { !draining && graceDeadline == 0 }

    func log(_ message: String) { emit(message, kind: LogLimiter.kind(message), level: .info) }

    /// Every log line of the server goes through here: the message and each metadata value sanitised with
    /// ClientText (escaped, at most ClientText.logLimit bytes), and lines of one kind rate-limited (LogLimiter).
    private func emit(_ message: String, kind: String, level: Logger.Level = .warning, metadata: [String: String] = [:]) {
        let (write, note) = logLimiter.admit(kind)
        if let note { logger.notice("\(note)") }
        guard write else { return }
        var md: Logger.Metadata = [:]
        for (k, v) in metadata { md[k] = .string(ClientText.clip(v, limit: ClientText.logLimit)) }
        logger.log(level: level, "\(ClientText.clip(message, limit: ClientText.logLimit))", metadata: md.isEmpty ? nil : md)
    }

    /// Notes of rate-limited log kinds whose window closed (from the sweep, about once a second).
    private func flushLogNotes() {
        for note in logLimiter.expire() { logger.notice("\(note)") }
    }

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
    /// Settings that cannot work together.
    case config(String)

    public var description: String {
        switch self {
        case .badAddress(let h, let e): return "cannot use host '\(h)': \(e)"
        case .bind(let a, let e): return "cannot listen on \(a): \(e)"
        case .config(let m): return m
        }
    }
}
