// The rationale stage on the toy dataset: its sequence is the reasoning prompt's exact tokens followed by the
// history's rationale and "\n<answer>"; a short run's LM loss on the rationale falls, and the run reports the
// reasoning path (greedy, titles constrained) beside the "w/o reasoning" model saved before the stage.
import Data
import Foundation
import Model
import XCTest
@testable import Train

final class RationaleStageTests: XCTestCase {
    func testRationaleLossFallsAndTheReasoningPathIsReported() throws {
        let data = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: data) }
        var config = TrainFixtures.toyRecipe(dataset: data)
        var rationale = RationaleStage()
        rationale.optimizer.steps = 30; rationale.optimizer.batch = 8; rationale.optimizer.lr = 0.01
        rationale.optimizer.warmup = 2; rationale.optimizer.schedule = "constant"
        rationale.maxNewTokens = 40
        config.stages = [TrainFixtures.toyRecStage(), rationale]
        let out = data + "/out", logPath = data + "/train.jsonl"
        let trainer = try Trainer(config: config, out: out, logPath: logPath)
        let summary = try XCTUnwrap(try trainer.run())

        let lines = try String(contentsOfFile: logPath, encoding: .utf8).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let lm = lines.filter { $0["stage"] as? String == "rationale" && $0["lm_loss"] != nil }.map { $0["lm_loss"] as! Double }
        XCTAssertEqual(lm.count, 30)
        let first = lm.prefix(3).reduce(0, +) / 3, last = lm.suffix(3).reduce(0, +) / 3
        print("rationale LM loss, first 3 steps \(first), last 3 \(last)")
        XCTAssertLessThan(last, 0.6 * first)
        XCTAssertNotNil(summary.reasoningTest)
        XCTAssertNotNil(summary.withoutReasoningTest)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/without-reasoning/model.safetensors"))

        // The training sequence starts with exactly the tokens the reasoning path is prefilled with at inference.
        let corpus = trainer.corpus, tokenizer = trainer.tokenizer!
        let w = TrainingCorpus.Window(user: corpus.trainableUsers[0], end: 5)
        let built = RationaleStage.sequence(corpus, tokenizer: tokenizer, window: w, recent: 2, genres: 3, maxPositions: 512)
        let prompt = trainer.currentRecommender().reasoningPromptTokens(corpus.history(w), targetTime: corpus.targetTime(w))
        XCTAssertEqual(Array(built.tokens.prefix(built.rationaleStart)), prompt)
        let written = tokenizer.decode(Array(built.tokens.suffix(from: built.rationaleStart)))
        XCTAssertEqual(written, Rationale.text(history: corpus.history(w), catalog: corpus.dataset.catalog) + "\n<answer>")
        XCTAssertTrue(written.hasPrefix("Recent: [Film number "), written)
    }
}
