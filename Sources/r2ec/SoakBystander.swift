// The soak's bystander: one client on its own connection calling Health/Check every 20 ms for the whole run, so its
// latency shows what the faults and the load cost a well-behaved client (the soak's target: p99 under 50 ms).
import Foundation
import RPC

final class Bystander: @unchecked Sendable {
    let port: Int
    let until: Date
    private let lock = NSLock()
    private var latencies: [Double] = []
    private var times: [Double] = []
    private var failed = 0

    init(port: Int, until: Date) {
        self.port = port
        self.until = until
    }

    /// The thread that calls; a Thread subclass is not used (the sanitizer builds, Swift 5 mode, cannot inherit
    /// from Foundation's Thread).
    private var thread: Thread?
    func start() {
        let t = Thread { [self] in run() }
        thread = t
        t.start()
    }
    var isFinished: Bool { thread?.isFinished ?? true }

    var latenciesMs: [Double] { lock.lock(); defer { lock.unlock() }; return latencies }

    /// The p99 latency (ms) of each `window` seconds of the run, in order.
    func windowP99(_ window: Double) -> [Double] {
        lock.lock(); defer { lock.unlock() }
        var buckets: [Int: [Double]] = [:]
        for (t, ms) in zip(times, latencies) { buckets[Int(t / window), default: []].append(ms) }
        return buckets.keys.sorted().map { BenchSoak.percentile(buckets[$0]!.sorted(), 0.99) }
    }
    /// Calls that failed (an error status, a broken or refused connection).
    var failures: Int { lock.lock(); defer { lock.unlock() }; return failed }

    private func run() {
        var client: Client?
        let start = Date()
        while Date() < until {
            let t0 = DispatchTime.now().uptimeNanoseconds
            do {
                if client == nil { client = try Client(port: port) }
                _ = try client!.call("/r2ec.v1.Health/Check", [])
                let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
                lock.lock(); latencies.append(ms); times.append(Date().timeIntervalSince(start)); lock.unlock()
            } catch {
                client = nil
                lock.lock(); failed += 1; lock.unlock()
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }
}
