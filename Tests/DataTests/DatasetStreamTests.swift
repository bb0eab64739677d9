// DatasetLoader.stream: the readers hand rows to a sink as they read them (what `r2ec store import` relies on), in
// the order the files give them, with the bytes read counted for a progress bar.
import XCTest
@testable import Data

/// Records what a reader hands over, in order.
struct RecordingSink: DatasetSink {
    enum Row: Equatable { case item(String), interaction(String, String) }
    var rows: [Row] = []
    mutating func item(_ item: Item) { rows.append(.item(item.id)) }
    mutating func interaction(user: String, item: String, rating: Float, timestamp: Int64) {
        rows.append(.interaction(user, item))
    }
}

final class DatasetStreamTests: XCTestCase {
    func testAtomicStreamsItemsThenInteractionsAndCountsBytes() throws {
        let dir = TempDir()
        let inter = "user_id:token\titem_id:token\n9\t2\n10\t7\n"
        let item = "item_id:token\tmovie_title:token_seq\n2\tHeat\n3\tAlien\n"
        dir.write("toy.inter", inter)
        dir.write("toy.item", item)
        var sink = RecordingSink()
        let meter = ReadMeter()
        try DatasetLoader.stream(dir.path, into: &sink, meter: meter)
        XCTAssertEqual(sink.rows, [.item("2"), .item("3"), .interaction("9", "2"), .interaction("10", "7")])
        XCTAssertEqual(meter.totalBytes, Int64(inter.utf8.count + item.utf8.count))
        XCTAssertEqual(meter.bytesRead, meter.totalBytes)
        XCTAssertEqual(try DatasetLoader.name(dir.path), "toy")
    }

    /// Amazon: the reviews first (their items unknown yet), then the metadata of reviewed items only.
    func testAmazonStreamsReviewsThenMetadataOfReviewedItems() throws {
        let dir = TempDir()
        dir.write("Toys.jsonl", "{\"user_id\": \"U1\", \"parent_asin\": \"B1\", \"rating\": 5, \"timestamp\": 1700000000000}\n")
        dir.write("meta_Toys.jsonl", "{\"parent_asin\": \"B0\", \"title\": \"Unreviewed\"}\n{\"parent_asin\": \"B1\", \"title\": \"Kite\"}\n")
        var sink = RecordingSink()
        try DatasetLoader.stream(dir.path, into: &sink)
        XCTAssertEqual(sink.rows, [.interaction("U1", "B1"), .item("B1")])
        XCTAssertEqual(try DatasetLoader.name(dir.path), "Toys")
    }

    /// A line that is not UTF-8 is read as Latin-1 on its own; the UTF-8 lines around it are kept as they are.
    func testLatin1IsDecidedPerLine() throws {
        let dir = TempDir()
        dir.write("x.inter", "user_id:token\titem_id:token\nu\ta\nu\tb\n")
        var item = Array("item_id:token\tmovie_title:token_seq\na\tCaf".utf8) + [0xE9] + Array("\n".utf8)
        item += Array("b\tNa\u{EF}ve\n".utf8)
        dir.write("x.item", bytes: item)
        let d = try DatasetLoader.load(dir.path)
        XCTAssertEqual(d.catalog.items.map(\.title), ["Caf\u{E9}", "Na\u{EF}ve"])
    }

    /// The streamed readers load the real ml-100k exactly as the whole-file readers did (docs/evaluation.md).
    func testMovieLens100KFingerprintIsUnchanged() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../data/ml-100k").path
        try XCTSkipUnless(FileManager.default.fileExists(atPath: dir + "/ml-100k.inter"), "data/ml-100k absent")
        let d = try DatasetLoader.load(dir)
        XCTAssertEqual(d.fingerprint, "bf004f2dca08dbc5")
        XCTAssertEqual(d.catalog.count, 1682)
        XCTAssertEqual(d.catalog[d.catalog.index(of: "1")!].title, "Toy Story")
    }
}
