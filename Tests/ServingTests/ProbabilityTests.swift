// Calibrated probabilities as the server gives them: the rank a calibrator sees is the item's place among every
// item the request could have recommended (1 + unmasked items scoring strictly higher), probabilities never fall
// as scores rise within a request (Recommend, Recommend with candidates, ScoreItems; random scores with ties,
// random masks), none beyond the calibrated ranks, and none (not 0) for a model without a calibrator.
import Data
import Eval
import Foundation
@testable import Serving
import XCTest

/// A calibrator that reports the rank it was asked about, to check which rank the server passes.
struct RankEcho: ProbabilityCalibrator {
    var ranks = 5
    func probability(score: Float, rank: Int) -> Float? { rank <= ranks ? Float(rank) : nil }
}

/// Scores every history with a fixed row (ties and all), whatever the history.
final class FixedScores: Recommender, @unchecked Sendable {
    let catalog: Catalog
    let row: [Float]
    init(_ row: [Float]) {
        self.row = row
        catalog = Catalog(items: row.indices.map { Item(id: "\($0)", title: "t\($0)") })
    }
    var kind: String { "fixed" }
    var configJSON: String { "{}" }
    var numParameters: Int { 0 }
    func scoreAll(_ histories: [UserHistory]) throws -> [Float] { histories.flatMap { _ in row } }
    func similarities(to item: Int) throws -> [Float] { row }
}

final class ProbabilityTests: XCTestCase {
    func served(_ m: Recommender, _ calibrator: ProbabilityCalibrator?) -> ServedModel {
        ServedModel(name: "m", recommender: m, datasetName: "t", userHistories: [:],
                    itemStats: Array(repeating: ItemStats(count: 0, meanRating: 0), count: m.catalog.count),
                    calibrator: calibrator)
    }

    func recommend(_ model: ServedModel, history: [String], topK: Int, candidates: [String] = [],
                   probabilities: Bool = true) throws -> [ScoredItemResult] {
        var q = RecommendQuery()
        q.history = HistorySpec(events: history.map { HistoryEvent(itemId: $0) })
        q.topK = topK
        q.candidates = candidates
        q.returnProbabilities = probabilities
        let prepared = try RecommendService.prepare(q, for: model)
        return try RecommendService.recommendDirect([prepared], model: model, probabilities: [probabilities])[0].items
    }

    /// Scores 9, 8, 8, 7, 6, 5, 4, 3 for items 0-7; item 1 is the history, so it is masked.
    func testCalibratorsSeeSharedCatalogueRanksAndNothingBeyondTheirs() throws {
        let model = served(FixedScores([9, 8, 8, 7, 6, 5, 4, 3]), RankEcho(ranks: 4))
        let top = try recommend(model, history: ["1"], topK: 7)
        XCTAssertEqual(top.map(\.itemId), ["0", "2", "3", "4", "5", "6", "7"])
        XCTAssertEqual(top.map(\.rank), [1, 2, 3, 4, 5, 6, 7])
        XCTAssertEqual(top.map(\.probability), [1, 2, 3, 4, nil, nil, nil], "ranks 1-4 only")
        // Candidates 4 and 6: their ranks among everything recommendable (4 and 6), not within the list (1 and 2).
        let restricted = try recommend(model, history: ["1"], topK: 2, candidates: ["6", "4"])
        XCTAssertEqual(restricted.map(\.itemId), ["4", "6"])
        XCTAssertEqual(restricted.map(\.probability), [4, nil])
        // Tied scores share a rank: with nothing masked, items 1 and 2 (score 8) both have rank 2.
        let tied = try recommend(model, history: ["7"], topK: 4)
        XCTAssertEqual(tied.map(\.probability), [1, 2, 2, 4])
        // ScoreItems ranks against the catalogue with the history masked too.
        var q = ScoreItemsQuery()
        q.history = HistorySpec(events: [HistoryEvent(itemId: "1")])
        q.itemIds = ["5", "0", "2"]
        q.returnProbabilities = true
        let scored = try RecommendService.scoreItems(q, model: model)
        XCTAssertEqual(scored.map(\.probability), [nil, 1, 2])
        XCTAssertEqual(scored.map(\.rank), [3, 1, 2])
    }

    func testNoCalibratorOrNotAskedMeansAbsentNotZero() throws {
        let uncalibrated = served(FixedScores([3, 2, 1]), nil)
        XCTAssertEqual(try recommend(uncalibrated, history: ["2"], topK: 2).map(\.probability), [nil, nil])
        XCTAssertEqual(uncalibrated.facts.calibratedRanks, 0)
        XCTAssertFalse(uncalibrated.facts.calibrated)
        let calibrated = served(FixedScores([3, 2, 1]), RankEcho(ranks: 5))
        XCTAssertEqual(try recommend(calibrated, history: ["2"], topK: 2, probabilities: false).map(\.probability), [nil, nil])
        XCTAssertEqual(calibrated.facts.calibratedRanks, 5)
    }

    /// The case: a calibrator fitted on ranks 1-10 of lists whose lower ranks hit more often than rank 1
    /// (as per-group Platt fits came out on ml-100k), asked for the whole catalogue. Before the fix rank 1,679 got a
    /// higher probability than rank 1; now probabilities fall down the list and stop after rank 10.
    func testWholeCatalogueAnswerIsMonotoneAndStopsAtTheFittedRanks() throws {
        var rng = SplitMix64(seed: 7)
        var entries: [(rank: Int, score: Float, hit: Bool)] = []
        for _ in 0..<500 {
            let scores = (0..<10).map { _ in Float(rng.nextGaussian()) }.sorted(by: >)
            for (r, s) in scores.enumerated() { entries.append((r + 1, s, Double(rng.nextUniform()) < 0.01 + 0.01 * Double(r))) }
        }
        let row = (0..<1682).map { _ in Float(rng.nextGaussian()) }
        let model = served(FixedScores(row), TopNCalibrator.fit(entries, n: 10))
        let all = try recommend(model, history: ["0"], topK: 1681)
        let p = all.map(\.probability)
        XCTAssertEqual(p.prefix(10).filter { $0 != nil }.count, 10)
        XCTAssertTrue(p.dropFirst(10).allSatisfy { $0 == nil }, "nothing beyond the 10 fitted ranks")
        let defined = p.compactMap { $0 }
        XCTAssertEqual(defined, defined.sorted(by: >), "probabilities fall down the list")
    }

    /// Property: random score rows with ties, random masks and candidates, calibrators fitted on random data:
    /// within every answer a higher score never has a lower probability, equal scores have equal ones, and an
    /// item has a probability exactly when its catalogue rank is within the calibrated ranks.
    func testProbabilitiesAreMonotoneInScoreWithinEveryRequest() throws {
        var rng = SplitMix64(seed: 99)
        for trial in 0..<150 {
            let n = 5 + Int(rng.next() % 60)
            let row = (0..<n).map { _ in Float(Int(rng.next() % 12)) / 3 }   // many ties
            let ranks = 1 + Int(rng.next() % 12)
            var entries: [(rank: Int, score: Float, hit: Bool)] = []
            for _ in 0..<200 {
                let scores = (0..<ranks).map { _ in Float(rng.nextGaussian()) }.sorted(by: >)
                for (r, rank) in Calibration.sharedRanks(scores).enumerated() {
                    entries.append((rank, scores[r], rng.nextUniform() < 0.3 * rng.nextUniform()))
                }
            }
            let model = served(FixedScores(row), TopNCalibrator.fit(entries, n: ranks))
            let history = (0..<(1 + Int(rng.next() % 3))).map { _ in String(rng.next() % UInt64(n)) }
            let masked = Set(history.compactMap { Int($0) })
            let candidates = rng.next() % 2 == 0 ? [] : (0..<n).filter { _ in rng.next() % 2 == 0 }.map(String.init)
            let available = candidates.isEmpty ? n - masked.count : Set(candidates.compactMap { Int($0) }).subtracting(masked).count
            guard available > 0 else { continue }
            let topK = 1 + Int(rng.next() % UInt64(available))
            var answers = [try recommend(model, history: history, topK: topK, candidates: candidates)]
            var q = ScoreItemsQuery()
            q.history = HistorySpec(events: history.map { HistoryEvent(itemId: $0) })
            q.itemIds = (0..<(1 + Int(rng.next() % 8))).map { _ in String(rng.next() % UInt64(n)) }
            q.returnProbabilities = true
            answers.append(try RecommendService.scoreItems(q, model: model))
            for items in answers {
                for a in items {
                    let catalogueRank = 1 + row.indices.filter { !masked.contains($0) && row[$0] > a.score }.count
                    XCTAssertEqual(a.probability != nil, catalogueRank <= ranks, "trial \(trial): item \(a.itemId)")
                    for b in items {
                        guard let pa = a.probability, let pb = b.probability else { continue }
                        if a.score > b.score { XCTAssertGreaterThanOrEqual(pa, pb, "trial \(trial)") }
                        if a.score == b.score { XCTAssertEqual(pa, pb, "trial \(trial)") }
                    }
                }
            }
        }
    }
}
