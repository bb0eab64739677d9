// Data-parallel training on real Open MPI: the same recipe trained by one process (in this test) and by this test
// binary started as 2 and 3 ranks by mpirun (DataParallelRankBody), on this machine and across two network-namespace
// hosts over TCP. The ranks' losses, gradient norms and final metrics must be the single process's up to float
// rounding: any rank that trained on the wrong share, or a step without the gradient sum, moves them far more.
import Collectives
import Foundation
@testable import Train
import XCTest

final class DataParallelTests: XCTestCase {
    /// lm (dropout, so masks must follow the rows), rec over in-batch columns with item id vectors and evaluations
    /// spread over the stage, then rec with the full table and memory bank, line targets and an evaluation mid-stage:
    /// every path of a data-parallel step. In this order both rec stages stay within 1e-6 of one process (2 and 3
    /// ranks); with the full-table stage first, its rounding-level drift (8e-5) grew to 5e-3 in the in-batch stage,
    /// whose first gradient is small (norm 0.1) so that AdamW's per-element scaling magnifies differences.
    static func recipe(dataset: String, saveEvery: Int? = nil) throws -> String {
        var config = TrainFixtures.toyRecipe(dataset: dataset)
        if let saveEvery { config.saveEvery = saveEvery }
        var lm = LMStage()
        lm.optimizer.steps = 3; lm.optimizer.batch = 8; lm.optimizer.lr = 0.02; lm.optimizer.warmup = 1
        lm.dropout = 0.1
        var rec = TrainFixtures.toyRecStage()
        rec.optimizer.steps = 5
        rec.fullTable = true; rec.refreshEvery = 2; rec.memoryBank = true; rec.dropout = 0.1
        rec.validation.every = 2
        // In-batch columns only (logQ), with learned item id vectors and evaluations spread over the stage.
        var ids = TrainFixtures.toyRecStage()
        ids.optimizer.steps = 4
        ids.validation.count = 2
        config.itemIDVectors = true
        config.stages = [lm, ids, rec]
        let path = TrainFixtures.temporaryDirectory("dp-config") + ".json"
        try config.jsonString().write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// lm, then the rationale stage (dropout, LM loss on the rationales plus the rec loss on the read-out after
    /// them, learned item id vectors, an evaluation of the reasoning path mid-stage).
    static func rationaleRecipe(dataset: String) throws -> String {
        var config = TrainFixtures.toyRecipe(dataset: dataset)
        var lm = LMStage()
        lm.optimizer.steps = 2; lm.optimizer.batch = 8; lm.optimizer.lr = 0.02; lm.optimizer.warmup = 1
        var rationale = RationaleStage()
        rationale.optimizer.steps = 4; rationale.optimizer.batch = 8; rationale.optimizer.lr = 0.01
        rationale.optimizer.warmup = 1
        rationale.dropout = 0.1
        rationale.maxNewTokens = 8
        rationale.validation.every = 2
        config.itemIDVectors = true
        config.stages = [lm, rationale]
        let path = TrainFixtures.temporaryDirectory("dp-rationale-config") + ".json"
        try config.jsonString().write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// rec (the full table, which RecPO scores against), then recpo (sampled chains, group-normalised rewards,
    /// the policy gradient and the rec loss on each group's best chain, item id vectors, a table refresh and an
    /// evaluation of the reasoning path mid-stage).
    static func recpoRecipe(dataset: String) throws -> String {
        var config = TrainFixtures.toyRecipe(dataset: dataset)
        var lm = LMStage()
        lm.optimizer.steps = 2; lm.optimizer.batch = 8; lm.optimizer.lr = 0.02; lm.optimizer.warmup = 1
        var rec = TrainFixtures.toyRecStage()
        rec.optimizer.steps = 2
        var recpo = RecPOStage()
        recpo.optimizer.steps = 3; recpo.optimizer.batch = 5; recpo.optimizer.lr = 0.005; recpo.optimizer.warmup = 1
        recpo.group = 3
        recpo.maxNewTokens = 6
        recpo.refreshEvery = 2
        recpo.validation.every = 2
        config.itemIDVectors = true
        config.stages = [lm, rec, recpo]
        let path = TrainFixtures.temporaryDirectory("dp-recpo-config") + ".json"
        try config.jsonString().write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    struct Run {
        var losses: [Double] = []
        var norms: [Double] = []
        var finalLine: [String: Any] = [:]
    }

    static func read(log path: String) throws -> Run {
        var run = Run()
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            if o["step"] != nil {
                run.losses.append(o["loss"] as! Double)
                run.norms.append(o["grad_norm"] as! Double)
            } else if o["final"] != nil {
                run.finalLine = o
            }
        }
        return run
    }

    func rankBody(ranks: Int, config: String, out: String) throws -> MPIRun {
        let binary = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        var run = MPIRun(ranks: ranks, program: binary, arguments: ["TrainTests.DataParallelRankBody/testRankBody"])
        run.environment = ["SWIFT_BACKTRACE": "enable=no", "R2EC_THREADS": "1", "R2EC_DP_CONFIG": config,
                           "R2EC_DP_OUT": out]
        return run
    }

    /// The single process's run of the recipe (its log), once per test.
    func reference(config: String) throws -> Run {
        let out = TrainFixtures.temporaryDirectory("dp-single")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let log = out + ".jsonl"
        try? FileManager.default.removeItem(atPath: log)
        try Trainer(config: try TrainConfig.load(path: config, overrides: []), out: out, logPath: log).run()
        return try Self.read(log: log)
    }

    /// Runs `run`, then checks rank 0's log and checkpoint against the single process's.
    /// `keepLog`: the run appends to the log an earlier (crashed) run of the same recipe began. `tolerances`: the
    /// largest relative difference allowed at each step (1e-4 at every step when nil); the steps after them and
    /// the final metrics are then not compared.
    func check(_ run: MPIRun, out: String, against single: Run, keepLog: Bool = false, tolerances: [Double]? = nil,
               file: StaticString = #filePath, line: UInt = #line) throws {
        try? FileManager.default.removeItem(atPath: out)
        if !keepLog { try? FileManager.default.removeItem(atPath: out + ".jsonl") }
        defer { try? FileManager.default.removeItem(atPath: out); try? FileManager.default.removeItem(atPath: out + ".jsonl") }
        let result = try run.run(timeout: 300)
        XCTAssertFalse(result.timedOut, "mpirun timed out:\n\(result.output)", file: file, line: line)
        XCTAssertEqual(result.status, 0, "mpirun failed:\n\(result.output)", file: file, line: line)
        XCTAssertFalse(result.output.contains("skipped"), "a rank skipped its body:\n\(result.output)", file: file, line: line)
        XCTAssertTrue(result.output.contains("data-parallel: \(run.ranks) ranks"), result.output, file: file, line: line)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/model.safetensors"), "rank 0 wrote no checkpoint",
                      file: file, line: line)
        let parallel = try Self.read(log: out + ".jsonl")
        XCTAssertEqual(parallel.losses.count, single.losses.count, "steps logged", file: file, line: line)
        let bounds = tolerances ?? [Double](repeating: 1e-4, count: single.losses.count)
        var differences: [Double] = []
        for (i, bound) in bounds.enumerated() where i < min(parallel.losses.count, single.losses.count) {
            let difference = max(abs(parallel.losses[i] - single.losses[i]) / max(1, abs(single.losses[i])),
                                 abs(parallel.norms[i] - single.norms[i]) / max(1, abs(single.norms[i])))
            differences.append(difference)
            XCTAssertLessThan(difference, bound, "step \(i): losses \(parallel.losses) vs \(single.losses); gradient norms \(parallel.norms) vs \(single.norms)",
                              file: file, line: line)
        }
        print("\(run.ranks) ranks: largest relative difference of a step's loss or gradient norm from one process: \(differences.max() ?? 0) (by step: \(differences))")
        guard tolerances == nil else { return }
        for key in ["test NDCG@10", "validation NDCG@10", "test HR@10"] {
            let a = parallel.finalLine[key] as? Double, b = single.finalLine[key] as? Double
            XCTAssertNotNil(a, key, file: file, line: line)
            XCTAssertEqual(a ?? -1, b ?? -2, accuracy: 1e-3, key, file: file, line: line)
        }
    }

    func testTwoAndThreeRanksMatchOneProcess() throws {
        try XCTSkipIf(Collectives.launchedByMPI, "this binary is running as a rank")
        let dataset = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: dataset) }
        let config = try Self.recipe(dataset: dataset)
        let single = try reference(config: config)
        XCTAssertEqual(single.losses.count, 12)
        let out = TrainFixtures.temporaryDirectory("dp-ranks")
        try check(try rankBody(ranks: 2, config: config, out: out), out: out, against: single)
        // Three ranks: uneven shares of 8 prompts and their items.
        try check(try rankBody(ranks: 3, config: config, out: out), out: out, against: single)
    }

    /// The rationale stage data-parallel: every step's loss (LM on the rationales + rec on the read-out after them)
    /// and gradient norm is the single process's, as are the final metrics.
    func testRationaleStageRunsDataParallel() throws {
        try XCTSkipIf(Collectives.launchedByMPI, "this binary is running as a rank")
        let dataset = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: dataset) }
        let config = try Self.rationaleRecipe(dataset: dataset)
        let single = try reference(config: config)
        XCTAssertEqual(single.losses.count, 6)
        let out = TrainFixtures.temporaryDirectory("dp-rationale")
        try check(try rankBody(ranks: 2, config: config, out: out), out: out, against: single)
    }

    /// RecPO data-parallel, with 2 ranks and with 3 (5 users a step: uneven shares of users and of target items):
    /// every chain is sampled from the seed its place in the whole batch gives. The lm and rec steps before it match
    /// to 1e-4 (measured ~1e-6); RecPO's steps to 1e-3 (measured 3e-5 to 1.0e-4): its group-normalised advantages
    /// divide reward differences of about 1e-5 (the target's probability, when a group's chains rank it alike) by
    /// their spread, which magnifies the rounding differences of read-outs computed in batches of other shapes on
    /// each rank a hundredfold. A wrong share, a missing sum or a chain drawn from another seed moves a step by far
    /// more (a sampled token that differs changes its chain's loss by order 1).
    func testRecPOStageRunsDataParallel() throws {
        try XCTSkipIf(Collectives.launchedByMPI, "this binary is running as a rank")
        let dataset = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: dataset) }
        let config = try Self.recpoRecipe(dataset: dataset)
        let single = try reference(config: config)
        XCTAssertEqual(single.losses.count, 7)
        let out = TrainFixtures.temporaryDirectory("dp-recpo")
        let tolerances = [1e-4, 1e-4, 1e-4, 1e-4, 1e-3, 1e-3, 1e-3]
        try check(try rankBody(ranks: 2, config: config, out: out), out: out, against: single, tolerances: tolerances)
        try check(try rankBody(ranks: 3, config: config, out: out), out: out, against: single, tolerances: tolerances)
    }

    /// A data-parallel run killed mid-stage resumes under mpirun with another number of ranks and ends as the
    /// uninterrupted single process does: rank 0 sends its state to the other ranks (which read none of its files),
    /// and the state does not depend on how many ranks wrote it.
    func testKilledDataParallelRunResumesWithOtherRankCount() throws {
        try XCTSkipIf(Collectives.launchedByMPI, "this binary is running as a rank")
        let dataset = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: dataset) }
        // Saves every 2 steps: the third save is at step 2 of the second stage (lm saves at step 2 and at its end).
        let config = try Self.recipe(dataset: dataset, saveEvery: 2)
        let single = try reference(config: config)
        let out = TrainFixtures.temporaryDirectory("dp-resume")
        let work = Trainer.workDirectory(for: out)
        for stale in [out, work, out + ".jsonl"] { try? FileManager.default.removeItem(atPath: stale) }
        defer { try? FileManager.default.removeItem(atPath: work) }

        var crashing = try rankBody(ranks: 2, config: config, out: out)
        crashing.environment["R2EC_DP_CRASH_AFTER_SAVES"] = "3"
        let crashed = try crashing.run(timeout: 300)
        XCTAssertEqual(crashed.status, 0, "the crashing run:\n\(crashed.output)")
        let progress = try TrainingState.loadProgress(directory: work + "/state")
        XCTAssertEqual([progress.stage, progress.step], [1, 2], "where the crash left the state")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "a crashed run leaves no checkpoint")
        XCTAssertEqual(try Self.read(log: out + ".jsonl").losses.count, 5, "steps logged before the crash")

        var resuming = try rankBody(ranks: 3, config: config, out: out)
        resuming.environment["R2EC_DP_RESUME"] = "1"
        try check(resuming, out: out, against: single, keepLog: true)
        XCTAssertFalse(FileManager.default.fileExists(atPath: SharedScratch.copy(of: work, rank: 1)),
                       "rank 1 removes its copy of the state once it has read it")
    }

    func testTwoHostsInNetworkNamespacesTrainOverTCP() throws {
        try XCTSkipIf(Collectives.launchedByMPI, "this binary is running as a rank")
        try XCTSkipUnless(geteuid() == 0, "network namespaces need root (CI runs as root)")
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized.path
        let dataset = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: dataset) }
        let config = try Self.recipe(dataset: dataset)
        let single = try reference(config: config)
        let hosts = try NamespaceHosts(scripts: root + "/scripts")
        defer { hosts.down() }
        let out = TrainFixtures.temporaryDirectory("dp-hosts")
        var run = try rankBody(ranks: 2, config: config, out: out)
        hosts.configure(&run)
        try check(run, out: out, against: single)
    }

    func testBatchSharesAreContiguousAndBalanced() {
        let lengths = [50, 10, 10, 10, 10, 60, 5, 5, 40]
        for size in 1...5 {
            let shares = (0..<size).map { BatchShare(lengths: lengths, rank: $0, size: size) }
            XCTAssertEqual(shares.first!.sequences.lowerBound, 0)
            XCTAssertEqual(shares.last!.sequences.upperBound, lengths.count)
            for r in 1..<size { XCTAssertEqual(shares[r].sequences.lowerBound, shares[r - 1].sequences.upperBound) }
            for s in shares {
                XCTAssertEqual(s.rowOffset, lengths[0..<s.sequences.lowerBound].reduce(0, +))
                XCTAssertEqual(s.totalRows, 200)
            }
        }
        // Two ranks: the boundary nearest 100 tokens is after 90 ([50, 10, 10, 10, 10] and [60, 5, 5, 40]).
        XCTAssertEqual(BatchShare(lengths: lengths, rank: 0, size: 2).sequences, 0..<5)
        // Five ranks of nine sequences over 200 tokens: each starts at the boundary nearest 40 r tokens (120 lies
        // as far from 90 as from 150: the lower one).
        XCTAssertEqual((0..<5).map { BatchShare(lengths: lengths, rank: $0, size: 5).sequences },
                       [0..<1, 1..<4, 4..<5, 5..<8, 8..<9])
        // More ranks than sequences: some ranks have none.
        XCTAssertEqual((0..<3).map { BatchShare(lengths: [7], rank: $0, size: 3).sequences.count }.sorted(), [0, 0, 1])
    }

    func testDropoutMaskOfARowRangeIsThatPartOfTheWholeMask() {
        let count = 4 * 37 + 3
        let whole = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { whole.deallocate() }
        Dropout.fillMask(whole, count: count, p: 0.4, seed: 11, site: 3)
        XCTAssertTrue((0..<count).contains { whole[$0] == 0 } && (0..<count).contains { whole[$0] != 0 })
        for offset in [0, 4, 5, 6, 7, 64, 101] {
            let part = UnsafeMutablePointer<Float>.allocate(capacity: count - offset)
            defer { part.deallocate() }
            Dropout.fillMask(part, count: count - offset, p: 0.4, seed: 11, site: 3, offset: offset)
            for i in 0..<(count - offset) where part[i] != whole[offset + i] {
                XCTFail("offset \(offset): element \(i) differs"); break
            }
        }
    }
}

/// What each rank runs when DataParallelTests start this test binary under mpirun: the recipe at R2EC_DP_CONFIG
/// into R2EC_DP_OUT (log OUT.jsonl). In an ordinary test run it is skipped.
final class DataParallelRankBody: XCTestCase {
    func testRankBody() throws {
        try XCTSkipUnless(Collectives.launchedByMPI, "the body of a rank; DataParallelTests start it under mpirun")
        let environment = ProcessInfo.processInfo.environment
        let config = try TrainConfig.load(path: environment["R2EC_DP_CONFIG"]!, overrides: [])
        let out = environment["R2EC_DP_OUT"]!
        let world = try Collectives.world()
        let trainer = try Trainer(config: config, out: out, logPath: out + ".jsonl",
                                  resume: environment["R2EC_DP_RESUME"] != nil, communicator: world)
        if let crash = environment["R2EC_DP_CRASH_AFTER_SAVES"].flatMap(Int.init) {
            // Every rank stops at the same save, leaving rank 0's state as a kill would.
            trainer.crashAfterSaves = crash
            XCTAssertThrowsError(try trainer.run()) { XCTAssertTrue($0 is Trainer.SimulatedCrash, "\($0)") }
            return
        }
        let summary = try trainer.run()
        XCTAssertEqual(summary == nil, world.rank != 0, "rank 0 alone returns the summary")
    }
}
