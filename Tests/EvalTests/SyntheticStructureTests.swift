// Synthetic data has the structure recommenders learn from: on a leave-one-out split, popularity beats random
// ranking (Zipf popularity) and WALS beats popularity (taste clusters: users' next items follow their history).
import Data
import Foundation
import XCTest
@testable import Eval

final class SyntheticStructureTests: XCTestCase {
    /// Seeded uniform scores: the floor any structure must beat.
    final class RandomScores: Recommender {
        let kind = "random"
        let catalog: Catalog
        let configJSON = "{}"
        var numParameters: Int { 0 }
        init(catalog: Catalog) { self.catalog = catalog }
        func scoreAll(_ histories: [UserHistory]) throws -> [Float] {
            var rng = SplitMix64(seed: UInt64(histories.first?.items.first ?? 0))
            return (0..<(histories.count * catalog.count)).map { _ in rng.nextUniform() }
        }
        func similarities(to item: Int) throws -> [Float] { throw RecommenderError.unsupported("none") }
    }

    func testPopularityBeatsRandomAndWALSBeatsPopularity() throws {
        let dir = NSTemporaryDirectory() + "r2ec-synth-structure-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var spec = SyntheticSpec(users: 1_500, items: 1_200, events: 45_000)
        spec.seed = 3
        try SyntheticData.write(spec, directory: dir, name: "synth")
        let d = try DatasetLoader.load(dir)
        let split = Splits.make(.loo, d)
        var options = EvalOptions()
        options.bootstrapResamples = 0
        func ndcg(_ r: Recommender) throws -> Double {
            try Evaluator.evaluate(r, on: split.test, options: options).metrics["NDCG@10"]!
        }
        let random = try ndcg(RandomScores(catalog: d.catalog))
        let popularity = try ndcg(try Baselines.train(kind: "pop", on: split.train, catalog: d.catalog, numUsers: d.numUsers))
        let wals = try ndcg(try Baselines.train(kind: "wals", on: split.train, catalog: d.catalog, numUsers: d.numUsers,
                                                options: ["factors": "32", "iterations": "8"]))
        print(String(format: "synthetic LOO test NDCG@10: random %.4f, popularity %.4f, WALS %.4f", random, popularity, wals))
        XCTAssertGreaterThan(popularity, 3 * random)
        XCTAssertGreaterThan(wals, 1.3 * popularity)
    }
}
