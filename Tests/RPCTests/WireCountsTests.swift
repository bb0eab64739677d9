// Repeated entries counted on the wire before protobuf-c allocates them: the refusal carries the field, the whole
// count, the limit's metric label and the serving core's own wording; counts within the caps, other fields and
// malformed bytes pass through to the decoder, which refuses malformed bytes itself.
import Foundation
@testable import RPC
import Serving
import XCTest

final class WireCountsTests: XCTestCase {
    /// `n` empty entries of field 1 (tag 0x0a, length 0): the cheapest repeated entry on the wire.
    func emptyEntries(_ n: Int) -> [UInt8] { Array(repeating: [0x0a, 0x00], count: n).flatMap { $0 } }

    func refusal(_ body: () throws -> Void) -> ServingError? {
        do { try body(); return nil } catch let e as ServingError { return e } catch { XCTFail("\(error)"); return nil }
    }

    func testTwoMillionEmptyEventsAreRefusedBeforeDecoding() {
        let payload = emptyEntries(2_000_000)  // 4 MB: the frame limit's worth
        let e = refusal { _ = try ProtoCodec.decodeRecordEventsRequest(payload, maxEvents: 1000) }
        XCTAssertEqual(e?.code, .invalidArgument)
        XCTAssertEqual(e?.field, "events")
        XCTAssertEqual(e?.limit, "events_per_call")
        XCTAssertEqual(e?.message, "events: 2000000 exceeds the server's limit of 1000")
    }

    func testTheCapItselfIsAllowed() throws {
        let events = (0..<3).map { EventInput(userId: "u", itemId: "\($0)") }
        XCTAssertEqual(try ProtoCodec.decodeRecordEventsRequest(RequestEncoding.recordEvents(events), maxEvents: 3), events)
        let e = refusal { _ = try ProtoCodec.decodeRecordEventsRequest(RequestEncoding.recordEvents(events), maxEvents: 2) }
        XCTAssertEqual(e?.message, "events: 3 exceeds the server's limit of 2")
    }

    func testRecommendRequestListsAreCappedByTheServingLimits() {
        var limits = RequestLimits()
        limits.maxHistoryEvents = 2
        limits.maxItemIds = 1
        let history = RequestEncoding.recommend(itemIds: ["1", "2", "3"])
        XCTAssertEqual(refusal { _ = try ProtoCodec.decodeRecommendRequest(history, limits: limits) }?.message,
                       "history: 3 exceeds the server's limit of 2")
        let exclude = RequestEncoding.recommend(itemIds: ["1"], exclude: ["7", "8"])
        let e = refusal { _ = try ProtoCodec.decodeRecommendRequest(exclude, limits: limits) }
        XCTAssertEqual(e?.field, "exclude_item_ids")
        XCTAssertEqual(e?.limit, "item_ids")
        XCTAssertNil(refusal { _ = try ProtoCodec.decodeRecommendRequest(RequestEncoding.recommend(itemIds: ["1", "2"]),
                                                                         limits: limits) })
    }

    func testOtherFieldsAndMalformedBytesPassThrough() {
        let cap = [WireCap(number: 1, field: "events", max: 1, limit: "x")]
        // Field 2 repeated many times is not capped.
        let other = Array(repeating: [UInt8]([0x12, 0x00]), count: 10).flatMap { $0 }
        XCTAssertNil(other.withUnsafeBytes { WireCounts.check($0, cap) })
        // A length running past the end before the cap is reached: left to protobuf-c.
        XCTAssertNil([UInt8]([0x0a, 0x05, 0x01]).withUnsafeBytes { WireCounts.check($0, cap) })
        // Past the cap, then garbage: still refused, with the count up to the garbage.
        let e = ([0x0a, 0x00, 0x0a, 0x00, 0x0a, 0x00] + [0xff]).withUnsafeBytes { WireCounts.check($0, cap) }
        XCTAssertEqual(e?.message, "events: 3 exceeds the server's limit of 1")
        // The decoder still names a malformed payload's field.
        let broken = refusal { _ = try ProtoCodec.decodeRecordEventsRequest([0x0a, 0x05, 0x01], maxEvents: 10) }
        XCTAssertEqual(broken?.code, .invalidArgument)
    }
}
