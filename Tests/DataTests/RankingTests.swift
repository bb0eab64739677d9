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

    /// Rows long enough for the 16-wide skip (blocks, a ragged tail), against a full sort under the same rule: random
    /// scores, rising ones (every block holds a new best), falling ones, all equal, few levels, and NaN, -inf and
    /// +inf sprinkled in; masks that hit the best items; k from 1 to above the number of candidates.
    func testTopKOverLongRowsMatchesAFullSort() {
        var state: UInt64 = 987654321
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        func uniform() -> Float { Float(next() % 1_000_000) / 1_000_000 }
        for trial in 0..<120 {
            let n = 1 + Int(next() % 3000)
            var scores: [Float]
            switch trial % 6 {
            case 0: scores = (0..<n).map { _ in uniform() }
            case 1: scores = (0..<n).map { Float($0) }
            case 2: scores = (0..<n).map { Float(n - $0) }
            case 3: scores = Array(repeating: 0.25, count: n)
            case 4: scores = (0..<n).map { _ in Float(next() % 3) }
            default: scores = (0..<n).map { _ in uniform() * 2 - 1 }
            }
            for _ in 0..<Int(next() % 40) {
                let at = Int(next() % UInt64(n))
                scores[at] = [Float.nan, -.infinity, .infinity, -Float.nan][Int(next() % 4)]
            }
            let best = scores.indices.filter { !scores[$0].isNaN }
                .sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
            var masked = Set((0..<Int(next() % 25)).map { _ in Int(next() % UInt64(n)) })
            if trial % 2 == 0 { masked.formUnion(best.prefix(Int(next() % 8))) }
            for k in [1, 10, 1 + Int(next() % 100), n, n + 7] {
                let expected = best.filter { !masked.contains($0) }.prefix(k)
                let got = scores.withUnsafeBufferPointer { Ranking.topK($0, k: k, masked: masked) }
                XCTAssertEqual(got.map(\.index), Array(expected), "trial \(trial): n \(n), k \(k)")
                XCTAssertEqual(got.map(\.score.bitPattern), expected.map { scores[$0].bitPattern }, "trial \(trial)")
            }
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
