// The serving core's entry points: every Recommender method as "submit, answer later on a worker thread".
// A call that is cancelled or past its deadline when a worker reaches it is answered without being computed.
import Data
import Foundation

public final class ServingCore: @unchecked Sendable {
    public let registry: ModelRegistry
    public let limits: RequestLimits
    public let metrics = ServingMetrics()
    /// Direct-path recommendations, batched.
    public let batcher: DirectBatcher
    /// Reasoning recommendations, batched per decode step.
    public let reasoning: ReasoningScheduler
    /// Everything else (ScoreItems, SimilarItems): one job per call.
    private let workers: WorkerPool
    /// The live loop over a store (`serve --store`): user ids resolve to their stored events, and the Events service
    /// records and upserts. nil: users are those of the models' training data. Set before serving starts.
    public var live: LiveLoop?

    public init(registry: ModelRegistry, workerThreads: Int = 1, batching: BatchingConfig = BatchingConfig(),
                reasoning: ReasoningConfig = ReasoningConfig(), limits: RequestLimits = RequestLimits()) {
        self.registry = registry
        self.limits = limits
        self.workers = WorkerPool(threads: workerThreads, name: "r2ec-model")
        self.batcher = DirectBatcher(config: batching, metrics: metrics)
        self.reasoning = ReasoningScheduler(config: reasoning, metrics: metrics)
    }

    /// Sets the queue-depth gauges (when /metrics is read): direct batching, reasoning, the other calls' workers.
    public func sampleQueueDepths() {
        metrics.queueDepth(path: "direct", requests: batcher.queued)
        metrics.queueDepth(path: "reasoning", requests: reasoning.queued)
        metrics.queueDepth(path: "workers", requests: workers.queued)
    }

    /// Runs `work` on a model worker unless the call is stopped first; `done` runs on that worker.
    public func submit<T>(_ ctx: CallContext, _ work: @escaping () throws -> T,
                          done: @escaping (Result<T, ServingError>) -> Void) {
        workers.submit {
            if let stop = ctx.stopReason { done(.failure(stop)); return }
            do {
                done(.success(try work()))
            } catch let e as ServingError {
                if let limit = e.limit { self.metrics.limitHit(limit) }
                done(.failure(e))
            } catch let e as RecommenderError {
                switch e {
                case .invalidQuery(let m): done(.failure(ServingError(.invalidArgument, m)))
                case .unsupported(let m): done(.failure(ServingError(.failedPrecondition, m)))
                }
            } catch {
                done(.failure(ServingError(.internal, "model error: \(error)")))
            }
        }
    }

    /// Validates on the caller's thread (a bad request never queues), then queues it: direct requests for a batch,
    /// reasoning requests for a decode slot.
    public func recommend(_ q: RecommendQuery, ctx: CallContext, done: @escaping (Result<RecommendResult, ServingError>) -> Void) {
        recommendStream(q, ctx: ctx, onDelta: nil, done: done)
    }

    /// As `recommend`, with every piece of reasoning text passed to `onDelta` as it is written (on a model thread).
    public func recommendStream(_ q: RecommendQuery, ctx: CallContext, onDelta: ((String) -> Void)?,
                                done: @escaping (Result<RecommendResult, ServingError>) -> Void) {
        withStoredHistory(q.history, ctx: ctx, failure: { done(.failure($0)) }) { history in
            var q = q
            q.history = history
            self.enqueue(q, ctx: ctx, onDelta: onDelta, done: done)
        }
    }

    /// With a store, `spec`'s user's stored events read into it first (at once from the cache, else after a store
    /// read on a store thread); without one, or without a user id, `spec` as it is.
    private func withStoredHistory(_ spec: HistorySpec, ctx: CallContext, failure: @escaping (ServingError) -> Void,
                                   then: @escaping (HistorySpec) -> Void) {
        guard let live, !spec.userId.isEmpty, spec.stored == nil else { return then(spec) }
        live.storedHistory(of: spec.userId, ctx: ctx) { result in
            switch result {
            case .success(let events):
                var spec = spec
                spec.stored = events
                then(spec)
            case .failure(let e): failure(e)
            }
        }
    }

    private func enqueue(_ q: RecommendQuery, ctx: CallContext, onDelta: ((String) -> Void)?,
                         done: @escaping (Result<RecommendResult, ServingError>) -> Void) {
        do {
            if let stop = ctx.stopReason { throw stop }
            let model = try registry.model(q.model)
            let level = try batcher.level(of: q.priority)
            let prepared = try RecommendService.prepare(q, for: model, limits: limits)
            switch q.mode {
            case .direct:
                try batcher.enqueue(prepared, model: model, probabilities: q.returnProbabilities, level: level,
                                    ctx: ctx, done: done)
            case .reasoning:
                try reasoning.enqueue(prepared, query: q, model: model, ctx: ctx, onDelta: onDelta, done: done)
            }
        } catch let e as ServingError {
            if let limit = e.limit { metrics.limitHit(limit) }
            done(.failure(e))
        } catch {
            done(.failure(ServingError(.internal, "\(error)")))
        }
    }

    public func scoreItems(_ q: ScoreItemsQuery, ctx: CallContext, done: @escaping (Result<[ScoredItemResult], ServingError>) -> Void) {
        withStoredHistory(q.history, ctx: ctx, failure: { done(.failure($0)) }) { history in
            var q = q
            q.history = history
            self.submit(ctx, { [registry = self.registry, limits = self.limits] in
                try RecommendService.scoreItems(q, model: try registry.model(q.model), limits: limits)
            }, done: done)
        }
    }

    public func similarItems(_ q: SimilarItemsQuery, ctx: CallContext, done: @escaping (Result<[ScoredItemResult], ServingError>) -> Void) {
        submit(ctx, { [registry, limits] in
            try RecommendService.similarItems(q, model: try registry.model(q.model), limits: limits)
        }, done: done)
    }

    /// SearchItems: a pass over the catalogue, on a worker.
    public func searchItems(_ q: ItemSearchQuery, ctx: CallContext,
                            done: @escaping (Result<ItemSearchResult, ServingError>) -> Void) {
        submit(ctx, { [registry, live] in
            try ItemSearch.search(q, model: try registry.model(q.model), stored: { live?.catalogItem($0) })
        }, done: done)
    }

    /// Cheap lookups answered on the caller's thread.
    public func getItems(_ ids: [String], model name: String) throws -> [ItemInfo] {
        do {
            return try RecommendService.getItems(ids, model: try registry.model(name), limits: limits,
                                                 stored: { [live] in live?.catalogItem($0) })
        } catch let e as ServingError {
            if let limit = e.limit { metrics.limitHit(limit) }
            throw e
        }
    }

    public func modelInfo(_ name: String) throws -> (model: ModelFacts, loaded: [ModelFacts], defaultName: String) {
        let m = try registry.model(name)
        return (m.facts, registry.all.map(\.facts), registry.defaultModelName)
    }

    /// Finishes queued work and stops the workers.
    public func shutdown() {
        batcher.shutdown()
        reasoning.shutdown()
        workers.shutdown()
        live?.shutdown()
    }
}
