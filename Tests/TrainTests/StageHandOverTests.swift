// A run of two stages on a tiny synthetic dataset: the second stage starts from the best parameters the first one
// found, not its last. The second stage trains at learning rate 0, so its evaluation scores exactly the parameters it
// started from; the first stage's evaluations (every step, at a learning rate high enough to make them move) must
// have their best somewhere other than the last, or the test says its fixture no longer discriminates.
import Data
import Foundation
import Model
import XCTest
@testable import Train

final class StageHandOverTests: XCTestCase {
    func testNextStageStartsFromTheBestParameters() throws {
        let data = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: data) }
        var config = TrainFixtures.toyRecipe(dataset: data)
        var first = TrainFixtures.toyRecStage()
        first.optimizer.steps = 8; first.optimizer.lr = 0.08; first.validation.every = 1
        var second = first
        second.optimizer.steps = 1; second.optimizer.lr = 0
        config.stages = [first, second]
        let out = data + "/out", logPath = data + "/train.jsonl"
        _ = try Trainer(config: config, out: out, logPath: logPath).run()

        let evals = try String(contentsOfFile: logPath, encoding: .utf8).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }.filter { $0["eval"] != nil }.map { (step: $0["eval"] as! Int, ndcg: $0["NDCG@10"] as! Double) }
        let firstStage = evals.filter { $0.step <= 8 }, handedOver = evals.filter { $0.step > 8 }
        XCTAssertEqual(firstStage.count, 8)
        XCTAssertEqual(handedOver.count, 1)
        let best = firstStage.max { $0.ndcg < $1.ndcg }!
        print("first stage NDCG@10 by step: \(firstStage.map { String(format: "%.4f", $0.ndcg) }); second stage: \(handedOver[0].ndcg)")
        XCTAssertNotEqual(best.ndcg, firstStage.last!.ndcg, "fixture: the first stage's best is its last evaluation")
        XCTAssertEqual(handedOver[0].ndcg, best.ndcg, accuracy: 1e-9)
    }
}
