// Dynamic batching of direct-path (no reasoning) recommendations, after Triton's dynamic batcher: requests queue
// by priority; a worker takes up to max_batch_size requests for one model, waiting at most max_queue_delay after the
// oldest arrived for the batch to fill, and scores them with one scoreAll (one prefill + one GEMM for the dual-head
// network). A full queue refuses at once; a request cancelled or past its deadline is answered, never computed.
import Data
import Foundation

public struct BatchingConfig: Sendable, Equatable {
    public var maxBatchSize = 32
    /// How long the oldest request may wait for its batch to fill, in microseconds.
    public var maxQueueDelayMicros = 1000
    /// Requests waiting at once; one more is answered RESOURCE_EXHAUSTED.
    public var maxQueueSize = 4096
    /// Priority levels (1 is the most urgent); requests with priority 0 get `defaultPriority`.
    public var priorityLevels = 2
    public var defaultPriority = 2
    /// Threads taking batches.
    public var workers = 1
    public init() {}
}

public final class DirectBatcher: @unchecked Sendable {
    struct Pending {
        let prepared: RecommendService.Prepared
        let model: ServedModel
        let probabilities: Bool
        /// Index of its FIFO in `queues` (priority level - 1).
        let queue: Int
        let ctx: CallContext
        let enqueued: UInt64
        let done: (Result<RecommendResult, ServingError>) -> Void
    }

    public let config: BatchingConfig
    /// Guards `arrivals`, `count`, `stopping` and `running`, and is held only to append to or take `arrivals`, never
    /// for work that grows with the queue: enqueue runs on the event loop thread, and a worker that held this lock
    /// through a batch selection over thousands of queued requests, and was preempted there, kept the loop waiting
    /// 20-95 ms (docs/reliability.md, Soak).
    private let inbox = NSCondition()
    private var arrivals: [Pending] = []
    /// Requests accepted and not yet taken into a batch or dropped (arrivals and queues).
    private var count = 0
    private var stopping = false
    private var running = 0
    /// The workers' own state, guarded by `selecting` (only workers take it): one FIFO per priority level, most
    /// urgent first.
    private let selecting = NSLock()
    private var queues: [[Pending]]
    private var threads: [Thread] = []
    private let metrics: ServingMetrics?

    public init(config: BatchingConfig, metrics: ServingMetrics? = nil) {
        precondition(config.maxBatchSize >= 1 && config.priorityLevels >= 1 && config.workers >= 1)
        self.config = config
        self.metrics = metrics
        queues = Array(repeating: [], count: config.priorityLevels)
        running = config.workers
        for i in 0..<config.workers {
            let t = Thread { [unowned self] in self.loop() }
            t.name = "r2ec-batcher-\(i)"
            t.stackSize = 8 << 20
            threads.append(t)
            t.start()
        }
    }

    /// The queue level of a request's `priority` (0 = the default level); INVALID_ARGUMENT naming `priority` beyond
    /// the configured levels. Checked for every Recommend, reasoning ones included, so a request is valid or not
    /// whatever its mode.
    func level(of priority: Int) throws -> Int {
        let level = priority == 0 ? config.defaultPriority : priority
        guard level >= 1, level <= config.priorityLevels else {
            throw ServingError.invalid("priority", "\(priority) is out of range 0...\(config.priorityLevels)")
        }
        return level
    }

    /// Queues a prepared request at `level` (from `level(of:)`); RESOURCE_EXHAUSTED at once when the queue is full.
    func enqueue(_ p: RecommendService.Prepared, model: ServedModel, probabilities: Bool, level: Int,
                 ctx: CallContext, done: @escaping (Result<RecommendResult, ServingError>) -> Void) throws {
        let pending = Pending(prepared: p, model: model, probabilities: probabilities, queue: level - 1, ctx: ctx,
                              enqueued: DispatchTime.now().uptimeNanoseconds, done: done)
        inbox.lock()
        defer { inbox.unlock() }
        guard !stopping else { throw ServingError(.unavailable, "server is shutting down") }
        guard count < config.maxQueueSize else {
            metrics?.limitHit("queue_size")
            throw ServingError(.resourceExhausted, "queue full (\(config.maxQueueSize) requests waiting); retry later")
        }
        arrivals.append(pending)
        count += 1
        inbox.signal()
    }

    public var queued: Int { inbox.lock(); defer { inbox.unlock() }; return count }

    /// Computes what is queued, then stops the workers.
    public func shutdown() {
        inbox.lock()
        stopping = true
        inbox.broadcast()
        while running > 0 { inbox.wait() }
        inbox.unlock()
    }

    private func loop() {
        while let batch = nextBatch() {
            compute(batch)
        }
        inbox.lock()
        running -= 1
        inbox.broadcast()
        inbox.unlock()
    }

    /// Moves the arrivals into the queues (O(1) under `inbox`: the arrays are swapped); true when stopping.
    private func takeArrivals() -> Bool {
        inbox.lock()
        var taken: [Pending] = []
        swap(&taken, &arrivals)
        let stop = stopping
        inbox.unlock()
        for p in taken { queues[p.queue].append(p) }
        return stop
    }

    /// Waits for an arrival (or the stop), at most until `deadline` when given.
    private func awaitArrival(until deadline: Date? = nil) {
        inbox.lock()
        defer { inbox.unlock() }
        guard arrivals.isEmpty, !stopping else { return }
        if let deadline { _ = inbox.wait(until: deadline) } else { inbox.wait() }
    }

    /// Requests leave the count when they are taken into a batch or dropped.
    private func leave(_ n: Int) {
        guard n > 0 else { return }
        inbox.lock()
        count -= n
        inbox.unlock()
    }

    /// The oldest most-urgent request's model decides the batch; same-model requests join it, most urgent first.
    private func nextBatch() -> [Pending]? {
        selecting.lock()
        defer { selecting.unlock() }
        while true {
            let stop = takeArrivals()
            leave(dropStopped())
            guard let head = queues.lazy.compactMap(\.first).first else {
                if stop { return nil }
                awaitArrival()
                continue
            }
            let model = ObjectIdentifier(head.model)
            let available = queues.reduce(0) { $0 + $1.lazy.filter { ObjectIdentifier($0.model) == model }.count }
            let flushAt = head.enqueued + UInt64(config.maxQueueDelayMicros) * 1000
            let now = DispatchTime.now().uptimeNanoseconds
            if available < config.maxBatchSize && now < flushAt && !stop {
                awaitArrival(until: Date(timeIntervalSinceNow: Double(flushAt - now) / 1e9))
                continue
            }
            var batch: [Pending] = []
            for level in queues.indices where batch.count < config.maxBatchSize {
                var kept: [Pending] = []
                for p in queues[level] {
                    if batch.count < config.maxBatchSize && ObjectIdentifier(p.model) == model { batch.append(p) } else { kept.append(p) }
                }
                queues[level] = kept
            }
            leave(batch.count)
            return batch
        }
    }

    /// Answers (without computing) every queued request that was cancelled or whose deadline passed; how many.
    private func dropStopped() -> Int {
        var dropped = 0
        for level in queues.indices where queues[level].contains(where: { $0.ctx.stopReason != nil }) {
            var kept: [Pending] = []
            for p in queues[level] {
                if let stop = p.ctx.stopReason { p.done(.failure(stop)); dropped += 1 } else { kept.append(p) }
            }
            queues[level] = kept
        }
        return dropped
    }

    private func compute(_ batch: [Pending]) {
        // A deadline may have passed while the batch waited to fill.
        var live: [Pending] = []
        for p in batch {
            if let stop = p.ctx.stopReason { p.done(.failure(stop)) } else { live.append(p) }
        }
        guard let model = live.first?.model else { return }
        let start = DispatchTime.now().uptimeNanoseconds
        do {
            let results = try RecommendService.recommendDirect(live.map(\.prepared), model: model,
                                                               probabilities: live.map(\.probabilities))
            let end = DispatchTime.now().uptimeNanoseconds
            metrics?.batch(path: "direct", model: model.name, version: model.version, size: live.count, queueSeconds: live.map { Double(start - $0.enqueued) / 1e9 },
                           computeSeconds: Double(end - start) / 1e9)
            for (p, r) in zip(live, results) { p.done(.success(r)) }
        } catch let e as ServingError {
            for p in live { p.done(.failure(e)) }
        } catch {
            for p in live { p.done(.failure(ServingError(.internal, "model error: \(error)"))) }
        }
    }
}
