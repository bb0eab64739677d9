// The r2ec.v1.Events messages (Protos/r2ec/v1/events.proto) to and from the live loop's Swift values. A batch over
// the server's limit is refused on its count, before a Swift value is made of any of its entries; every other check
// (ids, kinds, times, titles, JSON) is the live loop's (EventChecks), naming the field ("events[3].item_id").
import CProtobufC
import Data
import R2ecProtoC
import Serving

extension ProtoCodec {
    // MARK: Requests

    /// RecordEventsRequest's events; more than `maxEvents` is INVALID_ARGUMENT on `events` (limit events_per_call).
    static func decodeRecordEventsRequest(_ payload: [UInt8], maxEvents: Int) throws -> [EventInput] {
        try decode(payload, "RecordEventsRequest",
                   caps: [WireCap(number: 1, field: "events", max: maxEvents, limit: "events_per_call")],
                   unpack: r2ec__v1__record_events_request__unpack,
                   free: r2ec__v1__record_events_request__free_unpacked) { m in
            (0..<m.pointee.n_events).map { i in
                guard let e = m.pointee.events[i]?.pointee else { return EventInput(userId: "", itemId: "") }
                return EventInput(userId: swiftString(e.user_id), itemId: swiftString(e.item_id), timestamp: e.timestamp,
                                  kind: swiftString(e.kind), rating: e.rating, idempotencyKey: swiftString(e.idempotency_key))
            }
        }
    }

    /// UpsertItemsRequest's items; more than `maxItems` is INVALID_ARGUMENT on `items` (limit items_per_call).
    static func decodeUpsertItemsRequest(_ payload: [UInt8], maxItems: Int) throws -> [ItemInput] {
        try decode(payload, "UpsertItemsRequest",
                   caps: [WireCap(number: 1, field: "items", max: maxItems, limit: "items_per_call")],
                   unpack: r2ec__v1__upsert_items_request__unpack,
                   free: r2ec__v1__upsert_items_request__free_unpacked) { m in
            (0..<m.pointee.n_items).map { i in
                guard let x = m.pointee.items[i]?.pointee else { return ItemInput(itemId: "", title: "") }
                return ItemInput(itemId: swiftString(x.item_id), title: swiftString(x.title), year: Int(x.year),
                                 genres: swiftStrings(x.genres, x.n_genres), description: swiftString(x.description),
                                 metadataJSON: swiftString(x.metadata_json))
            }
        }
    }

    static func decodeGetUserHistoryRequest(_ payload: [UInt8]) throws -> (userId: String, limit: Int) {
        try decode(payload, "GetUserHistoryRequest", unpack: r2ec__v1__get_user_history_request__unpack,
                   free: r2ec__v1__get_user_history_request__free_unpacked) { m in
            (swiftString(m.pointee.user_id), Int(m.pointee.limit))
        }
    }

    static func decodeDeleteUserRequest(_ payload: [UInt8]) throws -> String {
        try decode(payload, "DeleteUserRequest", unpack: r2ec__v1__delete_user_request__unpack,
                   free: r2ec__v1__delete_user_request__free_unpacked) { swiftString($0.pointee.user_id) }
    }

    // MARK: Responses

    static func encodeRecordEventsResponse(_ r: RecordEventsResult) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__RecordEventsResponse.self, r2ec__v1__record_events_response__init)
        m.pointee.recorded = UInt32(clamping: r.recorded)
        m.pointee.duplicates = UInt32(clamping: r.duplicates.count)
        let indices = arena.array(UInt32.self, count: r.duplicates.count)
        for (i, d) in r.duplicates.enumerated() { indices[i] = UInt32(clamping: d) }
        m.pointee.n_duplicate_indices = r.duplicates.count
        m.pointee.duplicate_indices = indices
        return packMessage(m)
    }

    static func encodeUpsertItemsResponse(_ r: UpsertItemsResult) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__UpsertItemsResponse.self, r2ec__v1__upsert_items_response__init)
        m.pointee.created = UInt32(clamping: r.created)
        m.pointee.updated = UInt32(clamping: r.updated)
        m.pointee.catalog_version = r.catalogVersion
        m.pointee.n_encoded_by = r.encodedBy.count
        m.pointee.encoded_by = arena.strings(r.encodedBy)
        return packMessage(m)
    }

    static func encodeGetUserHistoryResponse(_ h: UserEvents) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__GetUserHistoryResponse.self, r2ec__v1__get_user_history_response__init)
        let list = arena.array(UnsafeMutablePointer<R2ec__V1__Event>?.self, count: h.events.count)
        for (i, e) in h.events.enumerated() {
            let x = arena.message(R2ec__V1__Event.self, r2ec__v1__event__init)
            x.pointee.user_id = arena.string(e.userId)
            x.pointee.item_id = arena.string(e.itemId)
            x.pointee.timestamp = e.timestamp
            x.pointee.kind = arena.string(e.kind)
            x.pointee.rating = e.rating
            x.pointee.idempotency_key = arena.string(e.idempotencyKey)
            list[i] = x
        }
        m.pointee.n_events = h.events.count
        m.pointee.events = list
        m.pointee.total = UInt64(max(0, h.total))
        return packMessage(m)
    }

    static func encodeDeleteUserResponse(deletedEvents: Int) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__DeleteUserResponse.self, r2ec__v1__delete_user_response__init)
        m.pointee.deleted_events = UInt64(max(0, deletedEvents))
        return packMessage(m)
    }
}
