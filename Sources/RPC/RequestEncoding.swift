// Encodes requests on the client side (the Swift client, `r2ec call`, benchmarks and tests).
import R2ecProtoC
import Serving

public enum RequestEncoding {
    /// A RecommendRequest for a history of item ids (and a user id, when given).
    public static func recommend(itemIds: [String], userId: String = "", topK: Int = 0, includeSeen: Bool = false,
                                 reasoning: Bool = false, maxReasoningTokens: Int = 0, model: String = "") -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__RecommendRequest.self, r2ec__v1__recommend_request__init)
        m.pointee.user_id = arena.string(userId)
        let events = arena.array(UnsafeMutablePointer<R2ec__V1__HistoryEvent>?.self, count: itemIds.count)
        for (i, id) in itemIds.enumerated() {
            let e = arena.message(R2ec__V1__HistoryEvent.self, r2ec__v1__history_event__init)
            e.pointee.item_id = arena.string(id)
            events[i] = e
        }
        m.pointee.n_history = itemIds.count
        m.pointee.history = events
        m.pointee.top_k = UInt32(topK)
        m.pointee.include_seen = includeSeen ? 1 : 0
        m.pointee.mode = reasoning ? R2EC__V1__MODE__MODE_REASONING : R2EC__V1__MODE__MODE_DIRECT
        m.pointee.model = arena.string(model)
        m.pointee.max_reasoning_tokens = UInt32(maxReasoningTokens)
        return packMessage(m)
    }

    /// The reasoning_tokens field of a RecommendResponse.
    public static func reasoningTokens(_ payload: [UInt8]) -> Int {
        guard let m = payload.withUnsafeBufferPointer({ r2ec__v1__recommend_response__unpack(nil, $0.count, $0.baseAddress) })
        else { return 0 }
        defer { r2ec__v1__recommend_response__free_unpacked(m, nil) }
        return Int(m.pointee.reasoning_tokens)
    }

    /// The (item id, title, score) rows of a RecommendResponse.
    public static func recommendedItems(_ payload: [UInt8]) -> [(id: String, title: String, score: Float)] {
        guard let m = payload.withUnsafeBufferPointer({ r2ec__v1__recommend_response__unpack(nil, $0.count, $0.baseAddress) })
        else { return [] }
        defer { r2ec__v1__recommend_response__free_unpacked(m, nil) }
        return (0..<m.pointee.n_items).map { i in
            let it = m.pointee.items[i]!.pointee
            return (swiftString(it.item_id), swiftString(it.title), it.score)
        }
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

    /// The (item id, title) rows of a GetItemsResponse.
    public static func items(_ payload: [UInt8]) -> [(id: String, title: String)] {
        guard let m = payload.withUnsafeBufferPointer({ r2ec__v1__get_items_response__unpack(nil, $0.count, $0.baseAddress) })
        else { return [] }
        defer { r2ec__v1__get_items_response__free_unpacked(m, nil) }
        return (0..<m.pointee.n_items).map { i in
            (swiftString(m.pointee.items[i]!.pointee.item_id), swiftString(m.pointee.items[i]!.pointee.title))
        }
    }
}
