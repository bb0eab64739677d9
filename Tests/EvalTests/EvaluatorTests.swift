import Data
import Foundation
import XCTest
@testable import Eval

/// Scores every history with the same fixed row.
final class FixedScores: Recommender {
    let kind = "fixed"
    let catalog: Catalog
    let row: [Float]
    let configJSON = "{}"
    let numParameters = 0
    init(_ row: [Float]) {
        self.row = row
        catalog = Catalog(items: row.indices.map { Item(id: String($0)) })
    }
    func scoreAll(_ histories: [UserHistory]) throws -> [Float] { histories.flatMap { _ in row } }
    func similarities(to item: Int) throws -> [Float] { row }
}

final class EvaluatorTests: XCTestCase {
    func sample(_ target: Int, masked: [Int]) -> EvalSample {
        EvalSample(user: 0, history: UserHistory(items: masked), target: target, targetTime: 0, masked: masked)
    }

    func testHandComputedMetricsWithMaskAndKLargerThanCatalogue() throws {
        let model = FixedScores([0.1, 0.4, 0.3, 0.2])
        // Sample 1: item 1 masked, target 2 is then the best -> rank 1. Sample 2: target 0 scores lowest -> rank 4.
        let samples = [sample(2, masked: [1]), sample(0, masked: [])]
        var o = EvalOptions()
        o.bootstrapResamples = 100
        let r = try Evaluator.evaluate(model, on: samples, options: o)
        XCTAssertEqual(r.ranks, [1, 4])
        XCTAssertEqual(r.tiedTargets, 0)
        XCTAssertEqual(r.metrics["HR@5"], 1)  // K = 5 > 4 items: every target is a hit
        XCTAssertEqual(r.metrics["NDCG@5"]!, (1 + 1 / log2(5.0)) / 2, accuracy: 1e-12)
        XCTAssertEqual(r.metrics["MRR"]!, (1 + 0.25) / 2, accuracy: 1e-12)
        XCTAssertEqual(r.coverage, 1)
        XCTAssertEqual(r.listErrors.withSeen, 0)
        XCTAssertEqual(r.unmaskedListErrors.withSeen, 1)  // sample 1's raw top list starts with its seen item 1
        let iv = r.intervals["MRR"]!
        XCTAssertTrue(iv.low <= 0.625 && 0.625 <= iv.high)

        o.listK = 1
        let one = try Evaluator.evaluate(model, on: samples, options: o)
        XCTAssertEqual(one.coverage, 0.5)  // top-1 lists: item 2 and item 1
    }

    func testAllTiedScoresRankByIndex() throws {
        let model = FixedScores([1, 1, 1, 1, 1])
        let r = try Evaluator.evaluate(model, on: [sample(3, masked: [0]), sample(0, masked: [])])
        XCTAssertEqual(r.ranks, [3, 1])
        XCTAssertEqual(r.tiedTargets, 2)
    }

    func testBatchingDoesNotChangeResults() throws {
        let model = FixedScores((0..<50).map { Float(($0 * 37) % 11) })
        let samples = (0..<20).map { sample($0 * 2, masked: [($0 * 7) % 50, ($0 * 3 + 1) % 50].filter { $0 != $0 * 2 }) }
        var a = EvalOptions(), b = EvalOptions()
        a.batchSize = 3
        b.batchSize = 256
        XCTAssertEqual(try Evaluator.evaluate(model, on: samples, options: a).ranks,
                       try Evaluator.evaluate(model, on: samples, options: b).ranks)
    }

    func testRejectsWrongScoreCountAndEmptyInput() {
        final class Short: Recommender {
            let kind = "short"
            let catalog = Catalog(items: [Item(id: "1"), Item(id: "2")])
            let configJSON = "{}"
            let numParameters = 0
            func scoreAll(_ h: [UserHistory]) throws -> [Float] { [1] }
            func similarities(to item: Int) throws -> [Float] { [] }
        }
        XCTAssertThrowsError(try Evaluator.evaluate(Short(), on: [sample(0, masked: [])]))
        XCTAssertThrowsError(try Evaluator.evaluate(Short(), on: []))
    }
}
