// Every bad input of the Events service is refused whole, with a status naming the field.
import Data
import Foundation
@testable import Serving
import XCTest

final class EventChecksTests: XCTestCase {
    let now: Int64 = 1_800_000_000
    let known: Set<String> = ["1", "2", "B00X"]

    func check(_ events: [EventInput], limits: EventLimits = EventLimits()) throws -> [UserEvent] {
        try EventChecks.events(events, limits: limits, now: now, knownItem: { self.known.contains($0) })
    }

    func assertRefused(_ code: StatusCode, field: String, _ body: () throws -> Any, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try body()
            XCTFail("accepted; expected \(code.name) on \(field)", file: file, line: line)
        } catch let e as ServingError {
            XCTAssertEqual(e.code, code, e.message, file: file, line: line)
            XCTAssertEqual(e.field, field, e.message, file: file, line: line)
            XCTAssertTrue(e.message.hasPrefix(field), e.message, file: file, line: line)
        } catch {
            XCTFail("\(error)", file: file, line: line)
        }
    }

    func testGoodEventsGetDefaults() throws {
        let out = try check([EventInput(userId: "u", itemId: "1"),
                             EventInput(userId: "u", itemId: "B00X", timestamp: 5, kind: "click.v2", rating: -1.5, idempotencyKey: "k")])
        XCTAssertEqual(out, [UserEvent(userId: "u", itemId: "1", timestamp: now, kind: "interaction"),
                             UserEvent(userId: "u", itemId: "B00X", timestamp: 5, kind: "click.v2", rating: -1.5, idempotencyKey: "k")])
    }

    func testBadEventsNameTheField() {
        let ok = EventInput(userId: "u", itemId: "1")
        func batch(_ bad: EventInput) -> [EventInput] { [ok, ok, ok, bad] }
        var e = ok
        e.itemId = "nope"
        assertRefused(.notFound, field: "events[3].item_id") { try self.check(batch(e)) }
        e = ok; e.itemId = ""
        assertRefused(.invalidArgument, field: "events[3].item_id") { try self.check(batch(e)) }
        e = ok; e.userId = String(repeating: "x", count: 129)
        assertRefused(.invalidArgument, field: "events[3].user_id") { try self.check(batch(e)) }
        e = ok; e.userId = ""
        assertRefused(.invalidArgument, field: "events[3].user_id") { try self.check(batch(e)) }
        e = ok; e.userId = "a\tb"
        assertRefused(.invalidArgument, field: "events[3].user_id") { try self.check(batch(e)) }
        e = ok; e.userId = "bad\u{FFFD}utf8"
        assertRefused(.invalidArgument, field: "events[3].user_id") { try self.check(batch(e)) }
        e = ok; e.timestamp = now + 86_401
        assertRefused(.invalidArgument, field: "events[3].timestamp") { try self.check(batch(e)) }
        e = ok; e.timestamp = -1
        assertRefused(.invalidArgument, field: "events[3].timestamp") { try self.check(batch(e)) }
        e = ok; e.kind = "Click"
        assertRefused(.invalidArgument, field: "events[3].kind") { try self.check(batch(e)) }
        e = ok; e.kind = String(repeating: "k", count: 33)
        assertRefused(.invalidArgument, field: "events[3].kind") { try self.check(batch(e)) }
        e = ok; e.rating = .nan
        assertRefused(.invalidArgument, field: "events[3].rating") { try self.check(batch(e)) }
        e = ok; e.rating = 2e6
        assertRefused(.invalidArgument, field: "events[3].rating") { try self.check(batch(e)) }
        e = ok; e.idempotencyKey = String(repeating: "k", count: 129)
        assertRefused(.invalidArgument, field: "events[3].idempotency_key") { try self.check(batch(e)) }
        // The limits of the batch itself.
        assertRefused(.invalidArgument, field: "events") { try self.check([]) }
        var small = EventLimits()
        small.maxEventsPerCall = 3
        assertRefused(.invalidArgument, field: "events") { try self.check(batch(ok), limits: small) }
        // Exactly at the limits is fine.
        e = ok; e.userId = String(repeating: "é", count: 64); e.timestamp = now + 86_400; e.rating = 1e6
        XCTAssertNoThrow(try check(batch(e)))
    }

    func testItems() throws {
        let good = ItemInput(itemId: "new", title: "A title", year: 2024, genres: ["Sci-Fi", "Film Noir"],
                             description: "Line one.\nLine two.", metadataJSON: "{\"price\": 9.5, \"tags\": [\"a\"]}")
        let out = try EventChecks.items([good, ItemInput(itemId: "other", title: "T")], limits: EventLimits())
        XCTAssertEqual(out[0].item, Item(id: "new", title: "A title", year: 2024, genres: ["Sci-Fi", "Film Noir"],
                                         description: "Line one.\nLine two."))
        XCTAssertEqual(out[1].metadataJSON, "{}")
        func refused(_ field: String, _ change: (inout ItemInput) -> Void) {
            var x = good
            change(&x)
            assertRefused(.invalidArgument, field: field) { try EventChecks.items([good, x], limits: EventLimits()) }
        }
        refused("items[1].item_id") { $0.itemId = "new" }  // repeats items[0]
        refused("items[1].title") { $0.itemId = "b"; $0.title = "" }
        refused("items[1].title") { $0.itemId = "b"; $0.title = String(repeating: "t", count: 513) }
        refused("items[1].genres") { $0.itemId = "b"; $0.genres = (0..<33).map { "g\($0)" } }
        refused("items[1].genres[1]") { $0.itemId = "b"; $0.genres = ["a", ""] }
        refused("items[1].description") { $0.itemId = "b"; $0.description = String(repeating: "d", count: 8193) }
        refused("items[1].metadata_json") { $0.itemId = "b"; $0.metadataJSON = "[1, 2]" }
        refused("items[1].metadata_json") { $0.itemId = "b"; $0.metadataJSON = "{\"a\": " }
        refused("items[1].metadata_json") { $0.itemId = "b"; $0.metadataJSON = String(repeating: "[", count: 5000) }
        refused("items[1].metadata_json") { $0.itemId = "b"; $0.metadataJSON = "{\"a\": \"" + String(repeating: "x", count: 16_400) + "\"}" }
        assertRefused(.invalidArgument, field: "items") { try EventChecks.items([], limits: EventLimits()) }
    }

    /// A metadata refusal says which rule failed: not JSON at all (with the parser's reason) or JSON of another kind.
    func testMetadataRefusalsSayWhy() {
        func message(_ text: String) -> String {
            do { try EventChecks.jsonObject(text, field: "m"); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertEqual(message("{\"a\": [1, {\"b\": null}]}"), "accepted")
        XCTAssertTrue(message("[1, 2]").contains("valid JSON, but an array"), message("[1, 2]"))
        XCTAssertTrue(message("\"text\"").contains("valid JSON, but not an object"), message("\"text\""))
        for bad in ["{\"a\": ", "{\"a\": 1e999}", "{a: 1}", ""] {
            XCTAssertTrue(message(bad).contains("m: not valid JSON"), "\(bad): \(message(bad))")
        }
    }

    func testHistoryLimit() throws {
        XCTAssertEqual(try EventChecks.historyLimit(0, limits: EventLimits()), 100)
        XCTAssertEqual(try EventChecks.historyLimit(10_000, limits: EventLimits()), 10_000)
        assertRefused(.invalidArgument, field: "limit") { try EventChecks.historyLimit(10_001, limits: EventLimits()) }
    }
}
