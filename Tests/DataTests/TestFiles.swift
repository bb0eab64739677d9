// Test support: a fresh temporary directory per test with files written from strings or raw bytes.
import Foundation
import XCTest

final class TempDir {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "r2ec-data-tests-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    @discardableResult
    func write(_ name: String, _ text: String) -> String { write(name, bytes: Array(text.utf8)) }

    @discardableResult
    func write(_ name: String, bytes: [UInt8]) -> String {
        let p = (path as NSString).appendingPathComponent(name)
        FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }
}

/// Asserts that `body` throws DataError.malformed at exactly this file (suffix), line and column.
func assertMalformed(_ body: @autoclosure () throws -> Any, file expectedFile: String, line expectedLine: Int,
                     column expectedColumn: Int, contains text: String? = nil,
                     file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected a malformed-input error", file: file, line: line)
    } catch let DataError.malformed(f, l, c, message) {
        XCTAssertTrue(f.hasSuffix(expectedFile), "file \(f)", file: file, line: line)
        XCTAssertEqual(l, expectedLine, "line; message: \(message)", file: file, line: line)
        XCTAssertEqual(c, expectedColumn, "column; message: \(message)", file: file, line: line)
        if let text { XCTAssertTrue(message.contains(text), "message '\(message)' lacks '\(text)'", file: file, line: line) }
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}

@testable import Data
