// A server on a loopback port in this process, for benchmarks that need a target and a configuration of their own.
import Foundation
import RPC
import Serving

final class InProcessServer {
    let server: Server
    let port: Int
    private let thread: Thread

    /// `live` (given the core's metrics) makes it a server with a store, as `serve --store`.
    init(registry: ModelRegistry, batching: BatchingConfig = BatchingConfig(),
         reasoning: ReasoningConfig = ReasoningConfig(), live: ((ServingMetrics) -> LiveLoop)? = nil) throws {
        var config = ServerConfig()
        config.port = 0
        let core = ServingCore(registry: registry, batching: batching, reasoning: reasoning)
        core.live = live?(core.metrics)
        let server = Server(config: config, core: core)
        let ready = DispatchSemaphore(value: 0)
        let bound = Box(0)
        let failure = Box<Error?>(nil)
        let thread = Thread {
            do { try server.run { bound.value = $0; ready.signal() } } catch { failure.value = error; ready.signal() }
        }
        thread.start()
        ready.wait()
        if let error = failure.value { throw error }
        self.server = server
        self.port = bound.value
        self.thread = thread
    }

    /// Drains and waits for the loop to end.
    func stop() {
        server.shutdown()
        while !thread.isFinished { Thread.sleep(forTimeInterval: 0.01) }
    }
}

/// A value handed between threads where the hand-over itself orders the accesses (a semaphore, a join).
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
