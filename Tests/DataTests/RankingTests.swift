import XCTest
@testable import Data

final class RankingTests: XCTestCase {
    func testTopKBreaksTiesBySmallerIndexAndSkipsMasked() {
        let scores: [Float] = [0.5, 0.9, 0.5, 0.9, 0.1, .nan]
        scores.withUnsafeBufferPointer { s in
            XCTAssertEqual(Ranking.topK(s, k: 3).map(\.index), [1, 3, 0])
            XCTAssertEqual(Ranking.topK(s, k: 3, masked: [1]).map(\.index), [3, 0, 2])
            XCTAssertEqual(Ranking.topK(s, k: 10).map(\.index), [1, 3, 0, 2, 4])
            XCTAssertEqual(Ranking.topK(s, k: 2, allowed: [4, 2, 2]).map(\.index), [2, 4])
            // Rank = higher + equal-with-smaller-index + 1.
            XCTAssertEqual(Ranking.rank(of: 2, in: s), 4)
            XCTAssertEqual(Ranking.rank(of: 2, in: s, masked: [0, 1]), 2)
            XCTAssertEqual(Ranking.rank(of: 1, in: s), 1)
        }
    }

    func testSharedRanks() {
        let list = [RankedItem(index: 3, score: 9), RankedItem(index: 1, score: 5), RankedItem(index: 2, score: 5),
                    RankedItem(index: 0, score: 1)]
        XCTAssertEqual(Ranking.sharedRanks(list), [1, 2, 2, 4])
        XCTAssertEqual(Ranking.sharedRanks([]), [])
    }

    func testCatalogOrdersNumericIdsAsNumbers() {
        let c = Catalog(items: [Item(id: "10"), Item(id: "9"), Item(id: "B00X"), Item(id: "100"), Item(id: "A1")])
        XCTAssertEqual(c.items.map(\.id), ["9", "10", "100", "A1", "B00X"])
        XCTAssertEqual(c.index(of: "100"), 2)
        XCTAssertNil(c.index(of: "nope"))
    }
}
