// The server's metrics in a Prometheus registry (swift-prometheus), after Triton's: calls by method, status and the
// model (name, version) that answered, call, queue and compute time, batch sizes, queue depths, reasoning tokens and
// their rate, connections, limit hits; then the process's own (ProcessMetrics). Exposed as Prometheus text by the
// RPC layer's /metrics endpoint. Never holds tokens or request contents. Names follow Prometheus' rules (base units,
// the unit once, `_total` on counters); clients/python/tests/test_metrics.py checks the exposed text.
import Foundation
import Prometheus
import Synchronization

public final class ServingMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let latencyBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    private let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    private let rateBuckets: [Double] = [10, 30, 100, 300, 1000, 3000, 10000, 30000]
    private let lagBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]

    private func d(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "r2ec", metricName: name, unitName: unit, helpText: help)
    }

    public init() {
        loopLagHistogram = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(namespace: "r2ec", metricName: "event_loop_lag", unitName: "seconds",
                                             helpText: "How late the event loop's 10 ms timer fired (the loop was busy or not scheduled)."),
            labels: [], buckets: lagBuckets)
    }

    /// The per-call collectors by method and code, looked up once: the registry's own lookup (labels, lock)
    /// costs more than a whole Health call.
    private let callCollectors = Mutex<[CallKey: (Counter, ValueHistogram)]>([:])
    private struct CallKey: Hashable { let method: String; let code: StatusCode; let model: String; let version: UInt64? }

    /// A finished call: its method, status, the model that answered (name and version; "" for calls of no model)
    /// and time from CALL to trailer.
    public func call(method: String, code: StatusCode, seconds: Double, model: String = "", version: UInt64? = nil) {
        let key = CallKey(method: method, code: code, model: model, version: version)
        let (count, duration) = callCollectors.withLock { cache in
            if let c = cache[key] { return c }
            let versionLabel = version.map { String($0) } ?? ""
            let c = (registry.makeCounter(descriptor: d("requests", "total", "Finished calls by method, status code and the model that answered."),
                                          labels: [("method", method), ("code", code.name), ("model", model), ("version", versionLabel)]),
                     registry.makeValueHistogram(descriptor: d("request_duration", "seconds", "Time from CALL to TRAILER."),
                                                 labels: [("method", method), ("model", model), ("version", versionLabel)],
                                                 buckets: latencyBuckets))
            cache[key] = c
            return c
        }
        count.increment()
        duration.record(seconds)
    }

    /// A batch computed by a scheduler: how long its requests waited and how long it took.
    public func batch(path: String, model: String, version: UInt64, size: Int, queueSeconds: [Double],
                      computeSeconds: Double) {
        let labels = [("path", path), ("model", model), ("version", String(version))]
        registry.makeValueHistogram(descriptor: d("batch_size", "requests", "Requests per computed batch."),
                                    labels: labels, buckets: batchBuckets).record(Double(size))
        let queue = registry.makeValueHistogram(descriptor: d("queue_duration", "seconds", "Time a request waited in the queue."),
                                                labels: labels, buckets: latencyBuckets)
        for q in queueSeconds { queue.record(q) }
        registry.makeValueHistogram(descriptor: d("compute_duration", "seconds", "Time a batch spent in the model."),
                                    labels: labels, buckets: latencyBuckets).record(computeSeconds)
    }

    /// Requests waiting on each path now ("direct", "reasoning", "workers"), set when /metrics is read.
    public func queueDepth(path: String, requests: Int) {
        registry.makeGauge(descriptor: d("queue_depth", "requests", "Requests waiting to be computed, by path."),
                           labels: [("path", path)]).set(Double(requests))
    }

    /// One decode iteration of the reasoning scheduler.
    public func decodeStep(tokens: Int, seconds: Double) {
        registry.makeCounter(descriptor: d("reasoning_tokens", "total", "Reasoning tokens generated.")).increment(by: Int64(tokens))
        if seconds > 0 {
            registry.makeValueHistogram(descriptor: d("decode", "tokens_per_second", "Tokens per second of each decode step."),
                                        labels: [], buckets: rateBuckets).record(Double(tokens) / seconds)
        }
    }

    /// How late the loop thread's 10 ms timer fired: time the loop was busy (or not scheduled) while clients waited.
    public func loopLag(seconds: Double) {
        loopLagHistogram.record(seconds)
    }
    private let loopLagHistogram: ValueHistogram

    public func connections(open: Int) {
        registry.makeGauge(descriptor: d("connections", "open", "Open client connections.")).set(Double(open))
    }

    /// A limit was hit (connections, calls per connection, frame size, queue, ...).
    public func limitHit(_ limit: String) {
        registry.makeCounter(descriptor: d("limit_hits", "total", "Requests or connections refused by a limit."),
                             labels: [("limit", limit)]).increment()
    }

    public func protocolViolation() {
        registry.makeCounter(descriptor: d("protocol_violations", "total", "Connections closed for a protocol violation.")).increment()
    }

    /// The exposition text.
    public func render() -> [UInt8] { registry.emitToBuffer() + ProcessMetrics.read().exposition() }
}
