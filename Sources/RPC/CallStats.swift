// Counts of finished calls by method and status code, and of open connections; read by the bench and metrics.
import Serving
import Synchronization

public final class CallStats: Sendable {
    private struct State {
        var calls: [String: [StatusCode: Int]] = [:]
        var openConnections = 0
        var totalConnections = 0
    }
    private let state = Mutex(State())

    public init() {}

    func record(method: String, code: StatusCode) {
        state.withLock { $0.calls[method, default: [:]][code, default: 0] += 1 }
    }

    func connectionOpened() { state.withLock { $0.openConnections += 1; $0.totalConnections += 1 } }
    func connectionClosed() { state.withLock { $0.openConnections -= 1 } }

    /// Finished calls per method and code.
    public var calls: [String: [StatusCode: Int]] { state.withLock { $0.calls } }
    public var openConnections: Int { state.withLock { $0.openConnections } }

    public var summary: String {
        state.withLock { s in
            let total = s.calls.values.reduce(0) { $0 + $1.values.reduce(0, +) }
            let failed = s.calls.values.reduce(0) { $0 + $1.filter { $0.key != .ok }.values.reduce(0, +) }
            return "\(total) call(s), \(failed) failed, \(s.totalConnections) connection(s)"
        }
    }
}
