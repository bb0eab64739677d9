// The top-N calibrator: fits worked out by hand (rank-group hit rates when scores carry nothing, pooled groups when
// hit rates rise with rank, the slope held at 0 when scores point the wrong way), a known logistic model recovered,
// no probability beyond the fitted ranks, decoding that refuses a non-monotone calibrator, and the property the
// server relies on: over random data and random lists, probabilities never rise down a ranked list.
import Data
import Foundation
import XCTest
@testable import Eval

final class CalibrationTests: XCTestCase {
    /// Entries of `lists` lists of 10, all scoring 1, with the given number of hits per rank group
    /// (1 | 2-3 | 4-10); with equal scores it does not matter which lists hold them.
    func entries(lists: Int, hits: [Int]) -> [(rank: Int, score: Float, hit: Bool)] {
        var out: [(rank: Int, score: Float, hit: Bool)] = []
        var remaining = hits
        for _ in 0..<lists {
            for r in 1...10 {
                let g = r == 1 ? 0 : r <= 3 ? 1 : 2
                out.append((r, 1, remaining[g] > 0))
                remaining[g] -= 1
            }
        }
        return out
    }

    func rate(_ e: [(rank: Int, score: Float, hit: Bool)], _ ranks: ClosedRange<Int>) -> Double {
        let rows = e.filter { ranks.contains($0.rank) }
        return Double(rows.filter(\.hit).count) / Double(rows.count)
    }

    func testGroupsAreHalfDecades() {
        XCTAssertEqual(TopNCalibrator.defaultGroups(n: 1), [1])
        XCTAssertEqual(TopNCalibrator.defaultGroups(n: 10), [1, 3, 10])
        XCTAssertEqual(TopNCalibrator.defaultGroups(n: 20), [1, 3, 10, 20])
        XCTAssertEqual(TopNCalibrator.defaultGroups(n: 100), [1, 3, 10, 30, 100])
    }

    /// Equal scores carry no information: the slope stays 0 and each group's probability is its hit rate
    /// (30/300 at rank 1, 30/600 at ranks 2-3, 21/2100 at ranks 4-10).
    func testHitRatesByHandWhenScoresAreEqual() {
        let e = entries(lists: 300, hits: [30, 30, 21])
        XCTAssertEqual(rate(e, 1...1), 0.1); XCTAssertEqual(rate(e, 2...3), 0.05); XCTAssertEqual(rate(e, 4...10), 0.01)
        let c = TopNCalibrator.fit(e, n: 10)
        XCTAssertEqual(c.slope, 0, accuracy: 1e-9)
        XCTAssertEqual(c.probability(score: 1, rank: 1)!, 0.1, accuracy: 1e-4)
        XCTAssertEqual(c.probability(score: 1, rank: 3)!, 0.05, accuracy: 1e-4)
        XCTAssertEqual(c.probability(score: 1, rank: 10)!, 0.01, accuracy: 1e-4)
        XCTAssertNil(c.probability(score: 1, rank: 11), "no probability beyond the fitted ranks")
        XCTAssertNil(c.probability(score: 1, rank: 0))
        XCTAssertNil(c.probability(score: .nan, rank: 1))
    }

    /// Ranks 2-3 hit more often (60/600) than rank 1 (15/300): a per-group fit would give rank 2 a higher
    /// probability than rank 1 at the same score. The two groups are pooled: (15 + 60) / 900 for both.
    func testRisingHitRatesArePooled() {
        let e = entries(lists: 300, hits: [15, 60, 21])
        let c = TopNCalibrator.fit(e, n: 10)
        XCTAssertEqual(c.probability(score: 1, rank: 1)!, 75.0 / 900, accuracy: 1e-4)
        XCTAssertEqual(c.probability(score: 1, rank: 2)!, 75.0 / 900, accuracy: 1e-4)
        XCTAssertEqual(c.probability(score: 1, rank: 4)!, 0.01, accuracy: 1e-4)
        XCTAssertEqual(c.intercepts[0], c.intercepts[1])
    }

    /// Within each group higher scores hit less: the unconstrained slope is negative, so it is held at 0 and the
    /// probabilities are the groups' hit rates again.
    func testNegativeSlopeIsHeldAtZero() {
        var e: [(rank: Int, score: Float, hit: Bool)] = []
        for u in 0..<400 {
            for r in 1...10 {
                let s = Float(u % 2)      // half the lists score 1, half 0
                e.append((r, s, s == 0 && u % 8 == 0))   // only low scores hit: 1 in 4 of them
            }
        }
        let c = TopNCalibrator.fit(e, n: 10)
        XCTAssertEqual(c.slope, 0)
        XCTAssertEqual(c.probability(score: 0, rank: 5)!, 0.125, accuracy: 1e-3)
        XCTAssertEqual(c.probability(score: 1, rank: 5)!, 0.125, accuracy: 1e-3)
    }

    /// Data drawn from p = sigmoid(1.5 z - 2) at every rank: the fit recovers the slope and a common intercept.
    func testRecoversAKnownLogisticModel() {
        var rng = SplitMix64(seed: 11)
        var e: [(rank: Int, score: Float, hit: Bool)] = []
        for _ in 0..<20_000 {
            let z = Double(rng.nextGaussian())
            let p = 1 / (1 + exp(-(1.5 * z - 2)))
            e.append((Int(rng.next() % 10) + 1, Float(z), Double(rng.nextUniform()) < p))
        }
        let c = TopNCalibrator.fit(e, n: 10)
        // The fit standardises the scores; in the raw score scale the slope is slope / std.
        XCTAssertEqual(c.slope / c.std, 1.5, accuracy: 0.1)
        XCTAssertEqual(c.probability(score: 0, rank: 5)!, 1 / (1 + exp(2.0)), accuracy: 0.02)
    }

    func testDecodingRefusesANonMonotoneCalibrator() throws {
        let good = TopNCalibrator(ranks: 10, groupEnds: [1, 3, 10], mean: 0, std: 1, slope: 1, intercepts: [-1, -2, -3])
        let data = try JSONEncoder().encode(good)
        XCTAssertEqual(try JSONDecoder().decode(TopNCalibrator.self, from: data), good)
        for bad in [#"{"ranks":10,"group_ends":[1,3,10],"mean":0,"std":1,"slope":1,"intercepts":[-3,-2,-1]}"#,
                    #"{"ranks":10,"group_ends":[1,3,10],"mean":0,"std":1,"slope":-1,"intercepts":[-1,-2,-3]}"#,
                    #"{"ranks":10,"group_ends":[1,3,9],"mean":0,"std":1,"slope":1,"intercepts":[-1,-2,-3]}"#,
                    #"{"groupEnds":[1,3,9,10],"mean":[0,0,0,0],"std":[1,1,1,1],"slope":[1,1,1,1],"intercept":[0,0,0,0]}"#] {
            XCTAssertThrowsError(try JSONDecoder().decode(TopNCalibrator.self, from: Data(bad.utf8)), bad)
        }
    }

    /// The property serving relies on: for calibrators fitted on random data (hit rates that rise or fall with
    /// rank, scores that help or mislead) and random best-first lists with ties, probabilities never rise down the
    /// list, tied scores get the same probability, and ranks beyond N get none.
    func testProbabilitiesNeverRiseDownARankedList() {
        var rng = SplitMix64(seed: 2024)
        for trial in 0..<200 {
            let n = [1, 3, 10, 20][trial % 4]
            var e: [(rank: Int, score: Float, hit: Bool)] = []
            let signal = Double(rng.nextGaussian()), rankRates = (0..<n).map { _ in Double(rng.nextUniform()) * 0.3 }
            for _ in 0..<(50 + Int(rng.next() % 300)) {
                var scores = (0..<n).map { _ in Float(Int(rng.next() % 40)) / 4 }
                scores.sort(by: >)
                for (r, rank) in Calibration.sharedRanks(scores).enumerated() {
                    let p = min(0.95, max(0, rankRates[r] + 0.05 * signal * Double(scores[r])))
                    e.append((rank, scores[r], Double(rng.nextUniform()) < p))
                }
            }
            let c = TopNCalibrator.fit(e, n: n)
            XCTAssertTrue(zip(c.intercepts, c.intercepts.dropFirst()).allSatisfy { $0 >= $1 }, "trial \(trial)")
            XCTAssertGreaterThanOrEqual(c.slope, 0)
            for _ in 0..<20 {
                var list = (0..<(n + 5)).map { _ in Float(rng.nextGaussian()) * 5 }
                if list.count > 2 { list[1] = list[2] }   // a tie
                list.sort(by: >)
                let ranks = Calibration.sharedRanks(list)
                let p = zip(list, ranks).map { c.probability(score: $0, rank: $1) }
                for i in 1..<p.count {
                    guard let here = p[i] else { XCTAssertGreaterThan(ranks[i], n); continue }
                    let above = p[i - 1]!
                    XCTAssertGreaterThanOrEqual(above, here, "trial \(trial): \(list) -> \(p)")
                    if list[i] == list[i - 1] { XCTAssertEqual(above, here) }
                }
                XCTAssertTrue(zip(ranks, p).allSatisfy { ($0 <= n) == ($1 != nil) })
            }
        }
    }
}
