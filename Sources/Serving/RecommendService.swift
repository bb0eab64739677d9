// Answers the Recommender methods against one ServedModel: validates and resolves a request (every bad field gets
// a status naming it), scores through the model, masks and ranks. Runs on worker threads; stateless.
import Data
import Model

public enum RecommendService {
    /// top_k when the request leaves it 0.
    public static let defaultTopK = 10

    /// A request's history resolved against the catalogue, plus the items it must not return.
    public struct ResolvedHistory {
        public var history: UserHistory
        public var seen: Set<Int>
    }

    /// Resolves user id and events into catalogue indices, oldest first. Errors name the field at fault.
    public static func resolve(_ spec: HistorySpec, in model: ServedModel, field: String = "history",
                               limits: RequestLimits = RequestLimits()) throws -> ResolvedHistory {
        try limits.check(spec.events.count, limits.maxHistoryEvents, field: field, limit: "history_length")
        guard spec.now >= 0 else { throw ServingError.invalid("now", "must be unix seconds >= 0 (0: the latest event's time), got \(spec.now)") }
        var items: [Int] = [], times: [Int64] = [], ratings: [Float] = []
        if let stored = spec.stored {
            // The store's events, as far as this model's catalogue knows their items (a model can lag the store's
            // catalogue by one version for a moment while it is brought up to date).
            for e in stored {
                guard let index = model.catalog.index(of: e.itemId) else { continue }
                items.append(index); times.append(e.timestamp); ratings.append(e.rating)
            }
        } else if !spec.userId.isEmpty {
            guard let known = model.userHistories[spec.userId] else {
                throw ServingError(.notFound, "user_id: unknown user '\(spec.userId)' for model '\(model.name)'",
                                   field: "user_id")
            }
            items = known.items; times = known.timestamps; ratings = known.ratings
        }
        var unknown: [String] = []
        var firstUnknown = -1
        for (i, e) in spec.events.enumerated() {
            guard let index = model.catalog.index(of: e.itemId) else {
                if firstUnknown < 0 { firstUnknown = i }
                unknown.append(e.itemId)
                continue
            }
            guard e.rating.isFinite, e.rating >= 0 else {
                throw ServingError.invalid("\(field)[\(i)].rating", "must be a finite number >= 0, got \(e.rating)")
            }
            guard e.timestamp >= 0 else {
                throw ServingError.invalid("\(field)[\(i)].timestamp", "must be unix seconds >= 0 (0: unknown), got \(e.timestamp)")
            }
            items.append(index); times.append(e.timestamp); ratings.append(e.rating)
        }
        if !unknown.isEmpty {
            let shown = unknown.prefix(5).map { "'\($0)'" }.joined(separator: ", ")
            let more = unknown.count > 5 ? " and \(unknown.count - 5) more" : ""
            throw ServingError(.notFound, "\(field)[\(firstUnknown)].item_id: unknown item id \(shown)\(more)",
                               field: "\(field)[\(firstUnknown)].item_id")
        }
        if items.isEmpty && spec.stored == nil {
            throw ServingError.invalid(field, "empty: give history events or a known user_id")
        }
        // Events with known times are put in time order (stable); without times the given order stands.
        if times.allSatisfy({ $0 != 0 }) {
            let order = times.indices.sorted { times[$0] != times[$1] ? times[$0] < times[$1] : $0 < $1 }
            items = order.map { items[$0] }; ratings = order.map { ratings[$0] }; times = order.map { times[$0] }
        }
        return ResolvedHistory(history: UserHistory(items: items, timestamps: times, ratings: ratings), seen: Set(items))
    }

    /// Catalogue indices of `ids`; NOT_FOUND naming the first unknown one.
    static func indices(_ ids: [String], field: String, in model: ServedModel) throws -> [Int] {
        try ids.enumerated().map { i, id in
            guard let index = model.catalog.index(of: id) else {
                throw ServingError(.notFound, "\(field)[\(i)]: unknown item id '\(id)'", field: "\(field)[\(i)]")
            }
            return index
        }
    }

    /// A validated Recommend request, ready to be scored in a batch with others.
    public struct Prepared {
        public var resolved: ResolvedHistory
        /// Reference time of the prompt's "time ago" (the request's `now`); nil = the latest event's time.
        public var targetTime: Int64?
        public var topK: Int
        public var masked: Set<Int>
        public var allowed: [Int]?
        /// Whose request it is and when its history was read, for the model's prefix cache (DeleteUser removes the
        /// user's entries and keeps a history read before it from being cached).
        public var cacheTag = PrefixCache.Tag(user: "", epoch: 0)
    }

    public static func prepare(_ q: RecommendQuery, for model: ServedModel,
                               limits: RequestLimits = RequestLimits()) throws -> Prepared {
        let n = model.catalog.count
        let topK = q.topK == 0 ? min(defaultTopK, n, limits.maxTopK) : q.topK
        try limits.check(topK, limits.maxTopK, field: "top_k", limit: "top_k")
        try limits.check(q.exclude.count, limits.maxItemIds, field: "exclude_item_ids", limit: "item_ids")
        try limits.check(q.candidates.count, limits.maxItemIds, field: "candidate_item_ids", limit: "item_ids")
        guard topK >= 1, topK <= n else {
            throw ServingError.invalid("top_k", "\(q.topK) is out of range 1...\(n) (the catalogue size)")
        }
        if q.mode == .reasoning && !model.supportsReasoning {
            throw ServingError(.failedPrecondition,
                               "mode: model '\(model.name)' (\(model.recommender.kind)) has no LM head; use MODE_DIRECT",
                               field: "mode")
        }
        // Read before the history: a DeleteUser after this moment keeps this request's prompt out of the cache.
        let epoch = model.dualHead?.prefixCache?.epoch ?? 0
        let resolved = try resolve(q.history, in: model, limits: limits)
        var masked = Set(try indices(q.exclude, field: "exclude_item_ids", in: model))
        if !q.includeSeen { masked.formUnion(resolved.seen) }
        let allowed = q.candidates.isEmpty ? nil : try indices(q.candidates, field: "candidate_item_ids", in: model)
        return Prepared(resolved: resolved, targetTime: q.history.now == 0 ? nil : q.history.now, topK: topK,
                        masked: masked, allowed: allowed,
                        cacheTag: PrefixCache.Tag(user: q.history.userId, epoch: epoch))
    }

    /// Ranks one row of scores for a prepared request.
    public static func answer(_ p: Prepared, scores: UnsafeBufferPointer<Float>, model: ServedModel,
                              probabilities: Bool) -> [ScoredItemResult] {
        let top = Ranking.topK(scores, k: p.topK, masked: p.masked, allowed: p.allowed)
        let calibrated = RequestProbabilities(asked: probabilities, model: model, scores: scores, masked: p.masked)
        return top.enumerated().map { r, item in
            ScoredItemResult(itemId: model.catalog[item.index].id, title: model.catalog[item.index].title,
                             score: item.score, probability: calibrated?.probability(of: item.score), rank: r + 1)
        }
    }

    /// Direct-path Recommend for a batch of requests on one model: one scoreAll call for all of them (a dual-head model's
    /// scoreForRanking, exact where each request's ranking reads; requests with no history at all take the model's
    /// cold-start scores when it has them).
    public static func recommendDirect(_ prepared: [Prepared], model: ServedModel, probabilities: [Bool]) throws -> [RecommendResult] {
        let n = model.catalog.count
        let cold = model.coldStart.map { c in Set(prepared.indices.filter { prepared[$0].resolved.history.count == 0 }) } ?? []
        let warm = prepared.indices.filter { !cold.contains($0) }
        let histories = warm.map { prepared[$0].resolved.history }
        let warmScores = try model.dualHead.map { dual in
            // What answer() reads of each row: the top-k (and the calibrated ranks) outside the masked items, and the
            // candidates.
            let needs = warm.map { q -> RankingNeed in
                let p = prepared[q]
                let ranks = probabilities[q] ? model.calibrator?.ranks ?? 0 : 0
                return RankingNeed(depth: max(p.topK, ranks) + p.masked.count, exact: p.allowed)
            }
            return try dual.scoreForRanking(histories, targetTimes: warm.map {
                prepared[$0].targetTime ?? (prepared[$0].resolved.history.timestamps.max() ?? 0) }, needs: needs,
                tags: warm.map { prepared[$0].cacheTag })
        } ?? (warm.isEmpty ? [] : model.recommender.scoreAll(histories))
        precondition(warmScores.count == warm.count * n, "scoreAll returned \(warmScores.count) scores")
        var scores = cold.isEmpty ? warmScores : [Float](repeating: 0, count: prepared.count * n)
        if !cold.isEmpty, let coldStart = model.coldStart {
            for (k, q) in warm.enumerated() { scores.replaceSubrange((q * n)..<((q + 1) * n), with: warmScores[(k * n)..<((k + 1) * n)]) }
            for q in cold { scores.replaceSubrange((q * n)..<((q + 1) * n), with: coldStart) }
        }
        return scores.withUnsafeBufferPointer { all in
            prepared.indices.map { q in
                let row = UnsafeBufferPointer(rebasing: all[(q * n)..<((q + 1) * n)])
                return RecommendResult(items: answer(prepared[q], scores: row, model: model, probabilities: probabilities[q]),
                                       model: model.name, modelVersion: model.version)
            }
        }
    }

    public static func scoreItems(_ q: ScoreItemsQuery, model: ServedModel,
                                  limits: RequestLimits = RequestLimits()) throws -> [ScoredItemResult] {
        try limits.check(q.itemIds.count, limits.maxItemIds, field: "item_ids", limit: "item_ids")
        let resolved = try resolve(q.history, in: model, limits: limits)
        guard !q.itemIds.isEmpty else { throw ServingError.invalid("item_ids", "empty: name the items to score") }
        let targets = try indices(q.itemIds, field: "item_ids", in: model)
        let scores = resolved.history.count == 0 && model.coldStart != nil
            ? model.coldStart! : try model.recommender.scoreAll([resolved.history])
        // Rank among the requested items: higher score first, ties to the earlier request position.
        let order = targets.indices.sorted { scores[targets[$0]] != scores[targets[$1]]
            ? scores[targets[$0]] > scores[targets[$1]] : $0 < $1 }
        var rankOf = [Int](repeating: 0, count: targets.count)
        for (r, i) in order.enumerated() { rankOf[i] = r }
        // Probabilities rank each item among the whole catalogue with the history masked, as Recommend does.
        let calibrated = scores.withUnsafeBufferPointer {
            RequestProbabilities(asked: q.returnProbabilities, model: model, scores: $0, masked: resolved.seen)
        }
        return targets.enumerated().map { i, t in
            ScoredItemResult(itemId: model.catalog[t].id, title: model.catalog[t].title, score: scores[t],
                             probability: calibrated?.probability(of: scores[t]), rank: rankOf[i] + 1)
        }
    }

    public static func similarItems(_ q: SimilarItemsQuery, model: ServedModel,
                                    limits: RequestLimits = RequestLimits()) throws -> [ScoredItemResult] {
        try limits.check(q.topK, limits.maxTopK, field: "top_k", limit: "top_k")
        guard let item = model.catalog.index(of: q.itemId) else {
            throw ServingError(.notFound, "item_id: unknown item id '\(q.itemId)'", field: "item_id")
        }
        let n = model.catalog.count
        let topK = q.topK == 0 ? min(defaultTopK, n - 1, limits.maxTopK) : q.topK
        guard topK >= 1, topK <= n - 1 else {
            throw ServingError.invalid("top_k", "\(q.topK) is out of range 1...\(n - 1)")
        }
        let sims = try model.recommender.similarities(to: item)
        return sims.withUnsafeBufferPointer { s in
            Ranking.topK(s, k: topK, masked: [item]).enumerated().map { r, x in
                ScoredItemResult(itemId: model.catalog[x.index].id, title: model.catalog[x.index].title,
                                 score: x.score, probability: nil, rank: r + 1)
            }
        }
    }

    /// `stored` gives an item's stored facts (metadata, creation time) when a store backs the server.
    public static func getItems(_ ids: [String], model: ServedModel, limits: RequestLimits = RequestLimits(),
                                stored: (String) -> CatalogItem? = { _ in nil }) throws -> [ItemInfo] {
        try limits.check(ids.count, limits.maxItemIds, field: "item_ids", limit: "item_ids")
        guard !ids.isEmpty else { throw ServingError.invalid("item_ids", "empty: name the items to look up") }
        return try indices(ids, field: "item_ids", in: model).map { model.itemInfo(at: $0, stored: stored(model.catalog[$0].id)) }
    }
}
