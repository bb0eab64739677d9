// The parameter average (ema): its ramped decay worked out by hand, the swap in and out of the live parameters, and
// a whole rec stage with dropout whose kept checkpoint must be the average of the iterates that runs of 1, 2 and 3
// steps leave behind (the same batches and dropout masks at every step: both are functions of the step).
import Data
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
            var config = TrainFixtures.toyRecipe(dataset: data)
            var stage = TrainFixtures.toyRecStage()
            stage.optimizer.steps = steps
            stage.dropout = 0.2
            stage.ema = ema
            config.stages = [stage]
            let out = data + "/out-\(steps)-\(ema)"
            _ = try Trainer(config: config, out: out, logPath: nil).run()
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

final class ResumeTests: XCTestCase {
    /// A rec stage with dropout and a parameter average, killed right after its state is saved at step 2 and resumed
    /// in a fresh Trainer, ends with exactly the checkpoint of the uninterrupted run: the batches, the dropout masks,
    /// AdamW's moments and the average all continue where they were.
    func testResumedRunEndsWithTheUninterruptedCheckpoint() throws {
        let data = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: data) }
        var config = TrainFixtures.toyRecipe(dataset: data)
        config.saveEvery = 2
        var stage = TrainFixtures.toyRecStage()
        stage.optimizer.steps = 4
        stage.dropout = 0.2
        stage.ema = 0.9
        config.stages = [stage]
        let whole = data + "/whole", resumed = data + "/resumed"
        _ = try Trainer(config: config, out: whole, logPath: nil).run()
        let crashing = try Trainer(config: config, out: resumed, logPath: nil)
        crashing.crashAfterSaves = 1
        XCTAssertThrowsError(try crashing.run()) { XCTAssertTrue($0 is Trainer.SimulatedCrash) }
        // The crashed run left its scratch folder (with its state) and no checkpoint where the finished one goes.
        XCTAssertFalse(FileManager.default.fileExists(atPath: resumed))
        let progress = try TrainingState.loadProgress(directory: Trainer.workDirectory(for: resumed) + "/state")
        XCTAssertEqual(progress.step, 2)
        XCTAssertEqual(progress.averageUpdates, 2)
        _ = try Trainer(config: config, out: resumed, logPath: nil, resume: true).run()
        let a = try Checkpoint.loadModel(directory: whole).parameters
        let b = try Checkpoint.loadModel(directory: resumed).parameters
        var worst: Float = 0
        for i in 0..<a.count { worst = max(worst, abs(a.base[i] - b.base[i])) }
        print("max |uninterrupted - resumed| \(worst)")
        XCTAssertEqual(worst, 0)
    }
}
