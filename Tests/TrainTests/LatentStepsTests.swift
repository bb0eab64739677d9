// Latent steps (Qwen2Configuration.latentSteps): the training graph's backward through the fed-back states against
// central finite differences of its own forward; its forward read-out against the serving path (Qwen2Model.userReadout,
// one decode step per latent step over a KV cache); the setting's range, its record in the checkpoint, and an old
// checkpoint read without it.
import Data
import Foundation
import Model
import Tensor
@testable import Train
import XCTest

final class LatentStepsTests: XCTestCase {
    static func configuration(latentSteps: Int) -> Qwen2Configuration {
        var c = TrainFixtures.tinyConfiguration(tied: true)
        c.latentSteps = latentSteps
        return c
    }

    /// Users (sequences 0 and 2, with latent steps) against item sequence 1 and two fixed columns; gradients zeroed,
    /// forward, loss, backward. Returns the loss.
    static func loss(_ graph: TrainingGraph, sequences: [[Int]], fixed: [Float]) -> Double {
        graph.zeroGradients()
        graph.forward(sequences, latent: [true, false, true])
        let loss = fixed.withUnsafeBufferPointer { f in
            graph.contrastiveLoss(ContrastiveBatch(
                userRows: [graph.lastRow(sequence: 0), graph.lastRow(sequence: 2)], itemRows: [graph.lastRow(sequence: 1)],
                targets: [0, 2], weights: [0.6, 0.4], tau: 0.3, fixed: f.baseAddress, fixedCount: 2)).loss
        }
        graph.backward()
        return loss
    }

    /// Every latent vector and a spread of every other tensor's entries: d loss / d w from the backward equals the
    /// central difference (L(w + h) - L(w - h)) / 2h of the forward, through K = 2 fed-back states.
    func testBackwardThroughLatentStepsMatchesFiniteDifferences() throws {
        let c = Self.configuration(latentSteps: 2)
        let model = try TrainFixtures.model(c, seed: 21)
        let graph = TrainingGraph(model: model)
        var rng = SplitMix64(seed: 5)
        let sequences = [7, 5, 4].map { n in (0..<n).map { _ in Int(rng.next() % UInt64(c.vocabSize)) } }
        var fixed: [Float] = []
        for _ in 0..<2 {
            let v = (0..<c.hiddenSize).map { _ in rng.nextGaussian() }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            fixed += v.map { $0 / norm }
        }
        XCTAssertEqual(graph.rowCount, 0)
        _ = Self.loss(graph, sequences: sequences, fixed: fixed)
        XCTAssertEqual(graph.rowCount, 7 + 2 + 5 + 4 + 2, "two latent rows after each user")
        let analytic = Array(UnsafeBufferPointer(start: graph.gradients.all.baseAddress!, count: graph.gradients.all.count))
        let parameters = model.parameters.all
        var checked = 0, worst = 0.0
        for e in model.parameters.layout.entries {
            let every = e.name.contains("latent") ? 1 : max(1, e.count / 12)
            for i in stride(from: 0, to: e.count, by: every) {
                let index = e.offset + i, saved = parameters[index], h: Float = 2e-3
                parameters[index] = saved + h
                let plus = Self.loss(graph, sequences: sequences, fixed: fixed)
                parameters[index] = saved - h
                let minus = Self.loss(graph, sequences: sequences, fixed: fixed)
                parameters[index] = saved
                let numeric = (plus - minus) / (2 * Double(h)), g = Double(analytic[index])
                let error = abs(g - numeric) / (1e-2 + abs(numeric))
                worst = max(worst, error)
                XCTAssertLessThan(error, 3e-2, "\(e.name)[\(i)]: backward \(g), finite difference \(numeric)")
                checked += 1
            }
        }
        // The latent vectors' gradients are not zero: the steps are in the loss.
        let latent = model.parameters.layout["model.latent_embeddings.weight"]!
        XCTAssertGreaterThan(analytic[latent.offset..<(latent.offset + latent.count)].map { abs($0) }.max()!, 1e-3)
        print("latent steps: \(checked) gradients checked, worst relative error \(worst)")
    }

    /// The serving read-out (prompt prefill, then one vector-input decode step per latent step over a KV cache)
    /// equals the training graph's read-out row, float rounding apart; without latent flags the graph reads out
    /// the last token as a model without latent steps does.
    func testServingReadoutEqualsTrainingForward() throws {
        let (model, sequences) = try TrainFixtures.consistencyCase(latentSteps: 3)
        let c = model.configuration
        let graph = TrainingGraph(model: model)
        let hidden = graph.forward(sequences, latent: [Bool](repeating: true, count: sequences.count))
        let d = c.hiddenSize
        let trained = FloatBuffer(shape: [sequences.count, d])
        for s in sequences.indices { (trained.data + s * d).update(from: hidden + graph.lastRow(sequence: s) * d, count: d) }
        L2Normalize.forward(out: trained.data, input: trained.data, rows: sequences.count, dim: d)
        let served = model.userReadout(sequences)
        var worst: Float = 0, moved: Float = 0
        let direct = model.readout(sequences)
        for i in 0..<(sequences.count * d) {
            worst = max(worst, abs(trained.data[i] - served.data[i]))
            moved = max(moved, abs(direct.data[i] - served.data[i]))
        }
        print("latent steps: max |training - serving| unit read-out \(worst), latent vs direct \(moved)")
        XCTAssertLessThan(worst, 1e-4)
        XCTAssertGreaterThan(moved, 0.05, "the latent steps changed the read-out")
        // No sequence flagged: the graph's rows are the tokens alone, read out as the direct path.
        let plain = graph.forward(sequences)
        XCTAssertEqual(graph.rowCount, sequences.map(\.count).reduce(0, +))
        for s in sequences.indices {
            let row = plain + graph.lastRow(sequence: s) * d
            let norm = (0..<d).map { row[$0] * row[$0] }.reduce(0, +).squareRoot()
            for j in 0..<d { XCTAssertEqual(row[j] / norm, direct.data[s * d + j], accuracy: 1e-4) }
        }
    }

    /// latent_steps is checked against its range, naming the field; the checkpoint records it with its vectors,
    /// and a config.json without it (every checkpoint before it) reads as 0 steps.
    func testSettingRangeCheckpointAndOldCheckpoints() throws {
        for bad in ["-1", "17", "1.5"] {
            XCTAssertThrowsError(try TrainConfig.load(path: nil, overrides: ["latent_steps=\(bad)"])) {
                XCTAssertTrue("\($0)".contains("latent_steps"), "\($0)")
            }
        }
        let config = try TrainConfig.load(path: nil, overrides: ["latent_steps=2"])
        XCTAssertEqual(config.modelConfiguration(vocabularySize: 300).latentSteps, 2)
        XCTAssertEqual(try TrainConfig.load(path: nil, overrides: []).modelConfiguration(vocabularySize: 300).latentSteps, 0)

        let c = Self.configuration(latentSteps: 2)
        let model = try TrainFixtures.model(c, seed: 8)
        let dir = TrainFixtures.temporaryDirectory("latent-checkpoint")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Checkpoint.save(model, tokenizer: nil, directory: dir)
        let json = try String(contentsOfFile: dir + "/config.json", encoding: .utf8)
        XCTAssertTrue(json.contains("\"latent_steps\" : 2"), json)
        let loaded = try Checkpoint.loadModel(directory: dir)
        XCTAssertEqual(loaded.configuration.latentSteps, 2)
        XCTAssertEqual(loaded.parameters.values("model.latent_embeddings.weight"),
                       model.parameters.values("model.latent_embeddings.weight"))
        // A model without steps writes no field, and a config.json without it has none.
        let plain = try Qwen2Configuration.decode(json: try Self.configuration(latentSteps: 0).jsonData())
        XCTAssertFalse(String(decoding: try plain.jsonData(), as: UTF8.self).contains("latent"))
        XCTAssertEqual(plain.latentSteps, 0)
        XCTAssertNil(ParameterLayout(configuration: plain)["model.latent_embeddings.weight"])
        var tooMany = c
        tooMany.latentSteps = Qwen2Configuration.maxLatentSteps + 1
        XCTAssertThrowsError(try tooMany.validate()) { XCTAssertTrue("\($0)".contains("latent_steps"), "\($0)") }
    }

    /// A toy rec run with latent_steps 2 writes a checkpoint that has them (config.json and trained vectors), and
    /// `step_losses` reaches the training step (the vectors train differently with it).
    func testTrainingRunRecordsLatentStepsAndStepLossesReachTheStep() throws {
        let data = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: data) }
        func train(_ name: String, stepLosses: Bool) throws -> [Float] {
            var config = TrainFixtures.toyRecipe(dataset: data)
            config.latentSteps = 2
            var stage = TrainFixtures.toyRecStage()
            stage.stepLosses = stepLosses
            config.stages = [stage]
            _ = try Trainer(config: config, out: data + "/" + name, logPath: nil).run()
            let model = try Checkpoint.loadModel(directory: data + "/" + name)
            XCTAssertEqual(model.configuration.latentSteps, 2)
            return model.parameters.values("model.latent_embeddings.weight")
        }
        let last = try train("last", stepLosses: false), every = try train("every", stepLosses: true)
        XCTAssertEqual(last.count, 2 * 16)
        XCTAssertNotEqual(last, every)
    }
}
