// The direct-path batcher: batches fill up to the limit, never wait past the delay, a full queue refuses at once,
// expired requests are never computed, and batched answers equal unbatched ones.
import Data
import Eval
import Foundation
@testable import Serving
import XCTest

/// Scores item i for a history as a fixed function of both, records every scoreAll batch, and can block.
final class RecordingModel: Recommender, @unchecked Sendable {
    let catalog = Catalog(items: (0..<50).map { Item(id: "\($0)", title: "t\($0)") })
    let kind = "recording"
    let configJSON = "{}"
    let numParameters = 0
    private let lock = NSLock()
    private(set) var batches: [[UserHistory]] = []
    var gate: DispatchSemaphore?

    func scoreAll(_ histories: [UserHistory]) throws -> [Float] {
        gate?.wait()
        lock.lock(); batches.append(histories); lock.unlock()
        return histories.flatMap { h in
            (0..<catalog.count).map { i in Float(sin(Double(i * 7 + h.items.reduce(0, +) * 13))) }
        }
    }

    func similarities(to item: Int) throws -> [Float] { [] }
    var batchSizes: [Int] { lock.lock(); defer { lock.unlock() }; return batches.map(\.count) }
}

/// A served model around `m` with empty statistics.
func servedModel(_ m: Recommender) -> ServedModel {
    ServedModel(name: "m", recommender: m, datasetName: "t", userHistories: [:],
                itemStats: Array(repeating: ItemStats(count: 0, meanRating: 0), count: m.catalog.count))
}

final class DirectBatcherTests: XCTestCase {

    func query(_ items: [Int], topK: Int = 5) -> RecommendQuery {
        var q = RecommendQuery()
        q.history = HistorySpec(events: items.map { HistoryEvent(itemId: "\($0)") })
        q.topK = topK
        return q
    }

    /// Submits `queries` and waits for every answer.
    func run(_ core: ServingCore, _ queries: [RecommendQuery], ctx: (Int) -> CallContext = { _ in CallContext() })
        -> [Result<RecommendResult, ServingError>] {
        var results = [Result<RecommendResult, ServingError>?](repeating: nil, count: queries.count)
        let group = DispatchGroup()
        let lock = NSLock()
        for (i, q) in queries.enumerated() {
            group.enter()
            core.recommend(q, ctx: ctx(i)) { r in lock.lock(); results[i] = r; lock.unlock(); group.leave() }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 20), .success)
        return results.map { $0! }
    }

    /// A serving core over a fresh RecordingModel batching as `batching` says; with `gated`, the model waits on the
    /// returned gate before each batch (one signal lets one batch through). Shut the core down after the test.
    func recordingCore(_ batching: BatchingConfig, gated: Bool = false) -> (core: ServingCore, model: RecordingModel, gate: DispatchSemaphore) {
        let model = RecordingModel()
        let gate = DispatchSemaphore(value: 0)
        if gated { model.gate = gate }
        let registry = ModelRegistry()
        registry.install(servedModel(model))
        return (ServingCore(registry: registry, batching: batching), model, gate)
    }

    func testBatchesFillUpToTheLimit() {
        var cfg = BatchingConfig()
        cfg.maxBatchSize = 8
        cfg.maxQueueDelayMicros = 200_000
        let (core, model, gate) = recordingCore(cfg, gated: true)
        defer { core.shutdown() }
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { for _ in 0..<10 { gate.signal() } }
        let results = run(core, (0..<20).map { query([$0]) })
        XCTAssertTrue(results.allSatisfy { if case .success = $0 { return true } else { return false } })
        XCTAssertEqual(model.batchSizes.reduce(0, +), 20)
        XCTAssertTrue(model.batchSizes.allSatisfy { $0 <= 8 }, "\(model.batchSizes)")
        XCTAssertEqual(model.batchSizes.first, 8, "the first batch fills to the limit before its delay ends")
    }

    func testALoneRequestWaitsNoLongerThanTheDelay() {
        var cfg = BatchingConfig()
        cfg.maxQueueDelayMicros = 50_000
        let (core, model, _) = recordingCore(cfg)
        defer { core.shutdown() }
        let t0 = Date()
        _ = run(core, [query([1])])
        let waited = Date().timeIntervalSince(t0)
        XCTAssertGreaterThanOrEqual(waited, 0.045)
        XCTAssertLessThan(waited, 0.5)
        XCTAssertEqual(model.batchSizes, [1])
    }

    func testAFullQueueRefusesAtOnce() {
        var cfg = BatchingConfig()
        cfg.maxBatchSize = 1
        cfg.maxQueueDelayMicros = 0
        cfg.maxQueueSize = 3
        let (core, _, gate) = recordingCore(cfg, gated: true)
        defer { core.shutdown() }
        func waitUntil(_ cond: () -> Bool) {
            let deadline = Date().addingTimeInterval(5)
            while !cond() && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        }
        let accepted = DispatchGroup()
        var answers = [Result<RecommendResult, ServingError>]()
        let lock = NSLock()
        func submit(_ i: Int) {
            accepted.enter()
            core.recommend(query([i]), ctx: CallContext()) { r in lock.lock(); answers.append(r); lock.unlock(); accepted.leave() }
        }
        submit(0)
        waitUntil { core.batcher.queued == 0 }  // the worker holds request 0, blocked in the model
        for i in 1...3 { submit(i) }
        XCTAssertEqual(core.batcher.queued, 3)
        let t0 = Date()
        let refused = run(core, [query([9])])
        XCTAssertLessThan(Date().timeIntervalSince(t0), 0.1)
        guard case .failure(let e) = refused[0] else { return XCTFail("expected RESOURCE_EXHAUSTED") }
        XCTAssertEqual(e.code, .resourceExhausted)
        for _ in 0..<4 { gate.signal() }
        XCTAssertEqual(accepted.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(answers.filter { if case .success = $0 { return true } else { return false } }.count, 4,
                       "everything accepted is answered")
    }

    func testExpiredRequestsAreNeverComputed() {
        var cfg = BatchingConfig()
        cfg.maxBatchSize = 1
        cfg.maxQueueDelayMicros = 0
        let (core, model, gate) = recordingCore(cfg, gated: true)
        defer { core.shutdown() }
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { for _ in 0..<5 { gate.signal() } }
        // Request 0 blocks the worker for 0.3 s; 1 and 2 expire in the queue meanwhile.
        let results = run(core, [query([0]), query([1]), query([2])]) { i in
            i == 0 ? CallContext() : CallContext(timeoutMs: 50)
        }
        guard case .success = results[0] else { return XCTFail() }
        for r in results[1...] {
            guard case .failure(let e) = r else { return XCTFail("expected DEADLINE_EXCEEDED") }
            XCTAssertEqual(e.code, .deadlineExceeded)
        }
        XCTAssertEqual(model.batches.flatMap { $0 }.map(\.items), [[0]], "only the live request reached the model")
    }

    /// Enqueue runs on the event loop thread: it must not wait while a worker selects a batch (there the worker goes
    /// through the whole queue and answers the requests that were cancelled in it). Here the worker is held inside
    /// that selection, in a cancelled request's answer; a new request must still be accepted. Before, enqueue took
    /// the lock the selection held, and the event loop waited 20-95 ms behind a preempted worker in the soak.
    func testEnqueueDoesNotWaitForAWorkerSelectingABatch() {
        var cfg = BatchingConfig()
        cfg.maxBatchSize = 1
        cfg.maxQueueDelayMicros = 0
        let (core, model, gate) = recordingCore(cfg, gated: true)
        defer { core.shutdown() }
        let answered = DispatchGroup()
        answered.enter()
        core.recommend(query([0]), ctx: CallContext()) { _ in answered.leave() }
        let deadline = Date().addingTimeInterval(5)
        while core.batcher.queued > 0 && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }  // in the model
        let inSelection = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let cancelled = CallContext()
        answered.enter()
        core.recommend(query([1]), ctx: cancelled) { r in
            if case .failure(let e) = r { XCTAssertEqual(e.code, .cancelled) } else { XCTFail("a cancelled request was computed") }
            inSelection.signal()
            release.wait()
            answered.leave()
        }
        cancelled.cancel()
        gate.signal()  // request 0 finishes; the worker's next selection answers request 1 and is held there
        XCTAssertEqual(inSelection.wait(timeout: .now() + 5), .success)
        let accepted = DispatchSemaphore(value: 0)
        answered.enter()
        DispatchQueue.global().async {
            core.recommend(self.query([2]), ctx: CallContext()) { _ in answered.leave() }
            accepted.signal()
        }
        XCTAssertEqual(accepted.wait(timeout: .now() + 5), .success,
                       "enqueue waited for the worker's batch selection")
        release.signal()
        gate.signal()
        XCTAssertEqual(answered.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(model.batches.flatMap { $0 }.map(\.items), [[0], [2]])
    }

    func testBatchedAnswersEqualUnbatchedOnes() throws {
        let model = RecordingModel()
        let registry = ModelRegistry()
        registry.install(servedModel(model))
        let queries = (0..<24).map { query([$0, ($0 * 3) % 50], topK: 7) }
        var one = BatchingConfig()
        one.maxBatchSize = 1
        let unbatchedCore = ServingCore(registry: registry, batching: one)
        let unbatched = run(unbatchedCore, queries)
        unbatchedCore.shutdown()
        var many = BatchingConfig()
        many.maxBatchSize = 16
        many.maxQueueDelayMicros = 100_000
        let batchedCore = ServingCore(registry: registry, batching: many)
        let batched = run(batchedCore, queries)
        batchedCore.shutdown()
        XCTAssertTrue(model.batchSizes.contains { $0 > 1 })
        for (a, b) in zip(unbatched, batched) {
            XCTAssertEqual(try a.get(), try b.get())
        }
    }

    func testPriorityOutOfRangeIsRefused() {
        let registry = ModelRegistry()
        registry.install(servedModel(RecordingModel()))
        let core = ServingCore(registry: registry)
        defer { core.shutdown() }
        var q = query([1])
        q.priority = 7
        guard case .failure(let e) = run(core, [q])[0] else { return XCTFail() }
        XCTAssertEqual(e.field, "priority")
    }
}
