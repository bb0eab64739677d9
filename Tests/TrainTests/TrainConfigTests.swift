// Training configs are checked whole before any work: every numeric setting against its range, every key against
// the known ones (nearest suggested; another stage kind's setting or a removed one explained), the stage kind,
// the checks between settings, and the memory the model needs; every error names its path, all are reported at
// once. A refused config or a failed run leaves no output folder behind.
import Data
import Foundation
import Model
import XCTest
@testable import Train

final class TrainConfigTests: XCTestCase {
    /// The error `TrainConfig.load` throws for these overrides of configs/default.json.
    func error(_ overrides: [String], file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try TrainConfig.load(path: Self.repo + "/configs/default.json", overrides: overrides)
            XCTFail("accepted \(overrides)", file: file, line: line)
            return ""
        } catch {
            return "\(error)"
        }
    }

    static var repo: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    func testEveryNumericSettingIsRangeChecked() {
        let cases: [(String, String)] = [
            ("stages.0.steps=-5", "stages[0].steps: must be in [1, 10000000], got -5"),
            ("stages.0.batch=0", "stages[0].batch: must be in [1, 65536], got 0"),
            ("stages.0.lr=-1", "stages[0].lr: must be in [0, 10], got -1.0"),
            ("stages.0.warmup=-1", "stages[0].warmup: must be in [0, 10000000], got -1"),
            ("stages.0.warmup=500", "stages[0].warmup: must be <= steps (450), got 500"),
            ("stages.0.min_lr_ratio=2", "stages[0].min_lr_ratio: must be in [0, 1], got 2.0"),
            ("stages.0.weight_decay=-0.1", "stages[0].weight_decay: must be in [0, 10], got -0.1"),
            ("stages.0.clip=-1", "stages[0].clip: must be >= 0, got -1.0"),
            ("stages.0.dropout=1", "stages[0].dropout: must be in [0, 1), got 1.0"),
            ("stages.0.ema=1", "stages[0].ema: must be in [0, 1), got 1.0"),
            ("stages.0.eval_every=-1", "stages[0].eval_every: must be in [0, 10000000], got -1"),
            ("stages.0.eval_users=-1", "stages[0].eval_users: must be in [0, 100000000], got -1"),
            ("stages.0.patience=-1", "stages[0].patience: must be in [0, 1000000], got -1"),
            ("stages.0.refresh_every=-1", "stages[0].refresh_every: must be in [0, 10000000], got -1"),
            ("stages.0.line_weight=-1", "stages[0].line_weight: must be in [0, 1000], got -1.0"),
            ("stages.0.fresh_items=0", "stages[0].fresh_items: must be in [1, 1000000], got 0"),
            ("stages.0.new_item_share=1.5", "stages[0].new_item_share: must be in [0, 1], got 1.5"),
            ("stages.0.new_item_share=-0.1", "stages[0].new_item_share: must be in [0, 1], got -0.1"),
            ("stages.0.steps=1.5", "stages[0].steps: expected an integer, got 1.5"),
            ("stages.0.steps=many", "stages[0].steps: expected an integer, got \"many\""),
            ("stages.0.logq=1", "stages[0].logq: expected true or false, got 1"),
            ("stages.0.schedule=linear", "stages[0].schedule: expected cosine or constant, got \"linear\""),
            ("tau=0", "tau: must be in [0.0001, 100], got 0.0"),
            ("vocab_size=-1", "vocab_size: must be in [259, 1048576], got -1"),
            ("time_limit=-1", "time_limit: must be in [0, 1000000000], got -1.0"),
            ("save_every=-1", "save_every: must be in [0, 10000000], got -1"),
            ("seed=-1", "seed: expected an integer in [0, 2^53), got -1"),
            ("tokenizer_user_prompts=-1", "tokenizer_user_prompts: must be in [0, 10000000], got -1"),
            ("calibration_ranks=0", "calibration_ranks: must be in [1, 1000], got 0"),
            ("split=random", "split: expected loo or temporal, got \"random\""),
            ("dataset=\"\"", "dataset: expected a non-empty string, got \"\""),
            ("model.hidden_size=0", "model.hidden_size: must be in [2, 65536], got 0"),
            ("model.num_hidden_layers=0", "model.num_hidden_layers: must be in [1, 1024], got 0"),
            ("model.init_std=0", "model.init_std: must be in [1e-06, 10], got 0.0"),
            ("model.rope_theta=0", "model.rope_theta: must be in [1, 1000000000], got 0.0"),
            ("model.max_position_embeddings=10", "model.max_position_embeddings: must be in [64, 1048576], got 10"),
            ("model.num_attention_heads=3", "model.hidden_size: must be a multiple of model.num_attention_heads (3), got 128"),
            ("model.num_key_value_heads=3", "model.num_key_value_heads: must divide model.num_attention_heads (4), got 3"),
            ("model.hidden_size=132", "model.hidden_size: hidden_size / num_attention_heads (the head width) must be even"),
            ("stages=[]", "stages: expected a non-empty array of stages, got an array"),
        ]
        for (override, expected) in cases {
            let message = error([override])
            XCTAssertTrue(message.contains(expected), "\(override): \(message)")
        }
        let recpo = ["stages.0.stage=recpo"]
        for (override, expected) in [("stages.0.group=1", "stages[0].group: must be in [2, 256], got 1"),
                                     ("stages.0.temperature=0", "stages[0].temperature: must be in [0.01, 100], got 0.0"),
                                     ("stages.0.max_new_tokens=0", "stages[0].max_new_tokens: must be in [1, 4096], got 0"),
                                     ("stages.0.top_k=-1", "stages[0].top_k: must be in [0, 1000000], got -1"),
                                     ("stages.0.rec_weight=-1", "stages[0].rec_weight: must be in [0, 1000], got -1.0")] {
            let message = error(recpo + [override])
            XCTAssertTrue(message.contains(expected), "\(override): \(message)")
        }
        let rationale = ["stages.0.stage=rationale"]
        for (override, expected) in [("stages.0.recent=21", "stages[0].recent: must be in [0, 20], got 21"),
                                     ("stages.0.genres=0", "stages[0].genres: must be in [1, 100], got 0"),
                                     ("stages.0.rec_weight=-1", "stages[0].rec_weight: must be in [0, 1000], got -1.0"),
                                     ("stages.0.max_new_tokens=0", "stages[0].max_new_tokens: must be in [1, 4096], got 0"),
                                     ("stages.0.constrain_titles=1", "stages[0].constrain_titles: expected true or false, got 1")] {
            let message = error(rationale + [override])
            XCTAssertTrue(message.contains(expected), "\(override): \(message)")
        }
        let lm = error(["stages.0.stage=lm", "stages.0.item_share=1.5"])
        XCTAssertTrue(lm.contains("stages[0].item_share: must be in [0, 1], got 1.5"), lm)
    }

    func testAllErrorsAreReportedAtOnce() {
        let message = error(["stages.0.steps=-5", "stages.0.batch=0", "tau=0"])
        XCTAssertTrue(message.contains("3 errors"), message)
        for path in ["stages[0].steps", "stages[0].batch", "tau"] { XCTAssertTrue(message.contains("\n  \(path): "), message) }
    }

    func testUnknownKeysNameTheKeyAndTheNearestKnownOne() {
        let cases: [([String], String)] = [
            (["stages.0.stepz=5"], "stages[0].stepz: unknown setting of a rec stage; did you mean 'steps'?"),
            (["vocab=100"], "vocab: unknown setting of the training config; did you mean 'vocab_size'?"),
            (["model.hiden_size=64"], "model.hiden_size: unknown setting of model; did you mean 'hidden_size'?"),
            (["stages.0.group=4"], "stages[0].group: not a setting of rec stages (recpo stages have it)"),
            (["stages.0.stage=lm", "stages.0.eval_every=5"], "stages[0].eval_every: not a setting of lm stages (rec, rationale or recpo stages have it)"),
            (["stages.0.stage=recpo", "stages.0.dropout=0.1"], "stages[0].dropout: not a setting of recpo stages (lm, rec or rationale stages have it)"),
            (["atjt=true"], "atjt: removed: the logistic ATJT-style trust weights lowered test NDCG@10"),
            (["zzzzzzzzzz=1"], "zzzzzzzzzz: unknown setting of the training config (known: calibrate, calibration_ranks,"),
        ]
        for (overrides, expected) in cases {
            let message = error(overrides)
            XCTAssertTrue(message.contains(expected), "\(overrides): \(message)")
        }
    }

    func testUnknownStageKind() {
        let message = error(["stages.0.stage=rek"])
        XCTAssertTrue(message.contains("stages[0].stage: unknown stage \"rek\"; expected lm, rec, rationale or recpo; did you mean 'rec'?"), message)
    }

    func testShippedConfigsReadAndRoundTrip() throws {
        let full = try TrainConfig.load(path: Self.repo + "/configs/full.json", overrides: [])
        XCTAssertEqual(full.stages.map(\.kind), ["lm", "rec", "recpo"])
        XCTAssertEqual((full.stages[1] as? RecStage)?.lineWeight, 0.5)
        XCTAssertEqual((full.stages[2] as? RecPOStage)?.maxNewTokens, 32)
        XCTAssertEqual(full.stages[1].optimizer.steps, 2400)
        let rationale = try TrainConfig.load(path: Self.repo + "/configs/rationale.json", overrides: [])
        XCTAssertEqual(rationale.stages.map(\.kind), ["rec", "rationale"])
        XCTAssertEqual((rationale.stages[1] as? RationaleStage)?.constrainTitles, true)
        XCTAssertEqual((rationale.stages[1] as? RationaleStage)?.maxNewTokens, 64)
        for path in ["configs/default.json", "configs/full.json", "configs/rationale.json"] {
            let config = try TrainConfig.load(path: Self.repo + "/" + path, overrides: [])
            let again = try TrainConfig.read(try JSONValue.parse(config.jsonString()))
            XCTAssertEqual(again.jsonString(), config.jsonString(), path)
        }
    }

    /// A model far too big for the memory budget is refused before any file is written or anything allocated.
    func testTrainingMemoryIsCheckedBeforeAnyWork() throws {
        let data = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: data) }
        var config = TrainFixtures.toyRecipe(dataset: data)
        config.model.hiddenSize = 4096; config.model.intermediateSize = 1_048_576; config.model.numHiddenLayers = 1024
        config.model.numAttentionHeads = 32; config.model.numKeyValueHeads = 32
        let out = data + "/big"
        XCTAssertThrowsError(try Trainer(config: config, out: out, logPath: nil, budget: MemoryBudget(bytes: 1 << 30, source: "test"))) {
            XCTAssertTrue("\($0)".contains("model: refused before allocating") && "\($0)".contains("hidden_size 4096"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        XCTAssertFalse(FileManager.default.fileExists(atPath: Trainer.workDirectory(for: out)))
        config.dataset = data + "/missing"
        XCTAssertThrowsError(try Trainer(config: config, out: out, logPath: nil)) {
            XCTAssertTrue("\($0)".contains("dataset: no directory"), "\($0)")
        }
    }

    /// A run that fails before saving any state leaves neither OUT nor its scratch folder; a finished run leaves OUT
    /// only (the scratch folder is renamed).
    func testAFailedRunLeavesNoOutputFolder() throws {
        let data = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: data) }
        var config = TrainFixtures.toyRecipe(dataset: data)
        config.saveEvery = 0
        let out = data + "/out"
        let failing = try Trainer(config: config, out: out, logPath: nil)
        failing.failAtStep = 2
        XCTAssertThrowsError(try failing.run())
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        XCTAssertFalse(FileManager.default.fileExists(atPath: Trainer.workDirectory(for: out)))
        _ = try Trainer(config: config, out: out, logPath: nil).run()
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/model.safetensors"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/r2ec_train.json"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: Trainer.workDirectory(for: out)))
    }

    /// The real command: an unknown stage (or any config error) exits non-zero before anything is written.
    func testTrainCommandRefusesBeforeWriting() throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("r2ec").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            return XCTFail("no r2ec binary at \(binary): build with `swift build --build-tests`")
        }
        let data = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let out = data + "/model"
        for overrides in [["stages.1.stage=rek"], ["stages.0.steps=-5"], ["nope=1"]] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["train", "--config", Self.repo + "/configs/full.json", "--dataset", data, "--out", out]
                + overrides.flatMap { ["--set", $0] }
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            XCTAssertNotEqual(process.terminationStatus, 0, "\(overrides)")
            XCTAssertTrue(message.contains("stages[1].stage") || message.contains("stages[0].steps") || message.contains("nope"),
                          message)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(overrides)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".partial"), "\(overrides)")
        }
    }
}
