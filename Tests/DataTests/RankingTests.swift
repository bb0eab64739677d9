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

    /// Against a full sort under the same rule (score descending, then index ascending; masked and NaN left out), on
    /// rows with many ties, NaNs and masks, for k below, at and above the number of candidates.
    func testTopKMatchesAFullSort() {
        var state: UInt64 = 12345
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        for trial in 0..<300 {
            let n = 1 + Int(next() % 200)
            let levels = 1 + Int(next() % 8)   // few distinct scores: many ties
            let scores: [Float] = (0..<n).map { _ in next() % 17 == 0 ? .nan : Float(Int(next() % UInt64(levels))) - 3 }
            let masked = Set((0..<Int(next() % 12)).map { _ in Int(next() % UInt64(n)) })
            let k = 1 + Int(next() % UInt64(n + 5))
            let expected = scores.indices.filter { !scores[$0].isNaN && !masked.contains($0) }
                .sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
                .prefix(k)
            let got = scores.withUnsafeBufferPointer { Ranking.topK($0, k: k, masked: masked) }
            XCTAssertEqual(got.map(\.index), Array(expected), "trial \(trial): n \(n), k \(k), masked \(masked.sorted())")
            XCTAssertEqual(got.map(\.score), expected.map { scores[$0] }, "trial \(trial)")
            let allowed = (0..<Int(next() % 30)).map { _ in Int(next() % UInt64(n + 3)) - 1 }
            let expectedAllowed = Set(allowed).filter { $0 >= 0 && $0 < n && !scores[$0].isNaN && !masked.contains($0) }
                .sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
                .prefix(k)
            let gotAllowed = scores.withUnsafeBufferPointer { Ranking.topK($0, k: k, masked: masked, allowed: allowed) }
            XCTAssertEqual(gotAllowed.map(\.index), Array(expectedAllowed), "trial \(trial) with allowed \(allowed)")
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
