// Client strings in statuses and logs (issue 13 item 8) and NUL bytes in strings (item 10): ClientText escapes
// and cuts, LogLimiter rate-limits repeated kinds, every decoder refuses a string holding U+0000 naming the field.
import XCTest
@testable import RPC
import R2ecProtoC
import Data
import Serving

final class ClientStringTests: XCTestCase {
    // MARK: ClientText

    func testShortPrintableTextIsUnchanged() {
        XCTAssertEqual(ClientText.clip("unknown item id '50'"), "unknown item id '50'")
        XCTAssertEqual(ClientText.clip("é ü 日本 \\n"), "é ü 日本 \\n")
    }

    func testControlCharactersAreEscaped() {
        XCTAssertEqual(ClientText.clip("a\nFORGED\r\t\u{1b}[2J\u{0}\u{7f}\u{85}\u{2028}\u{202e}x"),
                       "a\\nFORGED\\r\\t\\u{1b}[2J\\u{0}\\u{7f}\\u{85}\\u{2028}\\u{202e}x")
    }

    func testLongTextIsCutWithinTheLimitAndSaysHowMuch() {
        let huge = String(repeating: "x", count: 100_000)
        let cut = ClientText.clip(huge, limit: 1024)
        XCTAssertLessThanOrEqual(cut.utf8.count, 1024)
        XCTAssertTrue(cut.hasSuffix("...(\(100_000 - 1000) more bytes)"), String(cut.suffix(40)))
        XCTAssertTrue(cut.hasPrefix(String(repeating: "x", count: 1000)))
    }

    func testCutNeverSplitsACharacterOrAnEscape() {
        for limit in 24...80 {
            let text = String(repeating: "日\n", count: 50)
            let cut = ClientText.clip(text, limit: limit)
            XCTAssertLessThanOrEqual(cut.utf8.count, limit)
            let head = cut.components(separatedBy: "...(").first!
            // Whole pieces only: the head is a repetition of "日\\n" possibly ending after a "日".
            XCTAssertTrue(String(repeating: "日\\n", count: 50).hasPrefix(head), head)
        }
    }

    func testClipIsIdempotent() {
        for text in ["plain", "a\nb", String(repeating: "é\u{1}", count: 3000)] {
            let once = ClientText.clip(text, limit: 300)
            XCTAssertEqual(ClientText.clip(once, limit: 300), once)
        }
    }

    func testServingErrorsAreSanitisedForEveryDoor() {
        let e = ServingError(.notFound, "item_ids[0]: unknown item id '\(String(repeating: "z", count: 5000))\nX'",
                             field: "item_ids[0]\n")
        XCTAssertLessThanOrEqual(e.message.utf8.count, ClientText.messageLimit)
        XCTAssertFalse(e.message.contains("\n"))
        XCTAssertEqual(e.field, "item_ids[0]\\n")
    }

    func testStatusAndGoAwayMessagesAreSanitisedOnTheWire() throws {
        let payload = ProtoCodec.encodeStatus(.unimplemented, "unknown method '/a\nb" + String(repeating: "c", count: 9000) + "'")
        let status = try Client.decodeStatus(payload)
        XCTAssertLessThanOrEqual(status.message.utf8.count, ClientText.messageLimit)
        XCTAssertTrue(status.message.hasPrefix("unknown method '/a\\nbccc"))
    }

    // MARK: LogLimiter

    func testKindsIgnorePeersAndNumbers() {
        XCTAssertEqual(LogLimiter.kind("127.0.0.1:5000: protocol violation: CALL on stream 7"),
                       LogLimiter.kind("127.0.0.1:6123: protocol violation: CALL on stream 99"))
        XCTAssertNotEqual(LogLimiter.kind("a: b"), LogLimiter.kind("a: c"))
        XCTAssertLessThanOrEqual(LogLimiter.kind(String(repeating: "y", count: 10_000)).count, 64)
        // Garbage frames carry random magic: hex values a client chose are numbers too (each was a kind of its own,
        // so lines about garbage frames were never limited).
        XCTAssertEqual(LogLimiter.kind("127.0.0.1:5000: protocol violation: bad frame magic 0x9CAB3D69 (expected 0x52324543, \"R2EC\")"),
                       LogLimiter.kind("127.0.0.1:5001: protocol violation: bad frame magic 0xEE25A1FA (expected 0x52324543, \"R2EC\")"))
        XCTAssertNotEqual(LogLimiter.kind("protocol violation: bad frame magic 0x1"), LogLimiter.kind("protocol violation: bad frame type 0x1"))
    }

    func testBurstThenSuppressedThenNoted() {
        var limiter = LogLimiter()
        limiter.burst = 3
        limiter.window = 1_000
        var written = 0
        for t in 0..<10 {
            if limiter.admit("k", now: UInt64(t)).write { written += 1 }
        }
        XCTAssertEqual(written, 3)
        let next = limiter.admit("k", now: 2_000)
        XCTAssertTrue(next.write)
        XCTAssertEqual(next.note, "suppressed 7 more line(s) like 'k' in 0 s")
        // Other kinds are not held back by this one.
        XCTAssertTrue(limiter.admit("other", now: 2_001).write)
    }

    func testExpireReportsClosedWindows() {
        var limiter = LogLimiter()
        limiter.burst = 1
        limiter.window = 10
        _ = limiter.admit("a", now: 0)
        _ = limiter.admit("a", now: 1)
        _ = limiter.admit("b", now: 5)
        XCTAssertEqual(limiter.expire(now: 12), ["suppressed 1 more line(s) like 'a' in 0 s"])
        XCTAssertTrue(limiter.admit("a", now: 13).write)
    }

    func testKindTableIsBounded() {
        var limiter = LogLimiter()
        limiter.maxKinds = 16
        for i in 0..<1000 { _ = limiter.admit("kind \(i) x", now: 0) }
        // Past the bound the table restarts; a kind seen again is admitted.
        XCTAssertTrue(limiter.admit("kind 999 x", now: 0).write)
    }

    // MARK: NUL bytes in strings

    private func refused(_ body: () throws -> Void) -> ServingError? {
        do { try body(); return nil } catch { return error as? ServingError }
    }

    func testNULInAMetadataValueIsRefusedNamingIt() {
        let ok = Client.callHeader(method: "/r2ec.v1.Health/Check", timeoutMs: 0,
                                   metadata: [("authorization", "Bearer token")])
        XCTAssertEqual(try ProtoCodec.decodeCallHeader(ok).metadata.first?.1, "Bearer token")
        // protobuf-c's C strings drop everything after the NUL: build the bytes by hand.
        var entry: [UInt8] = [0x0a, 13] + Array("authorization".utf8)
        let value = Array("Bearer token\0junk".utf8)
        entry += [0x12, UInt8(value.count)] + value
        let method = Array("/r2ec.v1.Health/Check".utf8)
        let header: [UInt8] = [0x0a, UInt8(method.count)] + method + [0x1a, UInt8(entry.count)] + entry
        let e = refused { _ = try ProtoCodec.decodeCallHeader(header) }
        XCTAssertEqual(e?.code, .invalidArgument)
        XCTAssertEqual(e?.field, "metadata[0].value")
        XCTAssertTrue(e?.message.contains("NUL") ?? false, e?.message ?? "")
    }

    func testNULInItemIdsIsRefusedNamingTheIndex() {
        // GetItemsRequest: item_ids (1) "1", "50\0zzz"
        let payload: [UInt8] = [0x0a, 0x01, 0x31, 0x0a, 0x06, 0x35, 0x30, 0x00, 0x7a, 0x7a, 0x7a]
        let e = refused { _ = try ProtoCodec.decodeGetItemsRequest(payload) }
        XCTAssertEqual(e?.field, "item_ids[1]")
        XCTAssertEqual(try ProtoCodec.decodeGetItemsRequest([0x0a, 0x02, 0x35, 0x30]).ids, ["50"])
    }

    func testNULInANestedStringIsRefused() {
        // RecommendRequest: history (2) [{item_id "7"}, {item_id "5\0"}], top_k 0 bytes are not strings
        let payload: [UInt8] = [0x18, 0x00, 0x12, 0x03, 0x0a, 0x01, 0x37, 0x12, 0x04, 0x0a, 0x02, 0x35, 0x00]
        let e = refused { _ = try ProtoCodec.decodeRecommendRequest(payload) }
        XCTAssertEqual(e?.field, "history[1].item_id")
    }

    func testRecommendEncodingCarriesEventTimesAndRatings() throws {
        // history (2) [{item_id (1) "7", timestamp (2) 300 = varint ac 02, rating (3) 4.5f = fixed32 00 00 90 40}]
        let payload = RequestEncoding.recommend(itemIds: ["7"], timestamps: [300], ratings: [4.5])
        XCTAssertEqual(payload, [0x12, 0x0b, 0x0a, 0x01, 0x37, 0x10, 0xac, 0x02, 0x1d, 0x00, 0x00, 0x90, 0x40])
        let events = try ProtoCodec.decodeRecommendRequest(payload).history.events
        XCTAssertEqual(events.map(\.timestamp), [300])
        XCTAssertEqual(events.map(\.rating), [4.5])
    }

    func testZeroBytesOutsideStringsAreFine() throws {
        // top_k 0 (a zero byte on the wire), rating 0.0 (fixed32 zeros), item "50".
        let payload: [UInt8] = [0x18, 0x00, 0x12, 0x09, 0x0a, 0x02, 0x35, 0x30, 0x1d, 0x00, 0x00, 0x00, 0x00]
        XCTAssertEqual(try ProtoCodec.decodeRecommendRequest(payload).history.events.map(\.itemId), ["50"])
    }
}
