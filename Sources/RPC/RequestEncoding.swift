// Encodes requests on the client side (the Swift client, `r2ec call`, benchmarks and tests).
import R2ecProtoC
import Serving

public enum RequestEncoding {
    /// A RecommendRequest for a history of item ids (and a user id, when given).
    /// `timestamps` and `ratings`, when given, hold one value per item id (else the events carry none).
    public static func recommend(itemIds: [String], timestamps: [Int64] = [], ratings: [Float] = [],
                                 userId: String = "", topK: Int = 0, includeSeen: Bool = false,
                                 reasoning: Bool = false, maxReasoningTokens: Int = 0, model: String = "",
                                 exclude: [String] = [], returnReasoning: Bool = false,
                                 returnProbabilities: Bool = false) -> [UInt8] {
        precondition(timestamps.isEmpty || timestamps.count == itemIds.count, "one timestamp per item id")
        precondition(ratings.isEmpty || ratings.count == itemIds.count, "one rating per item id")
        let arena = CArena()
        let m = arena.message(R2ec__V1__RecommendRequest.self, r2ec__v1__recommend_request__init)
        m.pointee.user_id = arena.string(userId)
        let events = arena.array(UnsafeMutablePointer<R2ec__V1__HistoryEvent>?.self, count: itemIds.count)
        for (i, id) in itemIds.enumerated() {
            let e = arena.message(R2ec__V1__HistoryEvent.self, r2ec__v1__history_event__init)
            e.pointee.item_id = arena.string(id)
            if !timestamps.isEmpty { e.pointee.timestamp = timestamps[i] }
            if !ratings.isEmpty { e.pointee.rating = ratings[i] }
            events[i] = e
        }
        m.pointee.n_history = itemIds.count
        m.pointee.history = events
        m.pointee.top_k = UInt32(topK)
        m.pointee.include_seen = includeSeen ? 1 : 0
        m.pointee.mode = reasoning ? R2EC__V1__MODE__MODE_REASONING : R2EC__V1__MODE__MODE_DIRECT
        m.pointee.model = arena.string(model)
        m.pointee.max_reasoning_tokens = UInt32(maxReasoningTokens)
        m.pointee.n_exclude_item_ids = exclude.count
        m.pointee.exclude_item_ids = arena.strings(exclude)
        m.pointee.return_reasoning = returnReasoning ? 1 : 0
        m.pointee.return_probabilities = returnProbabilities ? 1 : 0
        return packMessage(m)
    }

    /// The reasoning_tokens field of a RecommendResponse.
    public static func reasoningTokens(_ payload: [UInt8]) -> Int {
        guard let m = payload.withUnsafeBufferPointer({ r2ec__v1__recommend_response__unpack(nil, $0.count, $0.baseAddress) })
        else { return 0 }
        defer { r2ec__v1__recommend_response__free_unpacked(m, nil) }
        return Int(m.pointee.reasoning_tokens)
    }

    /// The (item id, title, score) rows of a RecommendResponse (none when it does not decode).
    public static func recommendedItems(_ payload: [UInt8]) -> [(id: String, title: String, score: Float)] {
        ((try? ResponseDecoding.recommend(payload))?.items ?? []).map { ($0.itemId, $0.title, $0.score) }
    }

    /// A RecommendRequest by user id alone (a server with a store reads the user's history from it).
    public static func recommend(userId: String, topK: Int = 0, model: String = "") -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__RecommendRequest.self, r2ec__v1__recommend_request__init)
        m.pointee.user_id = arena.string(userId)
        m.pointee.top_k = UInt32(topK)
        m.pointee.model = arena.string(model)
        return packMessage(m)
    }

    public static func getItems(_ ids: [String], model: String = "") -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__GetItemsRequest.self, r2ec__v1__get_items_request__init)
        m.pointee.n_item_ids = ids.count
        m.pointee.item_ids = arena.strings(ids)
        m.pointee.model = arena.string(model)
        return packMessage(m)
    }

    /// The (item id, title) rows of a GetItemsResponse (none when it does not decode).
    public static func items(_ payload: [UInt8]) -> [(id: String, title: String)] {
        ((try? ResponseDecoding.getItems(payload)) ?? []).map { ($0.itemId, $0.title) }
    }

    public static func similarItems(_ itemId: String, topK: Int = 0, model: String = "") -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__SimilarItemsRequest.self, r2ec__v1__similar_items_request__init)
        m.pointee.item_id = arena.string(itemId)
        m.pointee.top_k = UInt32(clamping: topK)
        m.pointee.model = arena.string(model)
        return packMessage(m)
    }

    public static func searchItems(_ q: ItemSearchQuery) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__SearchItemsRequest.self, r2ec__v1__search_items_request__init)
        m.pointee.query = arena.string(q.query)
        m.pointee.n_genres = q.genres.count
        m.pointee.genres = arena.strings(q.genres)
        m.pointee.min_year = Int32(clamping: q.minYear)
        m.pointee.max_year = Int32(clamping: q.maxYear)
        let filters = arena.array(UnsafeMutablePointer<R2ec__V1__MetadataFilter>?.self, count: q.metadata.count)
        for (i, f) in q.metadata.enumerated() {
            let e = arena.message(R2ec__V1__MetadataFilter.self, r2ec__v1__metadata_filter__init)
            e.pointee.key = arena.string(f.key)
            e.pointee.value = arena.string(f.value)
            filters[i] = e
        }
        m.pointee.n_metadata = q.metadata.count
        m.pointee.metadata = filters
        m.pointee.limit = UInt32(clamping: q.limit)
        m.pointee.offset = UInt32(clamping: q.offset)
        m.pointee.model = arena.string(q.model)
        return packMessage(m)
    }

    public static func recordEvents(_ events: [EventInput]) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__RecordEventsRequest.self, r2ec__v1__record_events_request__init)
        let list = arena.array(UnsafeMutablePointer<R2ec__V1__Event>?.self, count: events.count)
        for (i, ev) in events.enumerated() {
            let e = arena.message(R2ec__V1__Event.self, r2ec__v1__event__init)
            e.pointee.user_id = arena.string(ev.userId)
            e.pointee.item_id = arena.string(ev.itemId)
            e.pointee.timestamp = ev.timestamp
            e.pointee.kind = arena.string(ev.kind)
            e.pointee.rating = ev.rating
            e.pointee.idempotency_key = arena.string(ev.idempotencyKey)
            list[i] = e
        }
        m.pointee.n_events = events.count
        m.pointee.events = list
        return packMessage(m)
    }
}
