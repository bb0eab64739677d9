// The training recipe, read from a JSON file in the repo (configs/default.json, configs/full.json) with
// command-line overrides `path=value` (e.g. `stages.1.steps=300`, `model.hidden_size=64`) applied before reading.
// Every field has a default, so a config only names what it changes. The whole config is checked before any work:
// every value against its range, every key against the known ones (nearest suggested), every stage's kind, and
// the checks between fields; all errors are reported at once, each naming its path (`stages[1].steps`).
import Data
import Foundation
import Model

public struct ModelSettings: Sendable, Equatable {
    public var hiddenSize = 128
    public var intermediateSize = 352
    public var numHiddenLayers = 2
    public var numAttentionHeads = 4
    public var numKeyValueHeads = 2
    public var maxPositionEmbeddings = 1024
    public var tieWordEmbeddings = true
    public var ropeTheta: Float = 10_000
    public var initStd: Float = 0.02

    public init() {}

    // Ranges within which the engine computes correctly; what memory allows is checked against the budget.
    static let fields: [ConfigField<ModelSettings>] = [
        .int("hidden_size", \.hiddenSize, .within(2, 65_536)),
        .int("intermediate_size", \.intermediateSize, .within(1, 1_048_576)),
        .int("num_hidden_layers", \.numHiddenLayers, .within(1, 1024)),
        .int("num_attention_heads", \.numAttentionHeads, .within(1, 1024)),
        .int("num_key_value_heads", \.numKeyValueHeads, .within(1, 1024)),
        .int("max_position_embeddings", \.maxPositionEmbeddings, .within(64, 1_048_576)),
        .bool("tie_word_embeddings", \.tieWordEmbeddings),
        .float("rope_theta", \.ropeTheta, .within(1, 1e9)),
        .float("init_std", \.initStd, .within(1e-6, 10)),
    ]

    func check(errors: inout ConfigErrors) {
        if hiddenSize % numAttentionHeads != 0 {
            errors.add("model.hidden_size", "must be a multiple of model.num_attention_heads (\(numAttentionHeads)), got \(hiddenSize)")
        } else if (hiddenSize / numAttentionHeads) % 2 != 0 {
            errors.add("model.hidden_size", "hidden_size / num_attention_heads (the head width) must be even for rotary embeddings, got \(hiddenSize / numAttentionHeads)")
        }
        if numAttentionHeads % numKeyValueHeads != 0 {
            errors.add("model.num_key_value_heads", "must divide model.num_attention_heads (\(numAttentionHeads)), got \(numKeyValueHeads)")
        }
    }

    public func configuration(vocabularySize: Int) -> Qwen2Configuration {
        Qwen2Configuration(hiddenSize: hiddenSize, intermediateSize: intermediateSize, numHiddenLayers: numHiddenLayers,
                           numAttentionHeads: numAttentionHeads, numKeyValueHeads: numKeyValueHeads,
                           vocabSize: vocabularySize, ropeTheta: ropeTheta, tieWordEmbeddings: tieWordEmbeddings,
                           maxPositionEmbeddings: maxPositionEmbeddings)
    }
}

public struct TrainConfig: Sendable {
    public var dataset = "data/ml-100k"
    public var split = "loo"
    public var seed: UInt64 = 1
    public var model = ModelSettings()
    /// Most tokens of the tokenizer trained on the dataset's texts (the model's vocabulary is what it reaches).
    public var vocabSize = 4096
    /// User prompts (besides every item text) the tokenizer is trained on.
    public var tokenizerUserPrompts = 2000
    /// Temperature of the cosine scores (training loss, RecPO reward, served scores).
    public var tau: Float = 0.05
    /// How user prompts show a history (Data's PromptFormat; recorded in the checkpoint, which is served with it).
    public var promptFormatName = PromptFormat.current.rawValue
    public var promptFormat: PromptFormat { PromptFormat(rawValue: promptFormatName)! }
    public var stages: [any TrainingStage] = [RecStage()]
    /// Train on the validation interactions too (the peers' "refit on train + validation" protocol for the served
    /// model); validation metrics are then not held out, so evaluations only report them.
    public var fitValidation = false
    /// Fit the top-N calibrator on validation and store it in the checkpoint.
    public var calibrate = true
    /// Ranks 1...N the calibrator is fitted on, and the server gives probabilities for.
    public var calibrationRanks = 10
    /// Stop training (every stage) after this many seconds (0: no limit); the best checkpoint is kept.
    public var timeLimit: Double = 0
    /// Save resumable state every this many steps (0: only at stage ends).
    public var saveEvery = 100
    /// Learn a vector per item seen in training, added to its text read-out (`ItemIDVectors`); new items keep the
    /// text alone.
    public var itemIDVectors = false
    /// The id vectors' learning rate as a multiple of the stage's.
    public var itemIDLRScale: Float = 1
    /// Latent reasoning steps of the user read-out (0: the prompt's last position, as before): recorded in the
    /// checkpoint's config.json with the per-step vectors they learn (Qwen2Configuration.latentSteps).
    public var latentSteps = 0

    public init() {}

    /// Settings earlier builds had, with why they are gone (a config naming one gets this instead of "unknown").
    static let retired = [
        "atjt": "removed: the logistic ATJT-style trust weights lowered test NDCG@10 from .0781 to .0706 and never " +
            "learned their weak labels (docs/training.md)",
        "atjt_lambda": "removed with atjt (docs/training.md)",
    ]

    static let fields: [ConfigField<TrainConfig>] = [
        .string("dataset", \.dataset),
        .string("split", \.split, oneOf: ["loo", "temporal"]),
        .seed("seed", \.seed),
        .object("model", \.model, ModelSettings.fields, what: "model"),
        // 256 bytes and 3 special tokens are the least a byte-level BPE holds.
        .int("vocab_size", \.vocabSize, .within(259, 1_048_576)),
        .int("tokenizer_user_prompts", \.tokenizerUserPrompts, .within(0, 10_000_000)),
        .float("tau", \.tau, .within(1e-4, 100)),
        .string("prompt_format", \.promptFormatName, oneOf: PromptFormat.allCases.map(\.rawValue)),
        ConfigField(key: "stages", read: { config, value, path, errors in
            guard case .array(let list) = value, !list.isEmpty else {
                return errors.add(path, "expected a non-empty array of stages, got \(value.shown)")
            }
            let read = list.enumerated().map { i, v in StageKinds.read(v, path: "\(path)[\(i)]", errors: &errors) }
            if read.allSatisfy({ $0 != nil }) { config.stages = read.map { $0! } }
        }, write: { .array($0.stages.map(\.json)) }),
        .bool("fit_validation", \.fitValidation),
        .bool("calibrate", \.calibrate),
        .int("calibration_ranks", \.calibrationRanks, .within(1, 1000)),
        .double("time_limit", \.timeLimit, .within(0, 1e9)),
        .int("save_every", \.saveEvery, .within(0, 10_000_000)),
        .bool("item_id_vectors", \.itemIDVectors),
        .float("item_id_lr_scale", \.itemIDLRScale, .within(0, 1000)),
        .int("latent_steps", \.latentSteps, .within(0, Double(Qwen2Configuration.maxLatentSteps))),
    ]

    /// The model's configuration for a tokenizer of `vocabularySize` tokens: the model settings and the latent steps.
    public func modelConfiguration(vocabularySize: Int) -> Qwen2Configuration {
        var c = model.configuration(vocabularySize: vocabularySize)
        c.latentSteps = latentSteps
        return c
    }

    /// Reads and checks `value` (the config as JSON); throws every error found, one per line.
    public static func read(_ value: JSONValue, source: String = "config") throws -> TrainConfig {
        var config = TrainConfig()
        var errors = ConfigErrors()
        ConfigReader.read(value, into: &config, fields: fields, path: "", what: "the training config",
                          elsewhere: retired, errors: &errors)
        config.check(errors: &errors)
        guard errors.isEmpty else {
            let n = errors.messages.count
            throw TrainError.config("\(source): \(n == 1 ? "" : "\(n) errors:\n  ")" + errors.messages.joined(separator: "\n  "))
        }
        return config
    }

    /// The checks between fields (each field's own range is checked as it is read).
    func check(errors: inout ConfigErrors) {
        model.check(errors: &errors)
    }

    /// Reads `path` (JSON) and applies `overrides` ("a.b.0.c=value"; values parsed as JSON, else taken as strings),
    /// then reads and checks the result.
    public static func load(path: String?, overrides: [String]) throws -> TrainConfig {
        var root = JSONValue.object([:])
        if let path {
            guard let data = FileManager.default.contents(atPath: path) else { throw TrainError.config("cannot read \(path)") }
            do { root = try JSONDecoder().decode(JSONValue.self, from: data) }
            catch { throw TrainError.config("\(path) is not JSON: \(error)") }
        }
        for o in overrides {
            guard let eq = o.firstIndex(of: "="), eq != o.startIndex else { throw TrainError.config("--set \(o): expected path=value") }
            let keys = o[..<eq].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard !keys.contains(where: \.isEmpty) else { throw TrainError.config("--set \(o): empty key in the path") }
            let text = String(o[o.index(after: eq)...])
            let value = (try? JSONValue.parse(text)) ?? .string(text)
            root = try set(root, keys[...], value, whole: o)
        }
        return try read(root, source: path ?? "config")
    }

    private static func set(_ node: JSONValue, _ path: ArraySlice<String>, _ value: JSONValue, whole: String) throws -> JSONValue {
        guard let key = path.first else { return value }
        if case .array(var array) = node {
            guard let i = Int(key), i >= 0, i < array.count else {
                throw TrainError.config("--set \(whole): there is no element \(key) (the list has \(array.count))")
            }
            array[i] = try set(array[i], path.dropFirst(), value, whole: whole)
            return .array(array)
        }
        var dict: [String: JSONValue] = [:]
        if case .object(let o) = node { dict = o }
        if key == "stages" && dict["stages"] == nil { dict["stages"] = .array([.object([:])]) }
        dict[key] = try set(dict[key] ?? .object([:]), path.dropFirst(), value, whole: whole)
        return .object(dict)
    }

    /// The config as JSON with sorted keys and every default written out (what a resumed run must match).
    public func jsonString() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return (try? String(decoding: e.encode(ConfigReader.write(self, fields: Self.fields)), as: UTF8.self)) ?? "{}"
    }

    /// What training allocates for parameters, worked out from the config alone: the weights, their gradients,
    /// AdamW's two moments, the best parameters kept, a parameter average when a stage keeps one, and the rotary
    /// table. Activations are bounded by the batch and token settings, not counted here.
    public func trainingMemory() -> MemoryUsage {
        let c = modelConfiguration(vocabularySize: vocabSize)
        let weights = c.inferenceMemory(packed: nil)
        let parameters = weights.parts.first { $0.what == "parameters" }!.bytes
        let copies = 4 + (stages.contains { $0.ema > 0 } ? 1 : 0)
        return weights + MemoryUsage([("gradients, AdamW moments, best parameters" + (copies == 5 ? ", average" : ""),
                                       parameters.multipliedReportingOverflow(by: copies).overflow ? .max : parameters * copies)])
    }

    /// Checks what the config needs from the machine, before any file is written: the dataset directory exists
    /// and the parameters fit `budget` (the sizes named when they do not).
    public func checkResources(budget: MemoryBudget) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dataset, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw TrainError.config("dataset: no directory \(dataset)")
        }
        do {
            try budget.check(trainingMemory(), what: "a model of hidden_size \(model.hiddenSize), intermediate_size " +
                             "\(model.intermediateSize), num_hidden_layers \(model.numHiddenLayers), vocab_size \(vocabSize)")
        } catch let e as CheckpointError {
            throw TrainError.config("model: \(e)")
        }
    }
}

public enum TrainError: Error, CustomStringConvertible {
    /// The configuration or an override is unusable (the message names the field).
    case config(String)
    /// A resumable state does not match this run (the message says what to do).
    case state(String)
    public var description: String {
        switch self {
        case .config(let m): return "config: \(m)"
        case .state(let m): return "state: \(m)"
        }
    }
}
