// The training recipe, read from a JSON file in the repo (configs/default.json, configs/full.json) with
// command-line overrides `path=value` (e.g. `stages.1.steps=300`, `model.hidden_size=64`) applied before decoding.
// Every field has a default, so a config only names what it changes.
import Foundation
import Model

public struct ModelSettings: Codable, Sendable {
    public var hiddenSize = 128
    public var intermediateSize = 352
    public var numHiddenLayers = 2
    public var numAttentionHeads = 4
    public var numKeyValueHeads = 2
    public var maxPositionEmbeddings = 1024
    public var tieWordEmbeddings = true
    public var ropeTheta: Float = 10_000
    public var initStd: Float = 0.02

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size", intermediateSize = "intermediate_size", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", numKeyValueHeads = "num_key_value_heads"
        case maxPositionEmbeddings = "max_position_embeddings", tieWordEmbeddings = "tie_word_embeddings"
        case ropeTheta = "rope_theta", initStd = "init_std"
    }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ModelSettings()
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? d.numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads
        numKeyValueHeads = try c.decodeIfPresent(Int.self, forKey: .numKeyValueHeads) ?? d.numKeyValueHeads
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? d.maxPositionEmbeddings
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? d.tieWordEmbeddings
        ropeTheta = try c.decodeIfPresent(Float.self, forKey: .ropeTheta) ?? d.ropeTheta
        initStd = try c.decodeIfPresent(Float.self, forKey: .initStd) ?? d.initStd
    }

    public func configuration(vocabularySize: Int) -> Qwen2Configuration {
        Qwen2Configuration(hiddenSize: hiddenSize, intermediateSize: intermediateSize, numHiddenLayers: numHiddenLayers,
                           numAttentionHeads: numAttentionHeads, numKeyValueHeads: numKeyValueHeads,
                           vocabSize: vocabularySize, ropeTheta: ropeTheta, tieWordEmbeddings: tieWordEmbeddings,
                           maxPositionEmbeddings: maxPositionEmbeddings)
    }
}

/// One stage: `lm`, `rec` or `recpo`, with its optimiser schedule and its own options.
public struct StageSettings: Codable, Sendable {
    public var stage = "rec"
    public var steps = 100
    /// Sequences (lm), user prompts (rec) or users (recpo, each with `group` chains) per step.
    public var batch = 32
    public var lr: Float = 1e-3
    public var warmup = 20
    public var schedule = "cosine"
    public var minLRRatio: Float = 0.1
    public var weightDecay: Float = 0.0
    public var clip: Float = 1.0
    /// Dropout on the embedding output and every attention / MLP branch while this stage trains (0: none).
    public var dropout: Float = 0
    /// Decay of an exponential moving average of the parameters that evaluations (and so the kept checkpoint) use
    /// instead of the last iterate (0: none; e.g. 0.995 averages over ~200 steps).
    public var ema: Float = 0
    /// Evaluate on validation every this many steps (0: only at the end of the stage).
    public var evalEvery = 0
    /// Validation users per evaluation during training (0: all); the final evaluation uses all.
    public var evalUsers = 0
    /// Evaluations without improvement of validation NDCG@10 before the stage stops (0: never stops early).
    public var patience = 0
    // rec
    /// Score against the refreshed full item table too (batch items replace their stale columns).
    public var fullTable = true
    /// Refresh the full item table every this many steps (0: only at evaluations).
    public var refreshEvery = 25
    /// Train every history line's read-out to predict the next line's item (the final `<answer>` read-out predicts
    /// the target): up to 20 targets per prompt, as sequential recommenders train every position.
    public var lineTargets = true
    /// Weight of the line targets relative to the final target.
    public var lineWeight: Float = 1.0
    /// With the full table: batch items score with their table rows (straight-through gradient to the fresh
    /// read-outs), and the rows are refreshed from the fresh read-outs after each step.
    public var memoryBank = true
    /// In-batch softmax without the table: subtract log(inclusion probability) from each column's logit.
    public var logQ = true
    /// Items re-encoded with gradient per step (final targets first, then line targets); others use the table.
    public var freshItems = 256
    // recpo
    public var group = 4
    public var temperature: Float = 1.5
    public var topK = 50
    public var maxNewTokens = 48
    /// Weight of the recommendation loss on the best chain.
    public var recWeight: Float = 1.0
    // lm
    /// Share of lm sequences that are item texts (the rest are user prompts).
    public var itemShare: Float = 0.5

    enum CodingKeys: String, CodingKey {
        case stage, steps, batch, lr, warmup, schedule, clip, patience, group, temperature, dropout, ema
        case minLRRatio = "min_lr_ratio", weightDecay = "weight_decay", evalEvery = "eval_every", evalUsers = "eval_users"
        case fullTable = "full_table", refreshEvery = "refresh_every", lineTargets = "line_targets"
        case lineWeight = "line_weight", freshItems = "fresh_items", topK = "top_k", maxNewTokens = "max_new_tokens"
        case recWeight = "rec_weight", itemShare = "item_share", memoryBank = "memory_bank", logQ = "logq"
    }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var s = StageSettings()
        func get<T: Decodable>(_ key: CodingKeys, _ path: WritableKeyPath<StageSettings, T>) throws {
            if let v = try c.decodeIfPresent(T.self, forKey: key) { s[keyPath: path] = v }
        }
        try get(.stage, \.stage); try get(.steps, \.steps); try get(.batch, \.batch); try get(.lr, \.lr)
        try get(.warmup, \.warmup); try get(.schedule, \.schedule); try get(.minLRRatio, \.minLRRatio)
        try get(.weightDecay, \.weightDecay); try get(.clip, \.clip); try get(.dropout, \.dropout); try get(.ema, \.ema); try get(.evalEvery, \.evalEvery)
        try get(.evalUsers, \.evalUsers); try get(.patience, \.patience); try get(.fullTable, \.fullTable)
        try get(.refreshEvery, \.refreshEvery); try get(.lineTargets, \.lineTargets); try get(.lineWeight, \.lineWeight)
        try get(.freshItems, \.freshItems); try get(.group, \.group); try get(.temperature, \.temperature)
        try get(.topK, \.topK); try get(.maxNewTokens, \.maxNewTokens); try get(.recWeight, \.recWeight)
        try get(.itemShare, \.itemShare); try get(.memoryBank, \.memoryBank); try get(.logQ, \.logQ)
        func reject(_ key: CodingKeys, _ why: String) -> Error {
            DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: why)
        }
        guard s.dropout >= 0 && s.dropout < 1 else { throw reject(.dropout, "dropout must be in [0, 1), got \(s.dropout)") }
        guard s.ema >= 0 && s.ema < 1 else { throw reject(.ema, "ema must be in [0, 1), got \(s.ema)") }
        guard s.dropout == 0 || s.stage != "recpo" else {
            throw reject(.dropout, "dropout applies to lm and rec stages, not recpo (its chains are sampled without it)")
        }
        guard s.ema == 0 || s.stage == "rec" else {
            throw reject(.ema, "ema applies to rec stages only (their evaluations use the average), not \(s.stage)")
        }
        self = s
    }
}

public struct TrainConfig: Codable, Sendable {
    public var dataset = "data/ml-100k"
    public var split = "loo"
    public var seed: UInt64 = 1
    public var model = ModelSettings()
    public var vocabSize = 4096
    /// User prompts (besides every item text) the tokenizer is trained on.
    public var tokenizerUserPrompts = 2000
    /// Temperature of the cosine scores (training loss, RecPO reward, served scores).
    public var tau: Float = 0.05
    public var stages: [StageSettings] = [StageSettings()]
    /// Train on the validation interactions too (the peers' "refit on train + validation" protocol for the served
    /// model); validation metrics are then not held out, so evaluations only report them.
    public var fitValidation = false
    /// ATJT-style denoising trust weights on the rec stage.
    public var atjt = false
    public var atjtLambda: Float = 0.1
    /// Fit the top-N calibrator on validation and store it in the checkpoint.
    public var calibrate = true
    /// Stop training (every stage) after this many seconds (0: no limit); the best checkpoint is kept.
    public var timeLimit: Double = 0
    /// Save resumable state every this many steps (0: only at stage ends).
    public var saveEvery = 100

    enum CodingKeys: String, CodingKey {
        case dataset, split, seed, model, tau, stages, atjt, calibrate
        case vocabSize = "vocab_size", tokenizerUserPrompts = "tokenizer_user_prompts", atjtLambda = "atjt_lambda"
        case timeLimit = "time_limit", saveEvery = "save_every", fitValidation = "fit_validation"
    }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var s = TrainConfig()
        func get<T: Decodable>(_ key: CodingKeys, _ path: WritableKeyPath<TrainConfig, T>) throws {
            if let v = try c.decodeIfPresent(T.self, forKey: key) { s[keyPath: path] = v }
        }
        try get(.dataset, \.dataset); try get(.split, \.split); try get(.seed, \.seed); try get(.model, \.model)
        try get(.vocabSize, \.vocabSize); try get(.tokenizerUserPrompts, \.tokenizerUserPrompts); try get(.tau, \.tau)
        try get(.stages, \.stages); try get(.atjt, \.atjt); try get(.atjtLambda, \.atjtLambda)
        try get(.calibrate, \.calibrate); try get(.timeLimit, \.timeLimit); try get(.saveEvery, \.saveEvery)
        try get(.fitValidation, \.fitValidation)
        self = s
    }

    /// Reads `path` (JSON) and applies `overrides` ("a.b.0.c=value"; values parsed as JSON, else taken as strings).
    public static func load(path: String?, overrides: [String]) throws -> TrainConfig {
        var root: Any = [String: Any]()
        if let path {
            guard let data = FileManager.default.contents(atPath: path) else { throw TrainError.config("cannot read \(path)") }
            root = try JSONSerialization.jsonObject(with: data)
        }
        for o in overrides {
            guard let eq = o.firstIndex(of: "=") else { throw TrainError.config("override \(o) is not path=value") }
            let path = o[..<eq].split(separator: ".").map(String.init)
            let text = String(o[o.index(after: eq)...])
            let value: Any = (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed)) ?? text
            root = try set(root, path[...], value, whole: o)
        }
        let data = try JSONSerialization.data(withJSONObject: root)
        do { return try JSONDecoder().decode(TrainConfig.self, from: data) }
        catch { throw TrainError.config("\(path ?? "config"): \(error)") }
    }

    private static func set(_ node: Any, _ path: ArraySlice<String>, _ value: Any, whole: String) throws -> Any {
        guard let key = path.first else { return value }
        if var array = node as? [Any] {
            guard let i = Int(key), i >= 0, i < array.count else { throw TrainError.config("\(whole): no element \(key)") }
            array[i] = try set(array[i], path.dropFirst(), value, whole: whole)
            return array
        }
        var dict = node as? [String: Any] ?? [:]
        if key == "stages" && dict["stages"] == nil { dict["stages"] = [[String: Any]()] }
        dict[key] = try set(dict[key] ?? [String: Any](), path.dropFirst(), value, whole: whole)
        return dict
    }

    public func jsonString() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return (try? String(decoding: e.encode(self), as: UTF8.self)) ?? "{}"
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
