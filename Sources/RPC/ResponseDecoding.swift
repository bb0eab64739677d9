// Decodes responses on the client side (the agent tools, tests): protobuf-c messages into the serving core's own
// answer types, so a client holds the same values the server computed. A payload that does not decode is an
// INVALID_ARGUMENT naming the message, as on the server side.
import R2ecProtoC
import Serving

public enum ResponseDecoding {
    /// A RecommendResponse: its items, and the reasoning text (empty unless asked for).
    public static func recommend(_ payload: [UInt8]) throws -> (items: [ScoredItemResult], reasoning: String, model: String) {
        try ProtoCodec.decode(payload, "RecommendResponse", unpack: r2ec__v1__recommend_response__unpack,
                              free: r2ec__v1__recommend_response__free_unpacked) { m in
            (scored(m.pointee.items, m.pointee.n_items), swiftString(m.pointee.reasoning), swiftString(m.pointee.model))
        }
    }

    public static func similarItems(_ payload: [UInt8]) throws -> [ScoredItemResult] {
        try ProtoCodec.decode(payload, "SimilarItemsResponse", unpack: r2ec__v1__similar_items_response__unpack,
                              free: r2ec__v1__similar_items_response__free_unpacked) { m in
            scored(m.pointee.items, m.pointee.n_items)
        }
    }

    public static func getItems(_ payload: [UInt8]) throws -> [ItemInfo] {
        try ProtoCodec.decode(payload, "GetItemsResponse", unpack: r2ec__v1__get_items_response__unpack,
                              free: r2ec__v1__get_items_response__free_unpacked) { m in
            items(m.pointee.items, m.pointee.n_items)
        }
    }

    public static func searchItems(_ payload: [UInt8]) throws -> ItemSearchResult {
        try ProtoCodec.decode(payload, "SearchItemsResponse", unpack: r2ec__v1__search_items_response__unpack,
                              free: r2ec__v1__search_items_response__free_unpacked) { m in
            ItemSearchResult(items: items(m.pointee.items, m.pointee.n_items), totalMatches: Int(m.pointee.total_matches))
        }
    }

    public static func recordEvents(_ payload: [UInt8]) throws -> RecordEventsResult {
        try ProtoCodec.decode(payload, "RecordEventsResponse", unpack: r2ec__v1__record_events_response__unpack,
                              free: r2ec__v1__record_events_response__free_unpacked) { m in
            RecordEventsResult(recorded: Int(m.pointee.recorded),
                               duplicates: (0..<m.pointee.n_duplicate_indices).map { Int(m.pointee.duplicate_indices[$0]) })
        }
    }

    private static func scored(_ list: UnsafeMutablePointer<UnsafeMutablePointer<R2ec__V1__ScoredItem>?>?,
                               _ n: Int) -> [ScoredItemResult] {
        (0..<n).compactMap { i in
            guard let it = list?[i]?.pointee else { return nil }
            let probability = it.calibrated_case == R2EC__V1__SCORED_ITEM__CALIBRATED_PROBABILITY ? it.probability : nil
            return ScoredItemResult(itemId: swiftString(it.item_id), title: swiftString(it.title), score: it.score,
                                    probability: probability, rank: Int(it.rank))
        }
    }

    private static func items(_ list: UnsafeMutablePointer<UnsafeMutablePointer<R2ec__V1__Item>?>?, _ n: Int) -> [ItemInfo] {
        (0..<n).compactMap { i in
            guard let it = list?[i]?.pointee else { return nil }
            return ItemInfo(itemId: swiftString(it.item_id), title: swiftString(it.title), year: Int(it.year),
                            genres: swiftStrings(it.genres, it.n_genres), description: swiftString(it.description),
                            numRatings: Int(it.num_ratings), meanRating: it.mean_rating,
                            metadataJSON: swiftString(it.metadata_json), created: it.created)
        }
    }
}
