import Data
import XCTest
@testable import Eval

final class MetricsTests: XCTestCase {
    func testMetricValuesByHand() {
        XCTAssertEqual(Metrics.names(), ["HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20", "MRR"])
        XCTAssertEqual(Metrics.values(rank: 1), [1, 1, 1, 1, 1, 1, 1])
        let r3 = Metrics.values(rank: 3)  // NDCG = 1/log2(4) = 0.5
        XCTAssertEqual(r3, [1, 1, 1, 0.5, 0.5, 0.5, 1.0 / 3])
        let r7 = Metrics.values(rank: 7)  // 1/log2(8) = 1/3
        XCTAssertEqual(r7[0], 0)
        XCTAssertEqual(r7[1], 1)
        XCTAssertEqual(r7[3], 0)
        XCTAssertEqual(r7[4], 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(r7[6], 1.0 / 7, accuracy: 1e-12)
        let r25 = Metrics.values(rank: 25)
        XCTAssertEqual(Array(r25[0..<6]), [0, 0, 0, 0, 0, 0])
        XCTAssertEqual(r25[6], 0.04, accuracy: 1e-12)  // MRR is not truncated
    }

    func testRankTiesAndMasks() {
        let scores: [Float] = [0.5, 0.9, 0.5, 0.9, 0.1]
        func rank(_ t: Int, _ masked: [Int]) -> Int {
            var m = [Bool](repeating: false, count: scores.count)
            for i in masked { m[i] = true }
            return scores.withUnsafeBufferPointer { s in m.withUnsafeBufferPointer { Ranks.rank(of: t, in: s, isMasked: $0) } }
        }
        XCTAssertEqual(rank(2, []), 4)  // two higher, one equal at a smaller index
        XCTAssertEqual(rank(0, []), 3)  // the equal item 2 has a larger index: not counted
        XCTAssertEqual(rank(2, [0, 1]), 2)
        XCTAssertEqual(rank(3, []), 2)
        XCTAssertEqual(rank(4, [1, 3]), 3)
        // A NaN target ranks last among unmasked items.
        let nan: [Float] = [0.1, .nan, 0.3]
        var m = [Bool](repeating: false, count: 3)
        m[0] = true
        XCTAssertEqual(nan.withUnsafeBufferPointer { s in m.withUnsafeBufferPointer { Ranks.rank(of: 1, in: s, isMasked: $0) } }, 2)
    }

    func testRankAgreesWithRankingRankOnRandomScores() {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<200 {
            let n = 1 + Int(rng.next() % 40)
            let scores = (0..<n).map { _ in Float(rng.next() % 5) }  // many ties
            let masked = Set((0..<n).filter { _ in rng.next() % 4 == 0 })
            let t = Int(rng.next() % UInt64(n))
            var m = [Bool](repeating: false, count: n)
            for i in masked { m[i] = true }
            scores.withUnsafeBufferPointer { s in
                let a = m.withUnsafeBufferPointer { Ranks.rank(of: t, in: s, isMasked: $0) }
                XCTAssertEqual(a, Ranking.rank(of: t, in: s, masked: masked.subtracting([t])))
            }
        }
    }

    func testListChecks() {
        var e = ListErrorRates()
        e.check([1, 1, 5], seen: [1], catalogSize: 4)
        e.check([0, 2, 3], seen: [1], catalogSize: 4)
        e.check([-1], seen: [], catalogSize: 4)
        XCTAssertEqual([e.lists, e.withSeen, e.withDuplicate, e.withOutOfCatalogue], [3, 1, 1, 2])
        XCTAssertEqual(e.outOfCatalogueRate, 2.0 / 3, accuracy: 1e-12)
    }

    func testBootstrap() {
        let constant = [[Double]](repeating: [0.25, 1], count: 50)
        let iv = Bootstrap.intervals(constant, resamples: 200, seed: 1)
        XCTAssertEqual(iv[0], Interval(low: 0.25, high: 0.25))
        let values = (0..<400).map { [Double($0 % 2)] }  // mean 0.5, sd of mean about 0.025
        let a = Bootstrap.intervals(values, resamples: 500, seed: 3)[0]
        XCTAssertEqual(a, Bootstrap.intervals(values, resamples: 500, seed: 3)[0])  // seeded
        XCTAssertLessThan(a.low, 0.5)
        XCTAssertGreaterThan(a.high, 0.5)
        XCTAssertEqual(a.high - a.low, 4 * 0.025, accuracy: 0.02)
    }

    func testECEByHand() {
        // Bin 0: confidence 0.1 total, no hits -> 0.1 / 4; bin 9: confidence 1.9, one hit -> 0.9 / 4.
        let e = Calibration.ece(probabilities: [0.05, 0.95, 0.95, 0.05], labels: [false, true, false, false])
        XCTAssertEqual(e, 0.25, accuracy: 1e-12)
        XCTAssertEqual(Calibration.ece(probabilities: [0.5, 0.5], labels: [true, false]), 0, accuracy: 1e-12)
    }
}
