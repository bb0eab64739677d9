// A run of two stages on a tiny synthetic dataset: the second stage starts from the best parameters the first one
// found, not its last. The second stage trains at learning rate 0, so its evaluation scores exactly the parameters it
// started from; the first stage's evaluations (every step, at a learning rate high enough to make them move) must
// have their best somewhere other than the last, or the test says its fixture no longer discriminates.
import Foundation
import Model
import XCTest
@testable import Train

final class StageHandOverTests: XCTestCase {
    func writeDataset() throws -> String {
        let dir = NSTemporaryDirectory() + "r2ec-handover-\(getpid())-\(UInt64(Date().timeIntervalSince1970 * 1e6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        var rng = SplitMix64(seed: 3)
        for u in 1...40 {
            var item = Int(rng.next() % 25) + 1
            for t in 0..<10 {   // each user walks the catalogue with small steps: a learnable sequence
                inter += "\(u)\t\(item)\t\(1 + rng.next() % 5)\t\(880_000_000 + u * 100_000 + t * 3_600)\n"
                item = (item + 1 + Int(rng.next() % 3) - 1 + 25) % 25 + 1
            }
        }
        var items = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        for i in 1...25 { items += "\(i)\tFilm number \(i)\t\(1980 + i)\t\(["Drama", "Comedy", "Action"][i % 3])\n" }
        try inter.write(toFile: dir + "/toy.inter", atomically: true, encoding: .utf8)
        try items.write(toFile: dir + "/toy.item", atomically: true, encoding: .utf8)
        return dir
    }

    func testNextStageStartsFromTheBestParameters() throws {
        let data = try writeDataset()
        var config = TrainConfig()
        config.dataset = data
        config.vocabSize = 300
        config.tokenizerUserPrompts = 40
        config.model.hiddenSize = 16
        config.model.intermediateSize = 32
        config.model.numHiddenLayers = 1
        config.model.numAttentionHeads = 2
        config.model.numKeyValueHeads = 1
        config.model.maxPositionEmbeddings = 512
        config.model.initStd = 0.05
        config.calibrate = false
        var first = StageSettings()
        first.stage = "rec"; first.steps = 8; first.batch = 8; first.lr = 0.08; first.warmup = 1
        first.schedule = "constant"; first.evalEvery = 1; first.fullTable = false; first.freshItems = 32
        var second = first
        second.steps = 1; second.lr = 0
        config.stages = [first, second]
        let out = data + "/out", logPath = data + "/train.jsonl"
        _ = try Trainer(config: config, out: out, logPath: logPath).run(resume: false)

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
