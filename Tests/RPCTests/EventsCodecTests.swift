// The Events service's messages through ProtoCodec: requests packed by protobuf-c decode to the values sent, a batch
// over the limit is refused on its count naming the field, responses unpack (by protobuf-c) to what was encoded, and
// a server without a store answers the Events methods UNIMPLEMENTED. (The methods end to end over real SQLite and
// PostgreSQL stores: clients/python/tests/test_live_store.py.)
import CProtobufC
import Data
import Foundation
import R2ecProtoC
@testable import RPC
import Serving
import XCTest

final class EventsCodecTests: ServerFixture {
    func recordRequest(_ events: [(String, String, Int64, String, Float, String)]) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__RecordEventsRequest.self, r2ec__v1__record_events_request__init)
        let list = arena.array(UnsafeMutablePointer<R2ec__V1__Event>?.self, count: events.count)
        for (i, e) in events.enumerated() {
            let x = arena.message(R2ec__V1__Event.self, r2ec__v1__event__init)
            x.pointee.user_id = arena.string(e.0)
            x.pointee.item_id = arena.string(e.1)
            x.pointee.timestamp = e.2
            x.pointee.kind = arena.string(e.3)
            x.pointee.rating = e.4
            x.pointee.idempotency_key = arena.string(e.5)
            list[i] = x
        }
        m.pointee.n_events = events.count
        m.pointee.events = list
        return packMessage(m)
    }

    func testRecordEventsRequestDecodesToTheEventsSent() throws {
        let payload = recordRequest([("u1", "50", 1_700_000_000, "view", 4.5, "k1"), ("ü-2", "7", 0, "", 0, "")])
        let events = try ProtoCodec.decodeRecordEventsRequest(payload, maxEvents: 2)
        XCTAssertEqual(events, [EventInput(userId: "u1", itemId: "50", timestamp: 1_700_000_000, kind: "view", rating: 4.5,
                                           idempotencyKey: "k1"),
                                EventInput(userId: "ü-2", itemId: "7")])
        XCTAssertEqual(try ProtoCodec.decodeRecordEventsRequest([], maxEvents: 2), [])
    }

    func testABatchOverTheLimitIsRefusedOnItsCount() throws {
        let payload = recordRequest(Array(repeating: ("u", "1", 0, "", 0, ""), count: 3))
        XCTAssertThrowsError(try ProtoCodec.decodeRecordEventsRequest(payload, maxEvents: 2)) { error in
            let e = error as? ServingError
            XCTAssertEqual(e?.code, .invalidArgument)
            XCTAssertEqual(e?.field, "events")
            XCTAssertEqual(e?.limit, "events_per_call")
            XCTAssertEqual(e?.message, "events: 3 exceeds the server's limit of 2")
        }
        // A payload protobuf-c refuses names the message and the field.
        XCTAssertThrowsError(try ProtoCodec.decodeRecordEventsRequest([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], maxEvents: 2)) { error in
            let e = error as? ServingError
            XCTAssertEqual(e?.code, .invalidArgument)
            XCTAssertTrue(e?.message.hasPrefix("RecordEventsRequest: malformed protobuf") ?? false, e?.message ?? "")
        }
    }

    func testUpsertItemsRequestDecodesEveryField() throws {
        let arena = CArena()
        let m = arena.message(R2ec__V1__UpsertItemsRequest.self, r2ec__v1__upsert_items_request__init)
        let x = arena.message(R2ec__V1__ItemRecord.self, r2ec__v1__item_record__init)
        x.pointee.item_id = arena.string("new-1")
        x.pointee.title = arena.string("A Film")
        x.pointee.year = 2024
        x.pointee.n_genres = 2
        x.pointee.genres = arena.strings(["Drama", "Sci-Fi"])
        x.pointee.description = arena.string("Two lines\nof text")
        x.pointee.metadata_json = arena.string("{\"a\":1}")
        let list = arena.array(UnsafeMutablePointer<R2ec__V1__ItemRecord>?.self, count: 1)
        list[0] = x
        m.pointee.n_items = 1
        m.pointee.items = list
        let items = try ProtoCodec.decodeUpsertItemsRequest(packMessage(m), maxItems: 1)
        XCTAssertEqual(items, [ItemInput(itemId: "new-1", title: "A Film", year: 2024, genres: ["Drama", "Sci-Fi"],
                                         description: "Two lines\nof text", metadataJSON: "{\"a\":1}")])
        XCTAssertThrowsError(try ProtoCodec.decodeUpsertItemsRequest(packMessage(m), maxItems: 0)) { error in
            XCTAssertEqual((error as? ServingError)?.field, "items")
        }
    }

    func testResponsesUnpackToWhatWasEncoded() throws {
        let recorded = ProtoCodec.encodeRecordEventsResponse(RecordEventsResult(recorded: 3, duplicates: [1, 4]))
        let r = try XCTUnwrap(r2ec__v1__record_events_response__unpack(nil, recorded.count, recorded))
        defer { r2ec__v1__record_events_response__free_unpacked(r, nil) }
        XCTAssertEqual([r.pointee.recorded, r.pointee.duplicates], [3, 2])
        XCTAssertEqual(Array(UnsafeBufferPointer(start: r.pointee.duplicate_indices, count: r.pointee.n_duplicate_indices)), [1, 4])

        let history = ProtoCodec.encodeGetUserHistoryResponse(UserEvents(events: [
            UserEvent(userId: "u", itemId: "9", timestamp: 5, kind: "click", rating: 2, idempotencyKey: "k"),
        ], total: 7))
        let h = try XCTUnwrap(r2ec__v1__get_user_history_response__unpack(nil, history.count, history))
        defer { r2ec__v1__get_user_history_response__free_unpacked(h, nil) }
        XCTAssertEqual(h.pointee.total, 7)
        XCTAssertEqual(h.pointee.n_events, 1)
        let e = try XCTUnwrap(h.pointee.events[0]).pointee
        XCTAssertEqual([swiftString(e.user_id), swiftString(e.item_id), swiftString(e.kind), swiftString(e.idempotency_key)],
                       ["u", "9", "click", "k"])
        XCTAssertEqual(e.timestamp, 5)
        XCTAssertEqual(e.rating, 2)

        let upserted = ProtoCodec.encodeUpsertItemsResponse(UpsertItemsResult(created: 1, updated: 2, catalogVersion: 9,
                                                                              encodedBy: ["dual"]))
        let u = try XCTUnwrap(r2ec__v1__upsert_items_response__unpack(nil, upserted.count, upserted))
        defer { r2ec__v1__upsert_items_response__free_unpacked(u, nil) }
        XCTAssertEqual([u.pointee.created, u.pointee.updated], [1, 2])
        XCTAssertEqual(u.pointee.catalog_version, 9)
        XCTAssertEqual(swiftStrings(u.pointee.encoded_by, u.pointee.n_encoded_by), ["dual"])

        XCTAssertEqual(ProtoCodec.encodeDeleteUserResponse(deletedEvents: 0), [])
        XCTAssertEqual(ProtoCodec.encodeDeleteUserResponse(deletedEvents: 300), [0x08, 0xac, 0x02])
    }

    func testWithoutAStoreTheEventsMethodsAreUnimplemented() throws {
        try startServer()
        let client = try Client(port: port)
        for method in ["RecordEvents", "UpsertItems", "GetUserHistory", "DeleteUser"] {
            let e = status(client, "/r2ec.v1.Events/\(method)", [])
            XCTAssertEqual(e?.code, .unimplemented, method)
            XCTAssertTrue(e?.message.contains("--store") ?? false, method)
        }
        // ScoreItems names the model's version (popularity has no SimilarItems).
        let scored = try client.call("/r2ec.v1.Recommender/ScoreItems", scoreRequest(history: ["3"], items: ["1", "2"]))
        let s = try XCTUnwrap(r2ec__v1__score_items_response__unpack(nil, scored.count, scored))
        defer { r2ec__v1__score_items_response__free_unpacked(s, nil) }
        XCTAssertEqual(s.pointee.n_items, 2)
        XCTAssertEqual(s.pointee.model_version, try server.core.registry.model("").version)
        XCTAssertGreaterThan(s.pointee.model_version, 0)
    }

    func scoreRequest(history: [String], items: [String]) -> [UInt8] {
        let arena = CArena()
        let m = arena.message(R2ec__V1__ScoreItemsRequest.self, r2ec__v1__score_items_request__init)
        let events = arena.array(UnsafeMutablePointer<R2ec__V1__HistoryEvent>?.self, count: history.count)
        for (i, id) in history.enumerated() {
            let e = arena.message(R2ec__V1__HistoryEvent.self, r2ec__v1__history_event__init)
            e.pointee.item_id = arena.string(id)
            events[i] = e
        }
        m.pointee.n_history = history.count
        m.pointee.history = events
        m.pointee.n_item_ids = items.count
        m.pointee.item_ids = arena.strings(items)
        return packMessage(m)
    }
}
