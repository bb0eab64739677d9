// JSON log lines read back by Foundation's JSON parser (the independent reader): fields, escaping, one line each.
import Foundation
import Logging
@testable import Serving
import XCTest

final class JSONLogHandlerTests: XCTestCase {
    func testLinesParseAsJSONWithEveryField() throws {
        let lines = LockedLines()
        var logger = Logger(label: "r2ec.rpc") { JSONLogHandler(label: $0, level: .debug, write: { lines.append($0) }) }
        logger.logLevel = .debug
        logger.warning("call failed \"quoted\"\nnext\u{1}", metadata: ["request_id": "req-42", "code": "NOT_FOUND",
                                                                      "message": "clash"])
        logger.trace("not written")
        let written = lines.all
        XCTAssertEqual(written.count, 1)
        XCTAssertTrue(written[0].hasSuffix("}\n") && !written[0].dropLast().contains("\n"))
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(written[0].utf8)) as? [String: String])
        XCTAssertEqual(object["level"], "warning")
        XCTAssertEqual(object["logger"], "r2ec.rpc")
        XCTAssertEqual(object["message"], "call failed \"quoted\"\nnext\u{1}")
        XCTAssertEqual(object["request_id"], "req-42")
        XCTAssertEqual(object["code"], "NOT_FOUND")
        XCTAssertEqual(object["md_message"], "clash")
        let time = try XCTUnwrap(object["time"])
        let parsed = try XCTUnwrap(ISO8601DateFormatter.withFractionalSeconds.date(from: time), time)
        XCTAssertLessThan(abs(parsed.timeIntervalSinceNow), 60)
    }

    func testTimestampIsUTCWithMilliseconds() {
        XCTAssertEqual(JSONLogHandler.timestamp(Date(timeIntervalSince1970: 1_764_736_200.5)), "2025-12-03T04:30:00.500Z")
        XCTAssertEqual(JSONLogHandler.timestamp(Date(timeIntervalSince1970: 0)), "1970-01-01T00:00:00.000Z")
    }
}

private final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}

extension ISO8601DateFormatter {
    static var withFractionalSeconds: ISO8601DateFormatter {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }
}
