// Inputs the FuzzDatasets target (Tests/Fuzz) found crashing the readers, minimised; each must now load or fail
// with a located DataError. New findings are added here with the input that produced them.
import XCTest
@testable import Data

final class DataFuzzRegressionTests: XCTestCase {
    /// A timestamp JSON number beyond Int64 (here infinity: 158868772e9000) trapped converting to Int64.
    func testAmazonTimestampOutOfRangeIsMalformed() {
        for t in ["158868772e9000", "-1e300", "9.3e18"] {
            let dir = TempDir()
            dir.write("Fuzz.jsonl", "{\"user_id\": \"U\", \"asin\": \"A\", \"rating\": 4, \"timestamp\": 1700000000}\n" +
                      "{\"user_id\": \"U1\", \"parent_asin\": \"B01\", \"rating\": 3, \"timestamp\": \(t)}\n")
            assertMalformed(try DatasetLoader.load(dir.path), file: "Fuzz.jsonl", line: 2, column: 1, contains: "timestamp")
        }
    }

    /// A rating that overflows Float (1e300) became an infinite rating.
    func testAmazonRatingOverflowingFloatIsMalformed() {
        let dir = TempDir()
        dir.write("Fuzz.jsonl", "{\"user_id\": \"U\", \"asin\": \"A\", \"rating\": 1e300, \"timestamp\": 1}\n")
        assertMalformed(try DatasetLoader.load(dir.path), file: "Fuzz.jsonl", line: 1, column: 1, contains: "rating")
    }

    /// A release_year of "1e999" or "nan" trapped converting Double to Int; such years are now unknown (0).
    func testAtomicYearThatIsNotAFiniteNumberIsUnknown() throws {
        let dir = TempDir()
        dir.write("fz.inter", "user_id:token\titem_id:token\nu\ta\nu\tb\nu\tc\nu\td\n")
        dir.write("fz.item", "item_id:token\trelease_year:token\na\t1e999\nb\tnan\nc\t1995.0\nd\t-inf\n")
        let d = try DatasetLoader.load(dir.path)
        XCTAssertEqual(d.catalog.items.map(\.year), [0, 0, 1995, 0])
    }
}
