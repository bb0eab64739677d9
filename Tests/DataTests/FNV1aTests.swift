import XCTest
@testable import Data

/// FNV-1a 64 against the published test vectors (Fowler/Noll/Vo's reference list) and its byte order.
final class FNV1aTests: XCTestCase {
    func testPublishedVectors() {
        for (text, expected) in [("", 0xcbf2_9ce4_8422_2325 as UInt64), ("a", 0xaf63_dc4c_8601_ec8c),
                                 ("foobar", 0x8594_4171_f739_67e8)] {
            var h = FNV1a()
            h.bytes(text.utf8)
            XCTAssertEqual(h.value, expected, text)
        }
        var h = FNV1a()
        h.bytes("a".utf8)
        XCTAssertEqual(h.hex16, "af63dc4c8601ec8c")
        XCTAssertEqual(FNV1a().hex16, "cbf29ce484222325")
    }

    func testWordIsItsBytesLeastSignificantFirst() {
        var words = FNV1a(), bytes = FNV1a()
        words.word(0x0102_0304_0506_0708)
        bytes.bytes([8, 7, 6, 5, 4, 3, 2, 1] as [UInt8])
        XCTAssertEqual(words.value, bytes.value)
    }
}
