// Issue 16 parts 1-2 in the trainer: stage lengths in epochs (steps worked out from the data), evaluations spread
// over a stage, the smoothed best-step selection, and learned item id vectors beside the text read-outs (their
// gradient by finite differences, the checkpoint's vectors applied by the loader exactly as training scored them,
// items without a training interaction left on their text vector).
import Data
import Eval
import Foundation
import Model
import Tensor
import XCTest
@testable import Train

final class AdaptiveRecipeTests: XCTestCase {
    /// The evaluations of a training log: global step, validation NDCG@10 and the selection score.
    static func evals(_ logPath: String) throws -> [(step: Int, ndcg: Double, selection: Double)] {
        try String(contentsOfFile: logPath, encoding: .utf8).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }.filter { $0["eval"] != nil }.map { ($0["eval"] as! Int, $0["NDCG@10"] as! Double, $0["selection_score"] as! Double) }
    }

    func testEpochsAndEvaluationCount() throws {
        let data = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: data) }
        var config = TrainFixtures.toyRecipe(dataset: data)
        var stage = TrainFixtures.toyRecStage()
        stage.optimizer.epochs = 1.5; stage.optimizer.warmup = 1_000; stage.validation.count = 3
        config.stages = [stage]
        let logPath = data + "/train.jsonl"
        let trainer = try Trainer(config: config, out: data + "/out", logPath: logPath)
        // An epoch: per user the window at the last training item, and more 20 items back from a seeded shift.
        let epoch = trainer.corpus.epoch(seed: stage.batchSeed(seed: config.seed, stage: 0)).count
        let steps = Int((1.5 * Double(epoch) / 8).rounded())
        XCTAssertEqual(trainer.config.stages[0].optimizer.steps, steps)
        XCTAssertEqual(trainer.config.stages[0].optimizer.warmup, steps, "the warm-up is held to the steps")
        _ = try trainer.run()
        let every = steps / 3
        XCTAssertEqual(try Self.evals(logPath).map(\.step), Array(stride(from: every, through: steps, by: every)) +
                       (steps % every == 0 ? [] : [steps]))
        // A config giving epochs is read back with them, and its warm-up is not checked against the default steps.
        let read = try TrainConfig.load(path: nil, overrides: ["stages.0.epochs=2.5", "stages.0.warmup=500",
                                                               "stages.0.evaluations=4", "stages.0.smooth=2"])
        XCTAssertEqual(read.stages[0].optimizer.epochs, 2.5)
        XCTAssertEqual((read.stages[0] as! RecStage).validation.smooth, 2)
        XCTAssertThrowsError(try TrainConfig.load(path: nil, overrides: ["stages.0.smooth=0"])) {
            XCTAssertTrue("\($0)".contains("stages[0].smooth: must be in [1, 100], got 0"), "\($0)")
        }
        XCTAssertThrowsError(try TrainConfig.load(path: nil, overrides: ["stages.0.epochs=-1"])) {
            XCTAssertTrue("\($0)".contains("stages[0].epochs"), "\($0)")
        }
    }

    /// With smooth 2 the selection score of each evaluation is the mean of it and the one before (the log's
    /// selection_score), and the kept parameters are those of the evaluation with the best mean; a second stage at
    /// lr 0 evaluates exactly what was kept. Float rounding differs between CPUs, so the NDCG series does too: seeds
    /// are tried until one gives a smoothed choice other than the raw best (where keeping the raw best would fail),
    /// first those that do on the machines seen so far (seed 1 on an Intel Xeon, 6 on an AMD EPYC, both AVX-512).
    func testSmoothedSelectionKeepsTheBestMeanOfTwo() throws {
        for seed: UInt64 in [1, 6, 2, 3, 4, 5, 7, 8] {
            let data = try TrainFixtures.toyDataset()
            defer { try? FileManager.default.removeItem(atPath: data) }
            var config = TrainFixtures.toyRecipe(dataset: data)
            config.seed = seed
            var first = TrainFixtures.toyRecStage()
            first.optimizer.steps = 8; first.optimizer.lr = 0.08; first.validation.every = 1; first.validation.smooth = 2
            var second = first
            second.optimizer.steps = 1; second.optimizer.lr = 0; second.validation.smooth = 1
            config.stages = [first, second]
            let logPath = data + "/train.jsonl"
            _ = try Trainer(config: config, out: data + "/out", logPath: logPath).run()
            let all = try Self.evals(logPath)
            let stage1 = all.filter { $0.step <= 8 }, handed = all.filter { $0.step > 8 }
            XCTAssertEqual(stage1.count, 8)
            let ndcg = stage1.map(\.ndcg)
            let means = ndcg.indices.map { $0 == 0 ? ndcg[0] : (ndcg[$0] + ndcg[$0 - 1]) / 2 }
            for (e, mean) in zip(stage1, means) { XCTAssertEqual(e.selection, mean, accuracy: 1e-9, "step \(e.step)") }
            let kept = means.indices.max { means[$0] < means[$1] || (means[$0] == means[$1] && $0 > $1) }!
            let rawBest = ndcg.indices.max { ndcg[$0] < ndcg[$1] || (ndcg[$0] == ndcg[$1] && $0 > $1) }!
            print("seed \(seed): NDCG@10 by step \(ndcg.map { String(format: "%.4f", $0) }); means of two \(means.map { String(format: "%.4f", $0) }); kept step \(kept + 1), raw best \(rawBest + 1)")
            XCTAssertEqual(handed.count, 1)
            XCTAssertEqual(handed[0].ndcg, ndcg[kept], accuracy: 1e-9)
            if kept != rawBest && ndcg[kept] != ndcg[rawBest] { return }
        }
        XCTFail("fixture: on no seed did the smoothed choice differ from the raw best, so the test does not discriminate")
    }

    /// d loss / d offset of the contrastive head with id vectors, and one model gradient through the double
    /// normalisation, against central finite differences of the head's own loss.
    func testIDVectorGradientsMatchFiniteDifferences() throws {
        let c = TrainFixtures.tinyConfiguration(tied: true)
        let model = try TrainFixtures.model(c, seed: 21)
        let graph = TrainingGraph(model: model)
        let sequences = [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 11, 12], [13, 14], [15, 16, 17]]
        var rng = SplitMix64(seed: 5)
        var offsets = (0..<(3 * c.hiddenSize)).map { _ in Float(0.5 * rng.nextGaussian()) }
        func loss(_ offsets: [Float]) -> (Double, FloatBuffer?) {
            graph.zeroGradients()
            graph.forward(sequences)
            return offsets.withUnsafeBufferPointer { o in
                var batch = ContrastiveBatch(userRows: [0, 1].map { graph.lastRow(sequence: $0) },
                                             itemRows: [2, 3, 4].map { graph.lastRow(sequence: $0) },
                                             targets: [0, 2], weights: [0.6, 0.4], tau: 0.3, masked: [[1], []])
                batch.itemOffsets = o.baseAddress
                let r = graph.contrastiveLoss(batch)
                graph.backward()
                return (r.loss, r.offsetGradients)
            }
        }
        let (_, analytic) = loss(offsets)
        let g = try XCTUnwrap(analytic)
        let norm = graph.gradients.values("model.norm.weight")
        var worst = 0.0
        for i in 0..<offsets.count {
            let h: Float = 1e-2, keep = offsets[i]
            offsets[i] = keep + h; let up = loss(offsets).0
            offsets[i] = keep - h; let down = loss(offsets).0
            offsets[i] = keep
            let numeric = (up - down) / Double(2 * h)
            worst = max(worst, abs(numeric - Double(g.data[i])))
            XCTAssertEqual(Double(g.data[i]), numeric, accuracy: 2e-3, "offset \(i)")
        }
        let weights = model.parameters.tensor("model.norm.weight")
        for i in 0..<c.hiddenSize {
            let h: Float = 1e-2, keep = weights[i]
            weights[i] = keep + h; let up = loss(offsets).0
            weights[i] = keep - h; let down = loss(offsets).0
            weights[i] = keep
            XCTAssertEqual(Double(norm[i]), (up - down) / Double(2 * h), accuracy: 2e-3, "model.norm.weight[\(i)]")
        }
        print("id vector gradient: worst |analytic - numeric| \(worst)")
    }

    /// A toy run with id vectors: items without a training interaction keep a zero vector and their text score;
    /// the loader applies the saved vectors so that `r2ec eval --model` reproduces training's final validation.
    func testIDVectorsTrainSaveAndLoad() throws {
        let data = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: data) }
        // An item nobody rated: in the catalogue (text) but never in training.
        var items = try String(contentsOfFile: data + "/toy.item", encoding: .utf8)
        items += "99\tFilm number 99\t2001\tDrama\n"
        try items.write(toFile: data + "/toy.item", atomically: true, encoding: .utf8)
        var config = TrainFixtures.toyRecipe(dataset: data)
        config.itemIDVectors = true
        config.itemIDLRScale = 5
        var stage = TrainFixtures.toyRecStage()
        stage.optimizer.steps = 6; stage.validation.every = 3
        config.stages = [stage]
        let out = data + "/out"
        let summary = try XCTUnwrap(try Trainer(config: config, out: out, logPath: nil).run())
        let dataset = try DatasetLoader.load(data)
        let file = try SafetensorsFile(path: out + "/" + ItemIDVectors.fileName)
        let ids = try XCTUnwrap(ItemIDVectors.load(directory: out, catalog: dataset.catalog, dimension: 16))
        let unrated = dataset.catalog.items.firstIndex { $0.id == "99" }!
        XCTAssertFalse(ids.has[unrated], "an item without a training interaction has no id vector")
        let trained = (0..<dataset.catalog.count).filter { ids.has[$0] }
        XCTAssertEqual(file.entries["item_id_vectors"]?.shape, [trained.count, 16])
        XCTAssertGreaterThan(trained.count, 20)
        XCTAssertTrue(trained.contains { i in (0..<16).contains { ids.values.data[i * 16 + $0] != 0 } }, "the vectors learned nothing")
        // The loaded model scores unit(text + id) for trained items and the text alone for the unrated one.
        let loaded = try DualHeadLoader.load(directory: out, dataset: dataset)
        try FileManager.default.moveItem(atPath: out + "/" + ItemIDVectors.fileName, toPath: data + "/ids.safetensors")
        let textOnly = try DualHeadLoader.load(directory: out, dataset: dataset)
        let d = 16
        func row(_ m: DualHeadModel, _ i: Int) -> [Float] { Array(UnsafeBufferPointer(start: m.itemTable.vectors.data + i * d, count: d)) }
        XCTAssertEqual(row(loaded, unrated), row(textOnly, unrated))
        for i in trained.prefix(5) {
            var expected = zip(row(textOnly, i), (0..<d).map { ids.values.data[i * d + $0] }).map(+)
            let n = expected.reduce(0) { $0 + $1 * $1 }.squareRoot()
            expected = expected.map { $0 / n }
            for (a, b) in zip(row(loaded, i), expected) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        }
        try FileManager.default.moveItem(atPath: data + "/ids.safetensors", toPath: out + "/" + ItemIDVectors.fileName)
        let split = Splits.make(.loo, dataset)
        // New items' content prior (--new-item-prior .5): the unrated "Drama" item scores with
        // unit(.5 text + .5 mean of the Drama items with a training interaction, as scored: id vectors included);
        // trained items are unchanged.
        let withPrior = try DualHeadLoader.load(directory: out, dataset: dataset, newItemPrior: 0.5)
        let inTraining = Set(split.train.map(\.item))
        let drama = inTraining.filter { dataset.catalog[$0].genres.contains("Drama") }
        XCTAssertGreaterThan(drama.count, 5)
        var blend = (0..<d).map { j in 0.5 * Double(row(loaded, unrated)[j]) +
            0.5 * drama.map { Double(row(loaded, $0)[j]) }.reduce(0, +) / Double(drama.count) }
        let norm = blend.map { $0 * $0 }.reduce(0, +).squareRoot()
        blend = blend.map { $0 / norm }
        for (a, b) in zip(row(withPrior, unrated), blend) { XCTAssertEqual(Double(a), b, accuracy: 1e-5) }
        for i in trained.prefix(5) { XCTAssertEqual(row(withPrior, i), row(loaded, i)) }
        XCTAssertEqual(withPrior.contentPrior?.weight, 0.5)
        var options = EvalOptions(); options.bootstrapResamples = 0; options.batchSize = 128
        let again = try Trainer.evaluate(try DualHeadLoader.load(directory: out, dataset: dataset), on: split.validation, options: options)
        XCTAssertEqual(again.metrics["NDCG@10"]!, summary.validation.metrics["NDCG@10"]!, accuracy: 1e-9)
    }
}
