// Converts between the protobuf-c messages of Protos/r2ec/v1 and the serving core's Swift values.
// Decoders turn a refused payload into INVALID_ARGUMENT naming the field; encoders pack through a CArena.
import CProtobufC
import Data
import R2ecProtoC
import Serving

enum ProtoCodec {
    // MARK: Generic decode

    /// Unpacks `payload` with the generated `unpack`, converts it, frees it. Malformed input -> INVALID_ARGUMENT.
    /// `caps` bound repeated top-level fields, counted on the wire before protobuf-c allocates their entries.
    static func decode<M, T>(_ payload: [UInt8], _ name: String, caps: [WireCap] = [],
                             unpack: (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) -> UnsafeMutablePointer<M>?,
                             free: (UnsafeMutablePointer<M>?, UnsafeMutablePointer<ProtobufCAllocator>?) -> Void,
                             convert: (UnsafeMutablePointer<M>) throws -> T) throws -> T {
        if let refused = payload.withUnsafeBytes({ WireCounts.check($0, caps) }) { throw refused }
        let message = payload.withUnsafeBufferPointer { unpack(nil, $0.count, $0.baseAddress ?? emptyByte) }
        guard let message else {
            throw malformed(payload, name, descriptor: nil as UnsafePointer<ProtobufCMessageDescriptor>?, unpackSample: unpack, free: free)
        }
        defer { free(message, nil) }
        let descriptor = UnsafeMutableRawPointer(message).assumingMemoryBound(to: ProtobufCMessage.self).pointee.descriptor!
        if let refused = payload.withUnsafeBytes({ nulInString($0, name, descriptor) }) { throw refused }
        do {
            return try convert(message)
        } catch let e as ServingError {
            // A value the wire carries but the protocol refuses (an unknown enum number): named like any decode error.
            throw ServingError(e.code, "\(name): \(e.message)", field: e.field, limit: e.limit)
        }
    }

    /// INVALID_ARGUMENT naming the first string field holding a NUL byte (protobuf-c's C strings would end there:
    /// "Bearer T\0junk" read as "Bearer T", item "50\0zzz" as "50"), or nil.
    private static func nulInString(_ bytes: UnsafeRawBufferPointer, _ name: String,
                                    _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>) -> ServingError? {
        guard bytes.contains(0), WireDiagnosis.hasNULInString(bytes, descriptor: descriptor) else { return nil }
        let finding = WireDiagnosis.diagnose(bytes, descriptor: descriptor)
        let field = finding?.field ?? ""
        return ServingError(.invalidArgument, "\(name): \(field): \(finding?.problem ?? "string contains a NUL byte")",
                            field: field)
    }

    private static let emptyByte: UnsafePointer<UInt8> = {
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
        p.pointee = 0
        return UnsafePointer(p)
    }()

    /// INVALID_ARGUMENT for a payload protobuf-c refused, with the field at fault when the walk finds it.
    private static func malformed<M>(_ payload: [UInt8], _ name: String, descriptor: UnsafePointer<ProtobufCMessageDescriptor>?,
                                     unpackSample unpack: (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) -> UnsafeMutablePointer<M>?,
                                     free: (UnsafeMutablePointer<M>?, UnsafeMutablePointer<ProtobufCAllocator>?) -> Void) -> ServingError {
        // An empty payload always unpacks; its descriptor is the message's own.
        guard let empty = unpack(nil, 0, emptyByte) else {
            return ServingError(.invalidArgument, "\(name): malformed protobuf")
        }
        defer { free(empty, nil) }
        let base = UnsafeMutableRawPointer(empty).assumingMemoryBound(to: ProtobufCMessage.self)
        let finding = payload.withUnsafeBytes { WireDiagnosis.diagnose($0, descriptor: base.pointee.descriptor) }
        if let finding {
            return ServingError(.invalidArgument, "\(name): malformed protobuf at \(finding.field): \(finding.problem)",
                                field: finding.field == "(message)" ? "" : finding.field)
        }
        return ServingError(.invalidArgument, "\(name): malformed protobuf")
    }

    // MARK: Wire-layer messages

    struct CallHeader {
        var method: String
        var timeoutMs: Int64
        var metadata: [(String, String)]
    }

    static func decodeCallHeader(_ payload: [UInt8]) throws -> CallHeader {
        try decode(payload, "CallHeader", unpack: r2ec__v1__call_header__unpack, free: r2ec__v1__call_header__free_unpacked) { m in
            var md: [(String, String)] = []
            for i in 0..<m.pointee.n_metadata {
                if let e = m.pointee.metadata[i] { md.append((swiftString(e.pointee.key), swiftString(e.pointee.value))) }
            }
            return CallHeader(method: swiftString(m.pointee.method), timeoutMs: m.pointee.timeout_ms, metadata: md)
        }
    }

    static func encodeStatus(_ code: StatusCode, _ message: String, field: String = "",
                             metadata: [(key: String, value: String)] = []) -> [UInt8] {
        if code == .ok && message.isEmpty && field.isEmpty && metadata.isEmpty { return [] }  // Status{}: no bytes
        let arena = CArena()
        let m = arena.message(R2ec__V1__Status.self, r2ec__v1__status__init)
        m.pointee.code = code.rawValue
        m.pointee.message = arena.string(ClientText.clip(message))
        m.pointee.field = arena.string(ClientText.clip(field, limit: 256))
        if !metadata.isEmpty {
            let list = arena.array(UnsafeMutablePointer<R2ec__V1__MetadataEntry>?.self, count: metadata.count)
            for (i, e) in metadata.enumerated() {
                let entry = arena.message(R2ec__V1__MetadataEntry.self, r2ec__v1__metadata_entry__init)
                entry.pointee.key = arena.string(e.key)
                entry.pointee.value = arena.string(e.value)
                list[i] = entry
            }
            m.pointee.n_metadata = metadata.count
            m.pointee.metadata = list
        }
        return packMessage(m)
    }

    static func encodeGoAway(lastStreamId: UInt32, code: StatusCode, message: String) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__GoAway.self, r2ec__v1__go_away__init)
        m.pointee.last_stream_id = lastStreamId
        m.pointee.code = code.rawValue
        m.pointee.message = arena.string(ClientText.clip(message))
        return packMessage(m)
    }

    // MARK: Health

    static func decodeHealthRequest(_ payload: [UInt8]) throws -> String {
        try decode(payload, "HealthCheckRequest", unpack: r2ec__v1__health_check_request__unpack,
                   free: r2ec__v1__health_check_request__free_unpacked) { swiftString($0.pointee.service) }
    }

    static func encodeHealthResponse(serving: Bool) -> [UInt8] { serving ? servingResponse : notServingResponse }
    /// HealthCheckResponse{status: SERVICE_UNKNOWN} (Watch of a service the server does not know).
    static let serviceUnknownResponse = packHealthResponse(R2EC__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN)
    private static let servingResponse = packHealthResponse(R2EC__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING)
    private static let notServingResponse = packHealthResponse(R2EC__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING)

    private static func packHealthResponse(_ status: R2ec__V1__HealthCheckResponse__ServingStatus) -> [UInt8] {
        var m = R2ec__V1__HealthCheckResponse()
        r2ec__v1__health_check_response__init(&m)
        m.status = status
        return withUnsafeMutablePointer(to: &m) { packMessage($0) }
    }

    // MARK: Recommender requests

    private static func history(_ n: Int, _ events: UnsafeMutablePointer<UnsafeMutablePointer<R2ec__V1__HistoryEvent>?>?) -> [HistoryEvent] {
        guard let events else { return [] }
        return (0..<n).compactMap { i in
            events[i].map { HistoryEvent(itemId: swiftString($0.pointee.item_id), timestamp: $0.pointee.timestamp,
                                         rating: $0.pointee.rating) }
        }
    }

    /// `prefix` names the request in error fields ("requests[3]." inside a batch).
    static func recommendQuery(_ m: UnsafeMutablePointer<R2ec__V1__RecommendRequest>, prefix: String = "") throws -> RecommendQuery {
        let r = m.pointee
        var q = RecommendQuery()
        q.history = HistorySpec(userId: swiftString(r.user_id), events: history(r.n_history, r.history), now: r.now)
        q.topK = Int(r.top_k)
        switch r.mode {
        case R2EC__V1__MODE__MODE_DIRECT: q.mode = .direct
        case R2EC__V1__MODE__MODE_REASONING: q.mode = .reasoning
        default:  // proto3 enums are open: a number this server does not know arrives as it was sent
            throw ServingError.invalid("\(prefix)mode", "unknown value \(r.mode.rawValue) (MODE_DIRECT = 0, MODE_REASONING = 1)")
        }
        q.maxReasoningTokens = Int(r.max_reasoning_tokens)
        if let s = r.sampling {
            q.sampling = SamplingOptions(temperature: s.pointee.temperature, topK: Int(s.pointee.top_k),
                                          topP: s.pointee.top_p, seed: s.pointee.seed)
        }
        q.exclude = swiftStrings(r.exclude_item_ids, r.n_exclude_item_ids)
        q.candidates = swiftStrings(r.candidate_item_ids, r.n_candidate_item_ids)
        q.includeSeen = r.include_seen != 0
        q.returnReasoning = r.return_reasoning != 0
        q.returnProbabilities = r.return_probabilities != 0
        q.model = swiftString(r.model)
        q.priority = Int(r.priority)
        return q
    }

    static func decodeRecommendRequest(_ payload: [UInt8], limits: RequestLimits = RequestLimits()) throws -> RecommendQuery {
        try decode(payload, "RecommendRequest", caps: [
            WireCap(number: 2, field: "history", max: limits.maxHistoryEvents, limit: "history_length"),
            WireCap(number: 7, field: "exclude_item_ids", max: limits.maxItemIds, limit: "item_ids"),
            WireCap(number: 8, field: "candidate_item_ids", max: limits.maxItemIds, limit: "item_ids"),
        ], unpack: r2ec__v1__recommend_request__unpack,
                   free: r2ec__v1__recommend_request__free_unpacked) { try recommendQuery($0) }
    }

    static func decodeRecommendBatchRequest(_ payload: [UInt8], limits: RequestLimits = RequestLimits()) throws -> [RecommendQuery] {
        try decode(payload, "RecommendBatchRequest",
                   caps: [WireCap(number: 1, field: "requests", max: limits.maxBatchRequests, limit: "batch_requests")],
                   unpack: r2ec__v1__recommend_batch_request__unpack,
                   free: r2ec__v1__recommend_batch_request__free_unpacked) { m in
            // A request the wire cannot express as a query (an unknown mode) refuses the whole batch, as a
            // malformed element does; requests that decode are then checked one by one.
            try (0..<m.pointee.n_requests).compactMap { i in try m.pointee.requests[i].map { try recommendQuery($0, prefix: "requests[\(i)].") } }
        }
    }

    static func decodeScoreItemsRequest(_ payload: [UInt8], limits: RequestLimits = RequestLimits()) throws -> ScoreItemsQuery {
        try decode(payload, "ScoreItemsRequest", caps: [
            WireCap(number: 2, field: "history", max: limits.maxHistoryEvents, limit: "history_length"),
            WireCap(number: 3, field: "item_ids", max: limits.maxItemIds, limit: "item_ids"),
        ], unpack: r2ec__v1__score_items_request__unpack,
                   free: r2ec__v1__score_items_request__free_unpacked) { m in
            let r = m.pointee
            var q = ScoreItemsQuery()
            q.history = HistorySpec(userId: swiftString(r.user_id), events: history(r.n_history, r.history), now: r.now)
            q.itemIds = swiftStrings(r.item_ids, r.n_item_ids)
            q.returnProbabilities = r.return_probabilities != 0
            q.model = swiftString(r.model)
            return q
        }
    }

    static func decodeSimilarItemsRequest(_ payload: [UInt8]) throws -> SimilarItemsQuery {
        try decode(payload, "SimilarItemsRequest", unpack: r2ec__v1__similar_items_request__unpack,
                   free: r2ec__v1__similar_items_request__free_unpacked) { m in
            var q = SimilarItemsQuery()
            q.itemId = swiftString(m.pointee.item_id)
            q.topK = Int(m.pointee.top_k)
            q.model = swiftString(m.pointee.model)
            return q
        }
    }

    static func decodeSearchItemsRequest(_ payload: [UInt8]) throws -> ItemSearchQuery {
        try decode(payload, "SearchItemsRequest", unpack: r2ec__v1__search_items_request__unpack,
                   free: r2ec__v1__search_items_request__free_unpacked) { m in
            let r = m.pointee
            var q = ItemSearchQuery()
            q.query = swiftString(r.query)
            q.genres = swiftStrings(r.genres, r.n_genres)
            q.minYear = Int(r.min_year)
            q.maxYear = Int(r.max_year)
            q.metadata = (0..<r.n_metadata).map { i in
                let f = r.metadata[i]!.pointee
                return MetadataFilter(key: swiftString(f.key), value: swiftString(f.value))
            }
            q.limit = Int(r.limit)
            q.offset = Int(r.offset)
            q.model = swiftString(r.model)
            return q
        }
    }

    static func decodeGetItemsRequest(_ payload: [UInt8], limits: RequestLimits = RequestLimits()) throws -> (ids: [String], model: String) {
        try decode(payload, "GetItemsRequest",
                   caps: [WireCap(number: 1, field: "item_ids", max: limits.maxItemIds, limit: "item_ids")], unpack: r2ec__v1__get_items_request__unpack,
                   free: r2ec__v1__get_items_request__free_unpacked) { m in
            (swiftStrings(m.pointee.item_ids, m.pointee.n_item_ids), swiftString(m.pointee.model))
        }
    }

    static func decodeModelInfoRequest(_ payload: [UInt8]) throws -> String {
        try decode(payload, "ModelInfoRequest", unpack: r2ec__v1__model_info_request__unpack,
                   free: r2ec__v1__model_info_request__free_unpacked) { swiftString($0.pointee.model) }
    }

    static func decodeLoadModelRequest(_ payload: [UInt8]) throws -> (name: String, path: String, makeDefault: Bool) {
        try decode(payload, "LoadModelRequest", unpack: r2ec__v1__load_model_request__unpack,
                   free: r2ec__v1__load_model_request__free_unpacked) { m in
            (swiftString(m.pointee.name), swiftString(m.pointee.path), m.pointee.make_default != 0)
        }
    }

    static func decodeUnloadModelRequest(_ payload: [UInt8]) throws -> String {
        try decode(payload, "UnloadModelRequest", unpack: r2ec__v1__unload_model_request__unpack,
                   free: r2ec__v1__unload_model_request__free_unpacked) { swiftString($0.pointee.name) }
    }

    // MARK: Recommender responses

    private static func scoredItems(_ items: [ScoredItemResult], _ arena: CArena)
        -> UnsafeMutablePointer<UnsafeMutablePointer<R2ec__V1__ScoredItem>?> {
        let list = arena.array(UnsafeMutablePointer<R2ec__V1__ScoredItem>?.self, count: items.count)
        for (i, it) in items.enumerated() {
            let m = arena.message(R2ec__V1__ScoredItem.self, r2ec__v1__scored_item__init)
            m.pointee.item_id = arena.string(it.itemId)
            m.pointee.title = arena.string(it.title)
            m.pointee.score = it.score
            if let p = it.probability {
                m.pointee.calibrated_case = R2EC__V1__SCORED_ITEM__CALIBRATED_PROBABILITY
                m.pointee.probability = p
            }
            m.pointee.rank = UInt32(it.rank)
            list[i] = m
        }
        return list
    }

    private static func recommendResponse(_ r: RecommendResult, _ arena: CArena) -> UnsafeMutablePointer<R2ec__V1__RecommendResponse> {
        let m = arena.message(R2ec__V1__RecommendResponse.self, r2ec__v1__recommend_response__init)
        m.pointee.n_items = r.items.count
        m.pointee.items = scoredItems(r.items, arena)
        m.pointee.reasoning = arena.string(r.reasoning)
        m.pointee.model = arena.string(r.model)
        m.pointee.reasoning_tokens = UInt32(r.reasoningTokens)
        m.pointee.model_version = r.modelVersion
        return m
    }

    static func encodeRecommendResponse(_ r: RecommendResult) -> [UInt8] {
        let arena = CArena()
        return packMessage(recommendResponse(r, arena))
    }

    static func encodeStreamDelta(_ text: String) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__RecommendStreamResponse.self, r2ec__v1__recommend_stream_response__init)
        m.pointee.event_case = R2EC__V1__RECOMMEND_STREAM_RESPONSE__EVENT_REASONING_DELTA
        m.pointee.reasoning_delta = arena.string(text)
        return packMessage(m)
    }

    static func encodeStreamResult(_ r: RecommendResult) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__RecommendStreamResponse.self, r2ec__v1__recommend_stream_response__init)
        m.pointee.event_case = R2EC__V1__RECOMMEND_STREAM_RESPONSE__EVENT_RESULT
        m.pointee.result = recommendResponse(r, arena)
        return packMessage(m)
    }

    static func encodeRecommendBatchResponse(_ results: [Result<RecommendResult, ServingError>]) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__RecommendBatchResponse.self, r2ec__v1__recommend_batch_response__init)
        let list = arena.array(UnsafeMutablePointer<R2ec__V1__RecommendBatchResult>?.self, count: results.count)
        for (i, r) in results.enumerated() {
            let e = arena.message(R2ec__V1__RecommendBatchResult.self, r2ec__v1__recommend_batch_result__init)
            switch r {
            case .success(let ok):
                e.pointee.code = StatusCode.ok.rawValue
                e.pointee.message = arena.string("")
                e.pointee.response = recommendResponse(ok, arena)
            case .failure(let err):
                e.pointee.code = err.code.rawValue
                e.pointee.message = arena.string(ClientText.clip(err.message))
            }
            list[i] = e
        }
        m.pointee.n_results = results.count
        m.pointee.results = list
        return packMessage(m)
    }

    static func encodeScoreItemsResponse(_ items: [ScoredItemResult], model: String, version: UInt64 = 0) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__ScoreItemsResponse.self, r2ec__v1__score_items_response__init)
        m.pointee.n_items = items.count
        m.pointee.items = scoredItems(items, arena)
        m.pointee.model = arena.string(model)
        m.pointee.model_version = version
        return packMessage(m)
    }

    static func encodeSimilarItemsResponse(_ items: [ScoredItemResult], model: String, version: UInt64 = 0) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__SimilarItemsResponse.self, r2ec__v1__similar_items_response__init)
        m.pointee.n_items = items.count
        m.pointee.items = scoredItems(items, arena)
        m.pointee.model = arena.string(model)
        m.pointee.model_version = version
        return packMessage(m)
    }

    static func encodeGetItemsResponse(_ items: [ItemInfo]) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__GetItemsResponse.self, r2ec__v1__get_items_response__init)
        m.pointee.n_items = items.count
        m.pointee.items = itemList(items, arena)
        return packMessage(m)
    }

    static func encodeSearchItemsResponse(_ result: ItemSearchResult) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__SearchItemsResponse.self, r2ec__v1__search_items_response__init)
        m.pointee.n_items = result.items.count
        m.pointee.items = itemList(result.items, arena)
        m.pointee.total_matches = UInt32(clamping: result.totalMatches)
        return packMessage(m)
    }

    private static func itemList(_ items: [ItemInfo], _ arena: CArena) -> UnsafeMutablePointer<UnsafeMutablePointer<R2ec__V1__Item>?> {
        let list = arena.array(UnsafeMutablePointer<R2ec__V1__Item>?.self, count: items.count)
        for (i, it) in items.enumerated() {
            let e = arena.message(R2ec__V1__Item.self, r2ec__v1__item__init)
            e.pointee.item_id = arena.string(it.itemId)
            e.pointee.title = arena.string(it.title)
            e.pointee.year = Int32(clamping: it.year)
            e.pointee.n_genres = it.genres.count
            e.pointee.genres = arena.strings(it.genres)
            e.pointee.description = arena.string(it.description)
            e.pointee.num_ratings = UInt32(clamping: it.numRatings)
            e.pointee.mean_rating = it.meanRating
            e.pointee.metadata_json = arena.string(it.metadataJSON)
            e.pointee.created = it.created
            list[i] = e
        }
        return list
    }

    private static func modelInfo(_ f: ModelFacts, _ arena: CArena) -> UnsafeMutablePointer<R2ec__V1__ModelInfo> {
        let m = arena.message(R2ec__V1__ModelInfo.self, r2ec__v1__model_info__init)
        m.pointee.name = arena.string(f.name)
        m.pointee.kind = arena.string(f.kind)
        m.pointee.dataset = arena.string(f.dataset)
        m.pointee.num_items = UInt32(clamping: f.numItems)
        m.pointee.num_users = UInt32(clamping: f.numUsers)
        m.pointee.supports_reasoning = f.supportsReasoning ? 1 : 0
        m.pointee.calibrated = f.calibrated ? 1 : 0
        m.pointee.calibrated_ranks = UInt32(clamping: f.calibratedRanks)
        m.pointee.num_parameters = UInt64(f.numParameters)
        m.pointee.config_json = arena.string(f.configJSON)
        m.pointee.version = f.version
        m.pointee.num_recommendable_items = UInt32(clamping: f.numRecommendableItems)
        return m
    }

    static func encodeModelInfoResponse(model: ModelFacts, loaded: [ModelFacts], defaultName: String) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__ModelInfoResponse.self, r2ec__v1__model_info_response__init)
        m.pointee.model = modelInfo(model, arena)
        let list = arena.array(UnsafeMutablePointer<R2ec__V1__ModelInfo>?.self, count: loaded.count)
        for (i, f) in loaded.enumerated() { list[i] = modelInfo(f, arena) }
        m.pointee.n_loaded = loaded.count
        m.pointee.loaded = list
        m.pointee.default_model = arena.string(defaultName)
        return packMessage(m)
    }

    static func encodeLoadModelResponse(name: String, version: UInt64) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__LoadModelResponse.self, r2ec__v1__load_model_response__init)
        m.pointee.name = arena.string(name)
        m.pointee.version = version
        return packMessage(m)
    }

    static func encodeUnloadModelResponse() -> [UInt8] { [] }
}
