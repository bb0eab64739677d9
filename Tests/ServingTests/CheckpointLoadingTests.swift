// Loading dual-head checkpoints through the Serving layer, as `r2ec serve`, Admin/LoadModel and SIGHUP do: a
// config.json that describes an enormous model is refused naming the field and the sizes, with nothing allocated
// (peak RSS checked) and the process alive; a model over the memory budget is RESOURCE_EXHAUSTED; a failed reload
// leaves the old model serving at its version; and a load writes nothing into the directory it reads.
import Data
import Eval
import Foundation
import Model
@testable import Serving
import Train
import XCTest

final class CheckpointLoadingTests: XCTestCase {
    static func dataset() -> Dataset {
        let items = (1...6).map { Item(id: "\($0)", title: "Movie \($0)") }
        let pairs = [(0, 3), (0, 1), (1, 3), (1, 5), (2, 3), (2, 1), (2, 2), (0, 4), (1, 6)]
        return Dataset(name: "tiny", catalog: Catalog(items: items), userIds: ["u1", "u2", "u3"],
                       interactions: pairs.enumerated().map { i, p in
                           Interaction(user: p.0, item: p.1 - 1, rating: 4, timestamp: Int64(1000 + i)) })
    }

    /// A tiny dual-head checkpoint (d 16, 2 layers, a 300-token BPE) in a fresh directory.
    static func checkpoint(_ name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "r2ec-serving-\(name)-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        let data = dataset()
        let texts = data.catalog.items.map { Prompts.item($0, stats: ItemStats(count: 1, meanRating: 4)) }
        let tokenizer = try TokenizerTrainer.train(texts: Array(repeating: texts.joined(separator: "\n"), count: 4),
                                                   vocabularySize: 300)
        let c = Qwen2Configuration(hiddenSize: 16, intermediateSize: 32, numHiddenLayers: 2, numAttentionHeads: 2,
                                   numKeyValueHeads: 1, vocabSize: tokenizer.vocabularySize, maxPositionEmbeddings: 4096)
        try Checkpoint.save(try Qwen2Model(randomWith: c, seed: 3), tokenizer: tokenizer, directory: dir)
        return dir
    }

    /// What `r2ec serve` installs: the Train loader, within `budget`.
    func loader(budget: MemoryBudget = .available()) -> ModelLoader {
        ModelLoader(dataset: Self.dataset(), checkpoints: { directory, dataset in
            let model = try DualHeadLoader.load(directory: directory, dataset: dataset, budget: budget)
            return (model, try DualHeadLoader.calibrator(directory: directory, model: model, dataset: dataset))
        })
    }

    func writeConfig(_ dir: String, _ edit: (inout [String: Any]) -> Void) throws {
        let path = dir + "/config.json"
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
    }

    /// Peak resident memory of this process so far, in bytes.
    func peakRSS() -> Int {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return usage.ru_maxrss * 1024
    }

    func testEnormousConfigIsRefusedNamingTheFieldBeforeAllocating() throws {
        let dir = try Self.checkpoint("enormous")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let before = peakRSS()
        // The issue's sizes: every check of config.json alone passes, the model would take petabytes.
        try writeConfig(dir) {
            $0["hidden_size"] = 4096; $0["intermediate_size"] = 4_194_304; $0["num_hidden_layers"] = 1024
            $0["vocab_size"] = 4_194_304; $0["num_attention_heads"] = 32; $0["num_key_value_heads"] = 32
        }
        XCTAssertThrowsError(try loader().load(spec: dir)) {
            let e = $0 as? ServingError
            XCTAssertEqual(e?.code, .invalidArgument)
            XCTAssertEqual(e?.field, "path")
            XCTAssertTrue(e?.message.contains("num_hidden_layers") == true && e?.message.contains("1024") == true, "\($0)")
        }
        // The 400-byte config of the issue: layers right, vocab and width wrong.
        try writeConfig(dir) {
            $0["num_hidden_layers"] = 2; $0["vocab_size"] = 65_536; $0["intermediate_size"] = 32
        }
        XCTAssertThrowsError(try loader().load(spec: dir)) {
            let message = ($0 as? ServingError)?.message ?? "\($0)"
            XCTAssertTrue(message.contains("vocab_size 65536, hidden_size 4096") && message.contains("[65536, 4096]") &&
                          message.contains(", 16]"), message)
        }
        let grown = peakRSS() - before
        print("peak RSS grew \(grown / 1024) KiB while refusing both configs")
        XCTAssertLessThan(grown, 64 << 20, "nothing of the described model's size was allocated")
    }

    func testOverTheMemoryBudgetIsResourceExhaustedWithTheSizes() throws {
        let dir = try Self.checkpoint("budget")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertThrowsError(try loader(budget: MemoryBudget(bytes: 4096, source: "--memory-budget")).load(spec: dir)) {
            let e = $0 as? ServingError
            XCTAssertEqual(e?.code, .resourceExhausted)
            XCTAssertEqual(e?.field, "path")
            XCTAssertTrue(e?.message.contains("parameters") == true && e?.message.contains("item table of 6 items") == true &&
                          e?.message.contains("4.0 KiB (--memory-budget)") == true, "\($0)")
        }
        XCTAssertNoThrow(try loader(budget: MemoryBudget(bytes: 64 << 20, source: "test")).load(spec: dir))
    }

    func testFailedReloadKeepsTheOldModelServing() throws {
        let dir = try Self.checkpoint("reload")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = ModelRegistry()
        let loader = loader()
        let old = try loader.load(spec: dir, name: "dh")
        XCTAssertEqual(registry.install(old), 1)
        try writeConfig(dir) { $0["num_hidden_layers"] = 1024 }
        // What Admin/LoadModel and SIGHUP do: load beside the old model, install only what loaded.
        XCTAssertThrowsError(try loader.load(spec: dir, name: "dh"))
        let serving = try registry.model("dh")
        XCTAssertTrue(serving === old)
        XCTAssertEqual(serving.version, 1)
        var q = RecommendQuery()
        q.history = HistorySpec(events: [HistoryEvent(itemId: "3")])
        q.topK = 3
        let answer = try RecommendService.recommendDirect([try RecommendService.prepare(q, for: serving)],
                                                          model: serving, probabilities: [false])
        XCTAssertEqual(answer[0].items.count, 3)
    }

    /// The item table is rebuilt in memory when the checkpoint has none: the directory is left byte for byte as it
    /// was (before, the rebuilt table was written into it).
    func testLoadingNeverWritesIntoTheCheckpoint() throws {
        let dir = try Self.checkpoint("readonly")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func snapshot() throws -> [String: Date] {
            var out: [String: Date] = [:]
            for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
                out[name] = try FileManager.default.attributesOfItem(atPath: dir + "/" + name)[.modificationDate] as? Date
            }
            return out
        }
        let before = try snapshot()
        XCTAssertNil(before[ItemTable.fileName])
        let model = try loader().load(spec: dir)
        XCTAssertEqual(model.recommender.kind, "dual-head")
        XCTAssertEqual(try snapshot(), before)
    }

    /// r2ec_train.json of an earlier build holds a per-group calibrator (free slopes: not monotone). It is not
    /// used: a monotone one is refitted in memory on the validation split, exactly the one `r2ec train` would
    /// store, while the rest of the file (tau) still counts and nothing is written. A file that cannot be read at
    /// all is an error, not a silent fallback to default settings.
    func testAnOldCalibratorIsRefittedAndABrokenInfoFileRefused() throws {
        let dir = try Self.checkpoint("oldcalibrator")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let info = #"{"tau": 0.5, "split": "loo", "dataset_fingerprint": "", "validation": {}, "test": {}, "#
            + #""train_seconds": 1, "config": "{}", "calibrator": {"groupEnds": [1, 3, 9, 10], "mean": [0, 0, 0, 0], "#
            + #""std": [1, 1, 1, 1], "slope": [1, -1, 1, 1], "intercept": [-3, -1, -2, -2]}}"#
        try Data(info.utf8).write(to: URL(fileURLWithPath: dir + "/r2ec_train.json"))
        let model = try loader().load(spec: dir)
        XCTAssertEqual(model.dualHead?.tau, 0.5)
        XCTAssertEqual(model.facts.calibratedRanks, 10)
        // The refit is what training fits: the same validation evaluation of the same model, fitted the same way.
        let dual = try XCTUnwrap(model.dualHead)
        var options = EvalOptions()
        options.bootstrapResamples = 0
        let validation = try Trainer.evaluate(dual, on: Splits.make(.loo, Self.dataset()).validation, options: options)
        XCTAssertEqual(model.calibrator as? TopNCalibrator, TopNCalibrator.fit(validation.topN, n: 10))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(),
                       ["config.json", "model.safetensors", "r2ec_train.json", "tokenizer.json"])
        try Data("{\"tau\": 0}".utf8).write(to: URL(fileURLWithPath: dir + "/r2ec_train.json"))
        XCTAssertThrowsError(try loader().load(spec: dir)) {
            XCTAssertTrue("\($0)".contains("r2ec_train.json"), "\($0)")
        }
    }
}
