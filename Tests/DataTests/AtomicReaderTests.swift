import XCTest
@testable import Data

final class AtomicReaderTests: XCTestCase {
    func testReadsInteractionsItemsAndOrdersIdsNumerically() throws {
        let dir = TempDir()
        dir.write("toy.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" +
                  "10\t2\t4\t881250949.0\n9\t10\t3.5\t100\n10\t10\t5\t50\n\n")
        dir.write("toy.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n" +
                  "2\tToy Story\t1995\tAnimation Children's Comedy\n10\tHeat\t1995\tAction Crime\n7\tUnrated\t\t\n")
        dir.write("toy.user", "user_id:token\tage:token\n9\t24\n10\t53\n")
        let d = try DatasetLoader.load(dir.path)
        XCTAssertEqual(d.name, "toy")
        XCTAssertEqual(d.catalog.items.map(\.id), ["2", "7", "10"])  // numeric order; unrated item 7 kept
        XCTAssertEqual(d.userIds, ["9", "10"])
        XCTAssertEqual(d.catalog[0].title, "Toy Story")
        XCTAssertEqual(d.catalog[0].year, 1995)
        XCTAssertEqual(d.catalog[0].genres, ["Animation", "Children's", "Comedy"])
        XCTAssertEqual(d.interactions, [
            Interaction(user: 1, item: 0, rating: 4, timestamp: 881_250_949),
            Interaction(user: 0, item: 2, rating: 3.5, timestamp: 100),
            Interaction(user: 1, item: 2, rating: 5, timestamp: 50),
        ])
        XCTAssertEqual(d.userIndex(of: "10"), 1)
        XCTAssertNil(d.userIndex(of: "11"))
        // Sequences: oldest first.
        XCTAssertEqual(d.sequences()[1].items, [2, 0])
        let stats = d.itemStats()
        XCTAssertEqual(stats[2], ItemStats(count: 2, meanRating: 4.25))
        XCTAssertEqual(stats[1], ItemStats(count: 0, meanRating: 0))
    }

    func testFingerprintIsStableAndContentSensitive() throws {
        let a = TempDir(), b = TempDir()
        let header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        a.write("x.inter", header + "1\t1\t4\t5\n2\t1\t3\t6\n")
        b.write("x.inter", header + "1\t1\t4\t5\n2\t1\t3\t7\n")
        let fa = try DatasetLoader.load(a.path).fingerprint
        XCTAssertEqual(fa, try DatasetLoader.load(a.path).fingerprint)
        XCTAssertEqual(fa.count, 16)
        XCTAssertNotEqual(fa, try DatasetLoader.load(b.path).fingerprint)
    }

    func testMalformedAtomicFilesNameFileLineAndColumn() {
        let header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        let cases: [(String, Int, Int, String)] = [
            (header + "1\t2\t4\t5\n1\t2\t4\n", 3, 6, "expected 4 fields"),
            (header + "1\t2\tfour\t5\n", 2, 5, "not a number"),
            (header + "1\t\t4\t5\n", 2, 3, "item_id '': empty"),
            // Ids follow the RPC's rule (Identifier): at most 128 bytes, no control characters.
            (header + String(repeating: "u", count: 129) + "\t2\t4\t5\n", 2, 1, "129 bytes, at most 128"),
            // The bad text is quoted escaped (ClientText), so a message cannot carry control characters...
            (header + "1\tab\u{7F}c\t4\t5\n", 2, 3, "item_id 'ab\\u{7f}c': control character U+7F at character 2"),
            // ...and cut, so a huge field cannot make a huge message.
            (header + "1\t2\t" + String(repeating: "9x", count: 5000) + "\t5\n", 2, 5, "more bytes)' is not a number"),
            ("user_id:token\titem_id:tokn\n1\t2\n", 1, 23, "unknown field type"),
            ("user_id\titem_id:token\n", 1, 1, "not name:type"),
            ("user:token\titem_id:token\n1\t2\n", 1, 1, "no 'user_id'"),
            (header + "1\t2\t4\tyesterday\n", 2, 7, "not a number"),
        ]
        for (text, line, column, message) in cases {
            let dir = TempDir()
            dir.write("bad.inter", text)
            assertMalformed(try DatasetLoader.load(dir.path), file: "bad.inter", line: line, column: column, contains: message)
        }
    }

    func testDuplicateItemInItemFile() {
        let dir = TempDir()
        dir.write("d.inter", "user_id:token\titem_id:token\n1\t2\n")
        dir.write("d.item", "item_id:token\ttitle:token_seq\n2\tA\n2\tB\n")
        assertMalformed(try DatasetLoader.load(dir.path), file: "d.item", line: 3, column: 1, contains: "twice")
    }

    func testUnknownFormatAndMissingDirectory() {
        let dir = TempDir()
        dir.write("readme.txt", "nothing here")
        XCTAssertThrowsError(try DatasetLoader.load(dir.path)) { e in
            guard case DataError.unknownFormat = e else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try DatasetLoader.load(dir.path + "/nope")) { e in
            guard case DataError.unreadable = e else { return XCTFail("\(e)") }
        }
    }
}
