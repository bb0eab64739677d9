// The parameter average (ema): its ramped decay worked out by hand, the swap in and out of the live parameters, and
// a whole rec stage with dropout whose kept checkpoint must be the average of the iterates that runs of 1, 2 and 3
// steps leave behind (the same batches and dropout masks at every step: both are functions of the step).
import Foundation
import Model
import XCTest
@testable import Train

final class ParameterAverageTests: XCTestCase {
    func testRampedDecayAndSwap() throws {
        let c = TrainFixtures.tinyConfiguration(tied: true)
        let model = try TrainFixtures.model(c, seed: 5)
        let p = model.parameters
        let start = p.copy()
        let average = ParameterAverage(of: p, decay: 0.5)
        XCTAssertEqual(average.currentDecay, 0.1, accuracy: 1e-7)            // min(0.5, 1 / 10)
        for i in 0..<p.count { p.base[i] += 1 }
        average.update(from: p)                                             // 0.1 a + 0.9 (a + 1) = a + 0.9
        XCTAssertEqual(average.currentDecay, 2.0 / 11, accuracy: 1e-7)
        for i in 0..<p.count { p.base[i] += 1 }
        average.update(from: p)                                             // (2/11)(a + 0.9) + (9/11)(a + 2)
        let expected = Float(2.0 / 11 * 0.9 + 9.0 / 11 * 2)
        for i in stride(from: 0, to: p.count, by: 97) {
            XCTAssertEqual(average.average.base[i], start.base[i] + expected, accuracy: 1e-5)
        }
        let seen = average.withAverage(in: p) { p.base[0] }
        XCTAssertEqual(seen, start.base[0] + expected, accuracy: 1e-5, "inside withAverage the parameters are the average")
        XCTAssertEqual(p.base[0], start.base[0] + 2, accuracy: 1e-6, "the live parameters come back")
        XCTAssertEqual(average.average.base[0], start.base[0] + expected, accuracy: 1e-5)
    }

    func testStageKeepsTheAverageOfItsIterates() throws {
        let data = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: data) }
        func run(steps: Int, ema: Float) throws -> ParameterBuffer {
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
            var s = StageSettings()
            s.stage = "rec"; s.steps = steps; s.batch = 8; s.lr = 0.05; s.warmup = 1; s.schedule = "constant"
            s.fullTable = false; s.freshItems = 32; s.dropout = 0.2; s.ema = ema
            config.stages = [s]
            let out = data + "/out-\(steps)-\(ema)"
            _ = try Trainer(config: config, out: out, logPath: nil).run(resume: false)
            return try Checkpoint.loadModel(directory: out).parameters
        }
        // One evaluation per run (at its end): the checkpoint is the last iterate, or with ema the average.
        let iterates = try (1...3).map { try run(steps: $0, ema: 0) }
        let averaged = try run(steps: 3, ema: 0.5)
        var worst: Float = 0, moved: Float = 0
        for i in 0..<averaged.count {
            // Created from the first iterate: d = 1/10 (a no-op), then 2/11, then 3/12.
            var a = iterates[0].base[i]
            a = 2.0 / 11 * a + 9.0 / 11 * iterates[1].base[i]
            a = 0.25 * a + 0.75 * iterates[2].base[i]
            worst = max(worst, abs(averaged.base[i] - a))
            moved = max(moved, abs(iterates[2].base[i] - iterates[0].base[i]))
        }
        print("max |checkpoint - average of iterates| \(worst); iterates moved up to \(moved)")
        XCTAssertGreaterThan(moved, 1e-3, "fixture: the iterates must differ")
        XCTAssertLessThan(worst, 1e-5)
    }
}
