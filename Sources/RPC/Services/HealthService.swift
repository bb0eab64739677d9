// r2ec.v1.Health (Protos/r2ec/v1/health.proto, the states of grpc.health.v1): Check answers at once; Watch sends
// the current state, then every change until the call ends. Watchers are held until their call ends in any way
// (CANCEL, deadline, connection closed, drain) and removed then.
import Foundation
import Serving

public final class HealthService: RPCService, @unchecked Sendable {
    public let serviceName = "r2ec.v1.Health"
    /// The services Check and Watch know ("" is the server as a whole).
    public let knownServices: Set<String>

    private let lock = NSLock()
    private var serving = true
    private var watchers: [ObjectIdentifier: (call: RPCCall, response: ResponseSink, service: String)] = [:]

    public init(knownServices: Set<String> = ["", "r2ec.v1.Recommender", "r2ec.v1.Health"]) {
        self.knownServices = knownServices
    }

    public var isServing: Bool { lock.lock(); defer { lock.unlock() }; return serving }
    /// Watch calls currently held.
    public var watcherCount: Int { lock.lock(); defer { lock.unlock() }; return watchers.count }

    /// The server stops serving (a drain): every watcher of a known service gets NOT_SERVING, then its call ends
    /// UNAVAILABLE; later Checks answer NOT_SERVING.
    public func stopServing() {
        lock.lock()
        serving = false
        let all = watchers.values
        watchers.removeAll()
        lock.unlock()
        let notServing = ProtoCodec.encodeHealthResponse(serving: false)
        for w in all {
            if knownServices.contains(w.service) { w.response.message(notServing) }
            w.response.finish(CallStatus(.unavailable, "server is shutting down"))
        }
    }

    public var methods: [RPCMethod] {
        [
            RPCMethod("/r2ec.v1.Health/Check") { [self] request, _, response in
                guard let service = decode(response, { try ProtoCodec.decodeHealthRequest(request) }) else { return }
                guard knownServices.contains(service) else {
                    return response.fail(ServingError(.notFound, "service: unknown service '\(service)'", field: "service"))
                }
                response.respond(ProtoCodec.encodeHealthResponse(serving: isServing))
            },
            RPCMethod("/r2ec.v1.Health/Watch", .serverStreaming, openEnded: true) { [self] request, call, response in
                guard let service = decode(response, { try ProtoCodec.decodeHealthRequest(request) }) else { return }
                let key = ObjectIdentifier(call)
                lock.lock()
                let state = serving
                if state { watchers[key] = (call, response, service) }
                lock.unlock()
                // grpc.health.v1: an unknown service is answered SERVICE_UNKNOWN and the watch stays open.
                response.message(knownServices.contains(service) ? ProtoCodec.encodeHealthResponse(serving: state)
                                                                 : ProtoCodec.serviceUnknownResponse)
                guard state else { return response.finish(CallStatus(.unavailable, "server is shutting down")) }
                // Strong on purpose (the hook goes when the call ends); a weak reference's side table reads as a
                // leak to LeakSanitizer.
                call.onEnd { [self] in remove(key) }
            },
        ]
    }

    private func remove(_ key: ObjectIdentifier) {
        lock.lock()
        watchers[key] = nil
        lock.unlock()
    }
}
