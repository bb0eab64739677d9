import XCTest
@testable import Data

final class AmazonReaderTests: XCTestCase {
    func testReadsReviewsAndMetadata() throws {
        let dir = TempDir()
        dir.write("Video_Games.jsonl", """
        {"rating": 5.0, "title": "Great", "text": "Loved \\"it\\"", "images": [], "asin": "B01", "parent_asin": "P1", "user_id": "U2", "timestamp": 1588687728923, "helpful_vote": 0, "verified_purchase": true}
        {"rating": 3.0, "asin": "B02", "parent_asin": "P2", "user_id": "U1", "timestamp": 1588687728000}

        """)
        dir.write("meta_Video_Games.jsonl", """
        {"main_category": "Video Games", "title": "Caf\\u00e9 Quest \\ud83c\\udfae", "average_rating": 4.5, "rating_number": 10, "features": ["Fun"], "description": [], "categories": ["Games", "PC"], "details": {"a": null}, "parent_asin": "P1"}
        {"title": "Not reviewed", "description": ["x"], "parent_asin": "P9"}
        {"title": "Racer", "description": ["Fast", "cars."], "categories": [], "parent_asin": "P2"}
        """)
        let d = try DatasetLoader.load(dir.path)
        XCTAssertEqual(d.name, "Video_Games")
        XCTAssertEqual(d.catalog.items.map(\.id), ["P1", "P2"])  // only reviewed items
        XCTAssertEqual(d.catalog[0].title, "Café Quest 🎮")
        XCTAssertEqual(d.catalog[0].description, "Fun")  // features when the description is empty
        XCTAssertEqual(d.catalog[0].genres, ["Games", "PC"])
        XCTAssertEqual(d.catalog[1].description, "Fast cars.")
        XCTAssertEqual(d.userIds, ["U1", "U2"])
        XCTAssertEqual(d.interactions[0], Interaction(user: 1, item: 0, rating: 5, timestamp: 1_588_687_728))
    }

    func testCRLFLinesAndNoFinalNewline() throws {
        let dir = TempDir()
        dir.write("Toys.jsonl", "{\"user_id\": \"U\", \"asin\": \"A\", \"rating\": 4, \"timestamp\": 1700000000}\r\n" +
                  "{\"user_id\": \"V\", \"asin\": \"A\", \"rating\": 2.5, \"timestamp\": 1700000001}")
        let d = try DatasetLoader.load(dir.path)
        XCTAssertEqual(d.interactions.map(\.rating), [4, 2.5])
        XCTAssertEqual(d.interactions[1].timestamp, 1_700_000_001)  // seconds stay seconds
        XCTAssertEqual(d.catalog[0].title, "")  // no metadata file
    }

    func testMalformedJSONLines() {
        let cases: [(String, Int, Int, String)] = [
            ("{\"user_id\": \"U\", \"parent_asin\": \"P\", \"rating\": 5, \"timestamp\": 1}\n{\"user_id\": \"U\",, }\n",
             2, 17, "expected a string key"),
            ("{\"user_id\": \"U\", \"parent_asin\": \"P\", \"rating\": 5, \"timestamp\": 1\n", 1, 65, "not closed"),
            ("{\"user_id\": \"U\", \"parent_asin\": \"P\", \"rating\": \"five\", \"timestamp\": 1}\n", 1, 1, "numeric rating"),
            ("[1, 2]\n", 1, 1, "JSON object"),
            ("{\"user_id\": \"" + String(repeating: "é", count: 65) + "\", \"parent_asin\": \"P\", \"rating\": 5, \"timestamp\": 1}\n",
             1, 1, "130 bytes, at most 128"),
            ("{\"user_id\": \"U\", \"parent_asin\": \"\", \"rating\": 5, \"timestamp\": 1}\n", 1, 1, "parent_asin '': empty"),
            ("{\"a\": \"bad \\q escape\"}\n", 1, 12, "unknown escape"),
            ("{\"a\": 1} x\n", 1, 10, "after the JSON value"),
        ]
        for (text, line, column, message) in cases {
            let dir = TempDir()
            dir.write("Toys.jsonl", text)
            assertMalformed(try DatasetLoader.load(dir.path), file: "Toys.jsonl", line: line, column: column, contains: message)
        }
    }
}
