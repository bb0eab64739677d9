// RecommendBatch in the serving core: the batch-size limit checked here, once, for every front door; each request
// answered on its own (one bad request fails alone) and the whole answered when the last one is done.
import Foundation

extension ServingCore {
    /// Runs every query of a batch; `done` gets one result per query, in order, on the thread of the last to finish.
    /// An empty batch or one over `limits.maxBatchRequests` fails as a whole (INVALID_ARGUMENT naming `requests`).
    public func recommendBatch(_ queries: [RecommendQuery], ctx: CallContext,
                               done: @escaping (Result<[Result<RecommendResult, ServingError>], ServingError>) -> Void) {
        do {
            guard !queries.isEmpty else { throw ServingError.invalid("requests", "empty batch") }
            try limits.check(queries.count, limits.maxBatchRequests, field: "requests", limit: "batch_requests")
        } catch let e as ServingError {
            if let limit = e.limit { metrics.limitHit(limit) }
            return done(.failure(e))
        } catch {
            return done(.failure(ServingError(.internal, "\(error)")))
        }
        let gather = BatchGather(count: queries.count, done: done)
        for (i, q) in queries.enumerated() {
            recommend(q, ctx: ctx) { gather.set(i, $0) }
        }
    }
}

/// The results of one batch as they arrive from any thread.
private final class BatchGather: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<RecommendResult, ServingError>?]
    private var remaining: Int
    private let done: (Result<[Result<RecommendResult, ServingError>], ServingError>) -> Void

    init(count: Int, done: @escaping (Result<[Result<RecommendResult, ServingError>], ServingError>) -> Void) {
        results = Array(repeating: nil, count: count)
        remaining = count
        self.done = done
    }

    func set(_ i: Int, _ r: Result<RecommendResult, ServingError>) {
        lock.lock()
        results[i] = r
        remaining -= 1
        let finished = remaining == 0
        lock.unlock()
        if finished { done(.success(results.map { $0! })) }
    }
}
