// The gRPC front door: `r2ec serve --grpc-port N` serves every method of Protos/ over real gRPC (HTTP/2, grpc-swift 2
// on swift-nio, TLS through swift-nio-ssl) beside the custom protocol. Each call's request bytes go to the handler
// the custom protocol uses (the ServiceRouter of RPC); the door only maps what gRPC carries onto the call core's
// terms: grpc-timeout -> the call's deadline, RST_STREAM -> cancellation, `authorization` metadata -> the same
// tokens (CallAuthorizer), CallStatus -> grpc-status and trailers, and grpc.health.v1 onto r2ec.v1.Health.
#if GRPC
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import RPC
import Serving

/// Settings of the gRPC port.
public struct GRPCDoorConfig: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port.
    public var port = 0
    /// PEM certificate chain and private key: both or neither (plaintext HTTP/2, "h2c").
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// Largest request message accepted (the custom protocol's frame limit); a larger one is RESOURCE_EXHAUSTED.
    public var maxRequestBytes = 4 << 20
    /// Deadline for calls that carry no grpc-timeout, in milliseconds; 0 = none (as the custom protocol's).
    public var defaultTimeoutMs: Int64 = 0
    /// Bearer tokens, as the custom protocol's (empty: authentication off).
    public var authorizer = CallAuthorizer()

    public init() {}
}

/// Why the gRPC port could not start.
public struct GRPCDoorError: Error, CustomStringConvertible {
    public let description: String
    init(_ text: String) { description = text }
}

/// The gRPC server beside the custom protocol's: `start()` once, `shutdown()` to drain, `wait` for the end.
public final class GRPCDoor: @unchecked Sendable {
    public let config: GRPCDoorConfig
    let router: ServiceRouter
    let metrics: ServingMetrics?
    private var server: GRPCServer<HTTP2ServerTransport.Posix>?
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var inFlight = 0
    public private(set) var boundPort = 0
    /// Why serve() ended with an error, if it did.
    public private(set) var failure: Error?

    /// grpc.health.v1's messages have the same fields and numbers as r2ec.v1.Health's (service = 1; status = 1,
    /// with the same four states), so its calls go to r2ec.v1.Health unchanged.
    static let healthAliases = ["/grpc.health.v1.Health/Check": "/r2ec.v1.Health/Check",
                                "/grpc.health.v1.Health/Watch": "/r2ec.v1.Health/Watch"]

    /// `router` serves the calls (the custom server's, so both doors share handlers and health); `metrics` counts
    /// them beside the custom protocol's calls.
    public init(config: GRPCDoorConfig, router: ServiceRouter, metrics: ServingMetrics? = nil) {
        self.config = config
        self.router = router
        self.metrics = metrics
    }

    /// Every method the door routes: each rpc of Protos/ (Methods.generated.swift) and grpc.health.v1's two, as
    /// (path, service, method, server streaming, the router's path it calls).
    static var routes: [(path: String, service: String, method: String, streaming: Bool, target: String)] {
        GeneratedMethods.all.map { ($0.path, $0.service, $0.method, $0.serverStreaming, $0.path) }
            + healthAliases.keys.sorted().map { alias in
                let parts = alias.split(separator: "/").map(String.init)
                return (alias, parts[0], parts[1], parts[1] == "Watch", healthAliases[alias]!)
            }
    }

    /// Binds and starts serving on a background task; returns the bound port once listening.
    @discardableResult
    public func start() throws -> Int {
        let security: HTTP2ServerTransport.Posix.TransportSecurity
        switch (config.tlsCertificatePath, config.tlsKeyPath) {
        case (nil, nil):
            security = .plaintext
        case (let cert?, let key?):
            for (flag, path) in [("--tls-cert", cert), ("--tls-key", key)] {
                guard FileManager.default.isReadableFile(atPath: path) else {
                    throw GRPCDoorError("\(flag): cannot read '\(path)'")
                }
            }
            security = .tls(certificateChain: [.file(path: cert, format: .pem)],
                            privateKey: .file(path: key, format: .pem))
        case (_?, nil):
            throw GRPCDoorError("--tls-cert needs --tls-key (TLS takes both; plaintext neither)")
        case (nil, _?):
            throw GRPCDoorError("--tls-key needs --tls-cert (TLS takes both; plaintext neither)")
        }
        // The transport resets a stream whose message passes its limit (clients see CANCELLED); the door checks the
        // real limit itself to answer RESOURCE_EXHAUSTED, so the transport's is twice it (still a bound on memory).
        let maxBytes = config.maxRequestBytes > Int.max / 2 ? Int.max : 2 * config.maxRequestBytes
        let transport = HTTP2ServerTransport.Posix(
            address: config.host.contains(":") ? .ipv6(host: config.host, port: config.port)
                                                : .ipv4(host: config.host, port: config.port),
            transportSecurity: security,
            config: .defaults { $0.rpc.maxRequestPayloadSize = maxBytes })
        var grpcRouter = RPCRouter<HTTP2ServerTransport.Posix>()
        for route in GRPCDoor.routes {
            let target = route.target
            let descriptor = MethodDescriptor(fullyQualifiedService: route.service, method: route.method)
            grpcRouter.registerHandler(forMethod: descriptor, deserializer: RawDeserializer(),
                                       serializer: RawSerializer()) { [self] request, context in
                try await handle(target, request: request, context: context)
            }
        }
        let server = GRPCServer(transport: transport, router: grpcRouter)
        self.server = server
        Task.detached { [self] in
            do { try await server.serve() } catch { lock.withLock { failure = error } }
            done.signal()
        }
        // Wait for the bind (or its failure) from a synchronous caller.
        let bound = DispatchSemaphore(value: 0)
        let result = Box<Result<Int, Error>>(.failure(GRPCDoorError("not bound")))
        Task.detached {
            do {
                let address = try await transport.listeningAddress
                if let port = address.ipv4?.port ?? address.ipv6?.port { result.value = .success(port) }
                else { result.value = .failure(GRPCDoorError("the gRPC port is not an IP socket: \(address)")) }
            } catch {
                result.value = .failure(error)
            }
            bound.signal()
        }
        bound.wait()
        switch result.value {
        case .success(let port):
            boundPort = port
            return port
        case .failure(let error):
            server.beginGracefulShutdown()
            let cause = lock.withLock { failure } ?? error
            throw GRPCDoorError("cannot listen for gRPC on \(config.host):\(config.port): \(cause)")
        }
    }

    /// Stops accepting calls (GOAWAY on every connection); calls in flight finish. Returns at once.
    public func shutdown() { server?.beginGracefulShutdown() }

    /// Waits at most `seconds` for the server to stop after `shutdown()`; false on timeout.
    @discardableResult
    public func wait(seconds: Double) -> Bool {
        done.wait(timeout: .now() + seconds) == .success
    }

    /// Calls being answered now.
    public var callsInFlight: Int { lock.withLock { inFlight } }

    // MARK: Calls

    func handle(_ path: String, request: StreamingServerRequest<[UInt8]>,
                context: ServerContext) async throws -> StreamingServerResponse<[UInt8]> {
        let opened = DispatchTime.now().uptimeNanoseconds
        var metadata: [(key: String, value: String)] = []
        var timeoutText: String?
        for entry in request.metadata {
            guard case .string(let value) = entry.value else { continue }
            if entry.key == "grpc-timeout" { timeoutText = value }
            metadata.append((entry.key.lowercased(), value))
        }
        // The custom protocol's order: a valid token, the method exists, the admin rule.
        let method: RPCMethod
        do {
            let isAdmin = try config.authorizer.authenticate(metadata)
            guard let m = router[path] else { throw ServingError(.unimplemented, "unknown method '\(path)'") }
            try config.authorizer.authorize(m, isAdmin: isAdmin)
            method = m
        } catch let error as ServingError {
            record(path, error.code, since: opened)
            throw RPCError(CallStatus(error).echoingRequestId(RequestId(metadata: metadata)))
        }
        var deadline: UInt64?
        if let timeoutText {
            guard let nanos = GRPCTimeout.nanoseconds(timeoutText) else {
                record(path, .invalidArgument, since: opened)
                throw RPCError(code: .invalidArgument,
                               message: "grpc-timeout: '\(timeoutText)' is not 1 to 8 digits and a unit (H, M, S, m, u, n)")
            }
            deadline = nanos >= UInt64.max - opened ? nil : opened + nanos
        } else if config.defaultTimeoutMs > 0 {
            deadline = opened + UInt64(config.defaultTimeoutMs) * 1_000_000
        }

        // Exactly one request message, as on the custom protocol (no rpc of Protos/ streams from the client).
        var payload: [UInt8]?
        for try await message in request.messages {
            guard payload == nil else {
                record(path, .invalidArgument, since: opened)
                throw RPCError(code: .invalidArgument, message: "a call takes exactly one request message")
            }
            guard message.count <= config.maxRequestBytes else {
                metrics?.limitHit("frame_size")
                record(path, .resourceExhausted, since: opened)
                throw RPCError(code: .resourceExhausted, message: "request message of \(message.count) bytes exceeds "
                               + "the server's limit of \(config.maxRequestBytes) (--max-frame-bytes)")
            }
            payload = message
        }
        guard let payload else {
            record(path, .invalidArgument, since: opened)
            throw RPCError(code: .invalidArgument, message: "the call carried no request message")
        }

        let deadlineAt = deadline
        let call = RPCCall(method: path, metadata: metadata, context: CallContext(deadline: deadlineAt),
                           peer: context.remotePeer, opened: opened)
        let sink = GRPCCallSink(call: call) { [weak self] status in
            self?.record(path, status.code, since: opened, model: call.servedModel)
            self?.lock.withLock { self?.inFlight -= 1 }
        }
        lock.withLock { inFlight += 1 }
        // RST_STREAM from the client, the connection closing, or grpc-swift's own grpc-timeout timer.
        let onCancel: @Sendable () -> Void = {
            if let d = deadlineAt, DispatchTime.now().uptimeNanoseconds + 2_000_000 >= d {
                sink.end(CallStatus(.deadlineExceeded, "deadline exceeded"))
            } else {
                sink.end(CallStatus(.cancelled, "cancelled by the client"))
            }
        }
        let timer = deadline.map { d in
            Task.detached {
                let now = DispatchTime.now().uptimeNanoseconds
                if d > now { try? await Task.sleep(nanoseconds: d - now) }
                guard !Task.isCancelled else { return }
                sink.end(CallStatus(.deadlineExceeded, "deadline exceeded"))
            }
        }
        if let d = deadline, d <= opened {
            sink.end(CallStatus(.deadlineExceeded, "deadline already passed when the call arrived"))
        } else {
            method.handler(payload, call, sink)
        }

        var events = sink.events.makeAsyncIterator()
        let first = await withRPCCancellationHandler { await events.next() } onCancelRPC: { onCancel() }
        switch first {
        case nil:
            timer?.cancel()
            throw RPCError(code: .internalError, message: "the call ended without a status")
        case .finish(let status)?:
            timer?.cancel()
            guard status.code == .ok else { throw RPCError(status) }
            return StreamingServerResponse(of: [UInt8].self) { _ in Metadata(status.trailingMetadata) }
        case .message(let firstMessage)?:
            let rest = Box(events)
            return StreamingServerResponse(of: [UInt8].self) { writer in
                defer { timer?.cancel() }
                try await writer.write(firstMessage)
                return try await withRPCCancellationHandler {
                    while let event = await rest.value.next() {
                        switch event {
                        case .message(let m): try await writer.write(m)
                        case .finish(let status):
                            guard status.code == .ok else { throw RPCError(status) }
                            return Metadata(status.trailingMetadata)
                        }
                    }
                    throw RPCError(code: .internalError, message: "the call ended without a status")
                } onCancelRPC: { onCancel() }
            }
        }
    }

    private func record(_ path: String, _ code: StatusCode, since opened: UInt64, model: ServedModelLabel? = nil) {
        metrics?.call(method: path, code: code, seconds: Double(DispatchTime.now().uptimeNanoseconds - opened) / 1e9,
                      model: model?.name ?? "", version: model?.version)
    }
}

/// The door's ResponseSink: messages and the status become events the call's task writes to the HTTP/2 stream.
/// Thread-safe; the first finish (or end: cancel, deadline) wins and ends the RPCCall, running its end hooks.
final class GRPCCallSink: ResponseSink, @unchecked Sendable {
    enum Event {
        case message([UInt8])
        case finish(CallStatus)
    }

    let events: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation
    private let call: RPCCall?
    private let onFinish: @Sendable (CallStatus) -> Void
    private let lock = NSLock()
    private var finished = false

    init(call: RPCCall?, onFinish: @escaping @Sendable (CallStatus) -> Void = { _ in }) {
        (events, continuation) = AsyncStream<Event>.makeStream(bufferingPolicy: .unbounded)
        self.call = call
        self.onFinish = onFinish
    }

    @discardableResult
    func message(_ payload: [UInt8]) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard !finished else { return false }
        continuation.yield(.message(payload))
        return true
    }

    func finish(_ status: CallStatus) {
        let status = call.map { status.echoingRequestId(of: $0) } ?? status
        lock.lock()
        guard !finished else { lock.unlock(); return }
        finished = true
        continuation.yield(.finish(status))
        continuation.finish()
        lock.unlock()
        onFinish(status)
        call?.end()
    }

    /// The call stops for a reason of the door's (cancel, deadline): the work is told to stop, then it finishes.
    func end(_ status: CallStatus) {
        call?.context.cancel()
        finish(status)
    }
}

/// A mutable value handed between tasks where the handoff itself orders the accesses.
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

extension RPCError {
    /// The call core's codes are gRPC's canonical codes; the field at fault travels in trailing metadata
    /// `r2ec-field` (the custom protocol's Status.field), with the status's own trailing metadata.
    init(_ status: CallStatus) {
        let code = Status.Code(rawValue: Int(status.code.rawValue)).flatMap { RPCError.Code($0) } ?? .unknown
        var metadata = Metadata(status.trailingMetadata)
        if !status.field.isEmpty { metadata.addString(status.field, forKey: "r2ec-field") }
        self.init(code: code, message: status.message, metadata: metadata)
    }
}

extension Metadata {
    init(_ pairs: [(key: String, value: String)]) {
        self.init()
        for (key, value) in pairs { addString(value, forKey: key) }
    }
}
#endif
