// The bearer-token file: LF and CRLF files parse the same, errors name the line an editor shows, and a token an
// authorization header could never carry is refused at start-up.
import Foundation
@testable import Serving
import XCTest

final class TokenFileTests: XCTestCase {
    func testCRLFParsesLikeLF() throws {
        let lf = "# tokens\nuser-token\n\nadmin admin-token\n  other.token_2~  \n"
        let expected = TokenFile.Tokens(tokens: ["user-token", "other.token_2~"], admin: ["admin-token"])
        XCTAssertEqual(try TokenFile.parse(lf, path: "t"), expected)
        XCTAssertEqual(try TokenFile.parse(lf.replacingOccurrences(of: "\n", with: "\r\n"), path: "t"), expected)
        XCTAssertEqual(try TokenFile.parse("user-token\r\nadmin\tadmin-token", path: "t"), // tab, no final newline
                       TokenFile.Tokens(tokens: ["user-token"], admin: ["admin-token"]))
        XCTAssertEqual(try TokenFile.parse("abc+/==\r\n", path: "t").tokens, ["abc+/="+"="])
    }

    func testErrorsNameTheRealLine() {
        for (text, line) in [("ok\r\n# c\r\n\r\na b c\r\n", 4), ("ok\nuser two\n", 2), ("ok\r\nadmin\r\nbad\"token\r\n", 3),
                             ("\r\n\r\nx=y\r\n", 3), ("ok\nadmin tok\u{0}en\n", 2)] {
            XCTAssertThrowsError(try TokenFile.parse(text, path: "tokens.txt"), text) {
                XCTAssertTrue("\($0)".hasPrefix("tokens.txt:\(line): "), "\($0) for \(text.debugDescription)")
            }
        }
        XCTAssertThrowsError(try TokenFile.parse("# only a comment\r\n\r\n", path: "t")) {
            XCTAssertEqual("\($0)", "t holds no token")
        }
    }

    func testReadsAFile() throws {
        let path = NSTemporaryDirectory() + "r2ec-tokens-\(getpid())"
        try Data("user-token\r\nadmin admin-token\r\n".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertEqual(try TokenFile.read(path), TokenFile.Tokens(tokens: ["user-token"], admin: ["admin-token"]))
        XCTAssertThrowsError(try TokenFile.read(path + "-missing"))
    }
}
