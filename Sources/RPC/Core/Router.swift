// The transport-free service interface: a method is a name, a kind and a handler; a handler gets the request's
// bytes, the call (metadata, deadline, cancellation) and a response sink. Every front door (the libuv protocol of
// docs/protocol.md, a gRPC door) looks methods up in one ServiceRouter and drives the same handlers; nothing here
// knows about sockets, frames or an event loop. docs/architecture.md ("The call core") and
// /work/notes/router-interface.md describe the contract.
import Foundation
import Serving

/// How a call ends: a gRPC status code, a message for the caller, for INVALID_ARGUMENT the request field at fault,
/// and trailing metadata (lower-case keys).
public struct CallStatus: Sendable, CustomStringConvertible {
    public var code: StatusCode
    public var message: String
    public var field: String
    public var trailingMetadata: [(key: String, value: String)]

    public init(_ code: StatusCode, _ message: String = "", field: String = "",
                trailingMetadata: [(key: String, value: String)] = []) {
        self.code = code
        self.message = message
        self.field = field
        self.trailingMetadata = trailingMetadata
    }

    public init(_ error: ServingError) { self.init(error.code, error.message, field: error.field) }

    public static let ok = CallStatus(.ok)

    public var description: String { message.isEmpty ? code.name : "\(code.name): \(message)" }

    /// This status with the call's request id as trailing metadata `x-request-id`, when the client sent one or the
    /// call failed (then the id the server logged it under); unchanged otherwise, or when the handler set one.
    public func echoingRequestId(_ requestId: RequestId) -> CallStatus {
        guard requestId.fromClient || code != .ok,
              !trailingMetadata.contains(where: { $0.key == RequestId.key }) else { return self }
        var status = self
        status.trailingMetadata.append((key: RequestId.key, value: requestId.value))
        return status
    }

    /// `echoingRequestId` with `call`'s id, read only when it is echoed: a successful call whose client sent no id
    /// makes none up (a getrandom system call and string formatting; made for every call, ids were a tenth of the
    /// server thread's time on Health calls, docs/benchmarks.md).
    public func echoingRequestId(of call: RPCCall) -> CallStatus {
        guard code != .ok || call.hasClientRequestId else { return self }
        return echoingRequestId(call.requestId)
    }
}

/// The id a call is logged under and echoed with: the client's `x-request-id` metadata when it is 1 to 128 visible
/// ASCII bytes (0x21-0x7E), else 16 hex digits the server makes up.
public struct RequestId: Sendable, Equatable {
    public static let key = "x-request-id"
    public let value: String
    public let fromClient: Bool

    public init(value: String, fromClient: Bool) { (self.value, self.fromClient) = (value, fromClient) }

    public init(metadata: [(key: String, value: String)]) {
        if let given = RequestId.clientValue(in: metadata) {
            (value, fromClient) = (given, true)
        } else {
            (value, fromClient) = (RequestId.generate(), false)
        }
    }

    /// The client's `x-request-id` in `metadata` when it is usable.
    static func clientValue(in metadata: [(key: String, value: String)]) -> String? {
        guard let given = metadata.first(where: { $0.key == RequestId.key })?.value, RequestId.isUsable(given) else { return nil }
        return given
    }

    static func isUsable(_ text: String) -> Bool {
        let bytes = text.utf8
        return (1...128).contains(bytes.count) && bytes.allSatisfy { (0x21...0x7E).contains($0) }
    }

    static func generate() -> String {
        let n = UInt64.random(in: .min ... .max)
        let hex = String(n, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// Where a handler sends its answer. Thread-safe: any method may be called from any thread, at any time, also after
/// the call ended (then it does nothing). The first `finish` ends the call; later ones are ignored.
public protocol ResponseSink: AnyObject, Sendable {
    /// One response message (a unary method sends exactly one, then `finish(.ok)`). Returns false once the call has
    /// ended (finished, cancelled, past its deadline, connection gone): a streaming handler stops producing then.
    @discardableResult func message(_ payload: [UInt8]) -> Bool
    /// Ends the call with its status.
    func finish(_ status: CallStatus)
    /// One last message and `finish(.ok)` as one step (a transport may queue them together).
    func respond(_ payload: [UInt8])
}

extension ResponseSink {
    public func respond(_ payload: [UInt8]) {
        message(payload)
        finish(.ok)
    }

    public func fail(_ error: ServingError) { finish(CallStatus(error)) }

    /// Answers with `encode(value)` or the error. Encoding runs on the calling thread: call it from the thread that
    /// produced the value (a worker), never from an event loop, for answers that may be large.
    public func complete<T>(_ result: Result<T, ServingError>, encode: (T) -> [UInt8]) {
        switch result {
        case .success(let value): respond(encode(value))
        case .failure(let error): fail(error)
        }
    }
}

/// One call as a handler sees it: the method, the client's metadata, the deadline and cancellation, the peer.
public final class RPCCall: @unchecked Sendable {
    /// The full method name, "/r2ec.v1.Recommender/Recommend".
    public let method: String
    /// The client's metadata; keys lower-cased (metadata keys are case-insensitive, as in HTTP/2).
    public let metadata: [(key: String, value: String)]
    /// Deadline and cancellation, shared with the serving core's queues and workers.
    public let context: CallContext
    /// Who called ("127.0.0.1:53122"), for logs.
    public let peer: String
    /// When the call was opened (DispatchTime.uptimeNanoseconds).
    public let opened: UInt64

    private let lock = NSLock()
    private var ended = false
    private var endHooks: [@Sendable () -> Void] = []
    private var servedModelValue: ServedModelLabel?
    private var requestIdValue: RequestId?

    /// The model that answered (name and version), set by the handler that resolved it: the call's metrics carry it
    /// as labels. nil for calls of no model (Health, Events).
    public var servedModel: ServedModelLabel? {
        get { lock.lock(); defer { lock.unlock() }; return servedModelValue }
        set { lock.lock(); servedModelValue = newValue; lock.unlock() }
    }

    /// True when the client sent a usable `x-request-id` (reading it makes nothing up).
    public var hasClientRequestId: Bool { RequestId.clientValue(in: metadata) != nil }

    /// The call's request id (the client's `x-request-id`, else made up on first use: most calls never need one).
    public var requestId: RequestId {
        lock.lock(); defer { lock.unlock() }
        if let id = requestIdValue { return id }
        let id = RequestId(metadata: metadata)
        requestIdValue = id
        return id
    }

    public init(method: String, metadata: [(key: String, value: String)] = [], context: CallContext = CallContext(),
                peer: String = "", opened: UInt64 = DispatchTime.now().uptimeNanoseconds) {
        self.method = method
        self.metadata = metadata
        self.context = context
        self.peer = peer
        self.opened = opened
    }

    /// The first value of metadata `key` (matched case-insensitively).
    public func metadata(_ key: String) -> String? {
        let k = key.lowercased()
        return metadata.first { $0.key == k }?.value
    }

    /// True once the call ended in any way (answered, cancelled, deadline, connection closed).
    public var isEnded: Bool { lock.lock(); defer { lock.unlock() }; return ended }

    /// Runs `body` once when the call ends in any way; at once if it already has. Long-lived handlers (Watch)
    /// unregister themselves here.
    public func onEnd(_ body: @escaping @Sendable () -> Void) {
        lock.lock()
        if ended { lock.unlock(); body(); return }
        endHooks.append(body)
        lock.unlock()
    }

    /// Marks the call ended and runs its hooks (transports call this once the call's last frame is decided).
    public func end() {
        lock.lock()
        guard !ended else { lock.unlock(); return }
        ended = true
        let hooks = endHooks
        endHooks = []
        lock.unlock()
        for hook in hooks { hook() }
    }
}

/// The model a call was answered by, as its metrics label it.
public struct ServedModelLabel: Sendable, Hashable {
    public let name: String
    public let version: UInt64
    public init(name: String, version: UInt64) { (self.name, self.version) = (name, version) }
}

/// A method's handler: decode `request`, validate, start the work, answer through `response` (now or later, from
/// any thread). It may run on any thread and must return promptly: long work goes to the serving core's workers.
public typealias RPCHandler = @Sendable (_ request: [UInt8], _ call: RPCCall, _ response: ResponseSink) -> Void

/// One method of a service.
public struct RPCMethod: Sendable {
    public enum Kind: Sendable, Equatable {
        /// One request, one response message.
        case unary
        /// One request, zero or more response messages.
        case serverStreaming
    }

    /// "/r2ec.v1.Health/Check".
    public let name: String
    public let kind: Kind
    /// Needs an admin token when the server runs with authentication.
    public let requiresAdmin: Bool
    /// A stream that only the client (or the server's shutdown) ends, e.g. Health/Watch: a peer that closes its
    /// side ends it (a transport cancels it then instead of waiting for an answer that never comes).
    public let openEnded: Bool
    /// The handler's work before it hands off grows with the request's entries, not its bytes (RecommendBatch
    /// resolves every request's history on the calling thread): a transport runs it off its I/O thread whatever
    /// the request's size. Other handlers run there only for requests of `ServerConfig.offloadRequestBytes` or more.
    public let offLoop: Bool
    public let handler: RPCHandler

    public init(_ name: String, _ kind: Kind = .unary, requiresAdmin: Bool = false, openEnded: Bool = false,
                offLoop: Bool = false, handler: @escaping RPCHandler) {
        self.name = name
        self.kind = kind
        self.requiresAdmin = requiresAdmin
        self.openEnded = openEnded
        self.offLoop = offLoop
        self.handler = handler
    }

    /// The service part of the name: "r2ec.v1.Health".
    public var service: String { String(name.dropFirst().prefix { $0 != "/" }) }
    /// The method part: "Check".
    public var shortName: String { String(name.split(separator: "/").last ?? "") }
}

/// A service: a set of methods under one name ("r2ec.v1.Recommender"); one file per service under Services/.
public protocol RPCService: AnyObject, Sendable {
    var serviceName: String { get }
    var methods: [RPCMethod] { get }
}

/// Method name -> method, over every service. Immutable after init; shared by every transport.
public final class ServiceRouter: Sendable {
    public let services: [RPCService]
    private let table: [String: RPCMethod]

    public init(_ services: [RPCService]) {
        self.services = services
        var table: [String: RPCMethod] = [:]
        for s in services {
            for m in s.methods {
                precondition(m.service == s.serviceName, "\(m.name) is not a method of \(s.serviceName)")
                precondition(table[m.name] == nil, "\(m.name) registered twice")
                table[m.name] = m
            }
        }
        self.table = table
    }

    public subscript(name: String) -> RPCMethod? { table[name] }

    /// Every method name, sorted.
    public var methodNames: [String] { table.keys.sorted() }

    /// The service names.
    public var serviceNames: [String] { services.map(\.serviceName) }
}

/// Bearer-token authentication and the admin rule, the same for every transport. Checked in this order: a valid
/// token (UNAUTHENTICATED), then the method exists (UNIMPLEMENTED, by the caller), then admin methods need an admin
/// token (PERMISSION_DENIED).
public struct CallAuthorizer: Sendable {
    public var tokens: Set<String>
    public var adminTokens: Set<String>

    public init(tokens: Set<String> = [], adminTokens: Set<String> = []) {
        self.tokens = tokens
        self.adminTokens = adminTokens
    }

    public var isEnabled: Bool { !tokens.isEmpty || !adminTokens.isEmpty }

    /// Who the metadata authenticates: nil when authentication is off, else whether the token is an admin's.
    /// The `authorization` key matches case-insensitively, and so does the `Bearer` scheme (RFC 7235/6750), followed
    /// by one or more spaces.
    public func authenticate(_ metadata: [(key: String, value: String)]) throws(ServingError) -> Bool? {
        guard isEnabled else { return nil }
        guard let value = metadata.first(where: { $0.key.lowercased() == "authorization" })?.value else {
            throw ServingError(.unauthenticated, "missing bearer token (metadata 'authorization: Bearer <token>')")
        }
        guard let token = Self.bearerToken(value), !token.isEmpty else {
            throw ServingError(.unauthenticated, "the authorization metadata is not 'Bearer <token>'")
        }
        let isAdmin = TokenCompare.contains(adminTokens, token)
        guard isAdmin || TokenCompare.contains(tokens, token) else {
            throw ServingError(.unauthenticated, "invalid bearer token")
        }
        return isAdmin
    }

    /// The admin rule for an authenticated caller (`isAdmin` from `authenticate`).
    public func authorize(_ method: RPCMethod, isAdmin: Bool?) throws(ServingError) {
        if method.requiresAdmin, isAdmin == false {
            throw ServingError(.permissionDenied, "\(method.name) needs an admin token")
        }
    }

    /// The token of "Bearer <token>" (scheme case-insensitive, then one or more spaces), or nil.
    static func bearerToken(_ value: String) -> String? {
        let bytes = Array(value.utf8)
        guard bytes.count > 7, String(decoding: bytes[0..<6], as: UTF8.self).lowercased() == "bearer",
              bytes[6] == 0x20 else { return nil }
        var i = 6
        while i < bytes.count, bytes[i] == 0x20 { i += 1 }
        return String(decoding: bytes[i...], as: UTF8.self)
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
