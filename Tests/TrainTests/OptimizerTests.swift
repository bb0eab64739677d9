// AdamW, clipping and the learning-rate schedule against values worked out by hand, and resumable state: a run
// saved after two steps and resumed in fresh objects gives the same next loss as the uninterrupted run.
import Foundation
import Model
import Tensor
@testable import Train
import XCTest

final class OptimizerTests: XCTestCase {
    func testScheduleWarmupConstantAndCosine() {
        let constant = LearningRateSchedule(peak: 1e-3, warmup: 4, total: 20)
        XCTAssertEqual(constant.rate(0), 2.5e-4, accuracy: 1e-9)
        XCTAssertEqual(constant.rate(3), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(constant.rate(19), 1e-3, accuracy: 1e-9)
        let cosine = LearningRateSchedule(peak: 1.0, warmup: 2, total: 12, decay: .cosine, minRatio: 0.1)
        XCTAssertEqual(cosine.rate(1), 1.0, accuracy: 1e-6)
        XCTAssertEqual(cosine.rate(2), 1.0, accuracy: 1e-6)           // start of the decay
        XCTAssertEqual(cosine.rate(7), 0.55, accuracy: 1e-6)          // half way: 0.1 + 0.9 * 0.5
        XCTAssertEqual(cosine.rate(12), 0.1, accuracy: 1e-6)
        XCTAssertEqual(cosine.rate(50), 0.1, accuracy: 1e-6)
    }

    func testAdamWStepsByHand() throws {
        let c = TrainFixtures.tinyConfiguration(tied: true)
        let layout = ParameterLayout(configuration: c)
        let parameters = ParameterBuffer(layout: layout), gradients = ParameterBuffer(layout: layout)
        let norm = parameters.tensor("model.norm.weight"), embedding = parameters.tensor("model.embed_tokens.weight")
        norm[0] = 1; embedding[0] = 2
        gradients.tensor("model.norm.weight")[0] = 0.3
        gradients.tensor("model.embed_tokens.weight")[0] = -0.4   // global norm 0.5: below the clip
        var settings = AdamWSettings()
        settings.weightDecay = 0.1
        let adam = AdamW(layout: layout, settings: settings)
        let reported = adam.update(parameters: parameters, gradients: gradients, lr: 0.01)
        XCTAssertEqual(reported, 0.5, accuracy: 1e-6)
        // First step: m_hat = g, v_hat = g^2, so the step is lr * (sign(g) + decay * p) (decay on matrices only).
        XCTAssertEqual(norm[0], 1 - 0.01 * 1, accuracy: 1e-6)
        XCTAssertEqual(embedding[0], 2 - 0.01 * (-1 + 0.1 * 2), accuracy: 1e-6)
        // A gradient of norm 5 is clipped to 1 before the moments see it.
        gradients.tensor("model.norm.weight")[0] = 3
        gradients.tensor("model.embed_tokens.weight")[0] = 4
        let before = norm[0]
        XCTAssertEqual(adam.update(parameters: parameters, gradients: gradients, lr: 0.01), 5, accuracy: 1e-5)
        let m = 0.9 * 0.1 * 0.3 + 0.1 * 0.6, v = 0.95 * 0.05 * 0.09 + 0.05 * 0.36
        let expected = Double(before) - 0.01 * (m / (1 - 0.81)) / ((v / (1 - 0.9025)).squareRoot() + 1e-8)
        XCTAssertEqual(Double(norm[0]), expected, accuracy: 1e-6)
    }

    func testResumedRunGivesTheSameNextLoss() throws {
        let c = TrainFixtures.tinyConfiguration(tied: true)
        let k = GradientReferenceTests.makeCase(vocab: c.vocabSize, hidden: c.hiddenSize)
        let schedule = LearningRateSchedule(peak: 0.01, warmup: 2, total: 10, decay: .cosine)
        func step(_ graph: TrainingGraph, _ adam: AdamW, _ i: Int) -> Double {
            let loss = GradientReferenceTests.lossAndGradients(graph, k)
            adam.update(parameters: graph.model.parameters, gradients: graph.gradients, lr: schedule.rate(i))
            return loss
        }
        // Uninterrupted: four steps.
        let model = try TrainFixtures.model(c, seed: 5)
        let graph = TrainingGraph(model: model)
        let adam = AdamW(layout: model.parameters.layout, settings: AdamWSettings())
        var losses: [Double] = []
        let dir = TrainFixtures.temporaryDirectory("resume")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var progress = TrainingProgress()
        for i in 0..<4 {
            if i == 2 {
                progress.step = i; progress.optimizerStep = adam.step
                try TrainingState.save(directory: dir + "/state", parameters: model.parameters, optimizer: adam,
                                       table: nil, progress: progress)
            }
            losses.append(step(graph, adam, i))
        }
        // Resumed: fresh objects from the state saved before step 2.
        let resumed = try Qwen2Model(randomWith: c, seed: 999)
        let loaded = try TrainingState.loadProgress(directory: dir + "/state")
        let adam2 = AdamW(layout: resumed.parameters.layout, settings: AdamWSettings())
        adam2.step = loaded.optimizerStep
        _ = try TrainingState.load(directory: dir + "/state", parameters: resumed.parameters, optimizer: adam2)
        let graph2 = TrainingGraph(model: resumed)
        let again = [step(graph2, adam2, 2), step(graph2, adam2, 3)]
        print("uninterrupted \(losses), resumed \(again)")
        XCTAssertEqual(again[0], losses[2])
        XCTAssertEqual(again[1], losses[3])
    }
}
