// A training stage as a type: its settings (read from the config through its field table) and its step. The loop
// every stage shares - time limit, batches, one optimiser update per step, the JSONL log and progress line,
// validation with early stopping, resumable state - is `Trainer.run(_:)`; a stage only says what one step computes,
// what it does before its first step, and which recommender its evaluations score.
import Data
import Foundation
import Model

/// The optimiser side of a stage, the same for every kind.
public struct OptimizerSchedule: Sendable, Equatable {
    public var steps = 100
    /// When > 0, the stage's length in epochs of the training windows (`steps` is then worked out from the data by
    /// `resolved(epochLength:)`, so one recipe adapts to datasets of any size); 0: `steps` as given.
    public var epochs = 0.0
    /// Sequences (lm), user prompts (rec) or users (recpo, each with `group` chains) per step.
    public var batch = 32
    public var lr: Float = 1e-3
    public var warmup = 20
    public var schedule = "cosine"
    public var minLRRatio: Float = 0.1
    public var weightDecay: Float = 0
    /// Global gradient-norm clipping (0: none).
    public var clip: Float = 1

    public init() {}

    static let fields: [ConfigField<OptimizerSchedule>] = [
        .int("steps", \.steps, .within(1, 10_000_000)),
        .double("epochs", \.epochs, .within(0, 100_000)),
        .int("batch", \.batch, .within(1, 65_536)),
        .float("lr", \.lr, .within(0, 10)),
        .int("warmup", \.warmup, .within(0, 10_000_000)),
        .string("schedule", \.schedule, oneOf: ["cosine", "constant"]),
        .float("min_lr_ratio", \.minLRRatio, .within(0, 1)),
        .float("weight_decay", \.weightDecay, .within(0, 10)),
        .float("clip", \.clip, .atLeast(0)),
    ]

    var adam: AdamWSettings {
        var a = AdamWSettings()
        a.weightDecay = weightDecay
        a.clipNorm = clip
        return a
    }

    var learningRate: LearningRateSchedule {
        LearningRateSchedule(peak: lr, warmup: warmup, total: steps, decay: schedule == "cosine" ? .cosine : .constant,
                             minRatio: minLRRatio)
    }

    func check(path: String, errors: inout ConfigErrors) {
        if epochs == 0 && warmup > steps { errors.add(path + ".warmup", "must be <= steps (\(steps)), got \(warmup)") }
    }

    /// The schedule with `steps` worked out from `epochs` (when set) for an epoch of `epochLength` windows:
    /// round(epochs * epochLength / batch), at least 1; the warm-up is held to at most the steps.
    public func resolved(epochLength: Int) -> OptimizerSchedule {
        guard epochs > 0 else { return self }
        var o = self
        o.steps = min(10_000_000, max(1, Int((epochs * Double(max(1, epochLength)) / Double(batch)).rounded())))
        o.warmup = min(warmup, o.steps)
        return o
    }
}

/// When a stage evaluates on validation (NDCG@10, history masked) and when it stops early.
public struct EvaluationSchedule: Sendable, Equatable {
    /// Every this many steps (0: only at the end of the stage).
    public var every = 0
    /// Validation users per evaluation during training (0: all); the final evaluation uses all.
    public var users = 0
    /// Evaluations without improvement before the stage stops (0: never stops early).
    public var patience = 0
    /// When > 0, this many evaluations spread evenly over the stage (overrides `every`, so a stage measured in
    /// epochs evaluates as often on any dataset).
    public var count = 0
    /// The score that selects the kept parameters is the mean validation NDCG@10 of the last `smooth` evaluations
    /// of the stage (1: the evaluation's own), so one lucky evaluation does not choose the checkpoint.
    public var smooth = 1

    public init() {}

    static let fields: [ConfigField<EvaluationSchedule>] = [
        .int("eval_every", \.every, .within(0, 10_000_000)),
        .int("eval_users", \.users, .within(0, 100_000_000)),
        .int("patience", \.patience, .within(0, 1_000_000)),
        .int("evaluations", \.count, .within(0, 100_000)),
        .int("smooth", \.smooth, .within(1, 100)),
    ]

    /// Steps between evaluations in a stage of `steps` steps (0: only at its end).
    public func interval(steps: Int) -> Int {
        count > 0 ? max(1, steps / count) : every
    }
}

/// What one step did, for the log line and the progress line.
public struct StepReport {
    public var loss: Double
    /// Tokens through the forward pass.
    public var tokens: Int
    /// Log fields of this stage kind, written after the common ones.
    public var fields: [(String, Any)] = []
    /// Appended to the progress line.
    public var progress = ""
}

public protocol TrainingStage: Sendable {
    /// The config's "stage" value.
    static var kind: String { get }
    /// Every setting except "stage": what the config may say about this kind, with the values it accepts.
    static var fields: [ConfigField<Self>] { get }
    /// The defaults of every setting.
    init()
    var optimizer: OptimizerSchedule { get set }
    /// Validation schedule; nil for a stage that never evaluates.
    var evaluation: EvaluationSchedule? { get }
    /// Dropout while the stage trains (0: none).
    var dropout: Float { get }
    /// Decay of the parameter average that evaluations (and so the kept checkpoint) use (0: none).
    var ema: Float { get }
    /// On a non-terminal stderr, a progress line every this many steps.
    var progressEvery: Int { get }
    /// The seed of the stage's batch order from the run's seed and the stage's index.
    func batchSeed(seed: UInt64, stage: Int) -> UInt64
    /// Runs before the first step this process takes in the stage (fresh or resumed).
    func begin(_ trainer: Trainer) throws
    /// One forward and backward pass over `windows`; the gradients are left in the trainer's graph.
    func step(_ trainer: Trainer, step: Int, windows: [TrainingCorpus.Window]) throws -> StepReport
    /// What a validation evaluation scores: nil for the direct path of the current parameters (or their average).
    func validationRecommender(_ trainer: Trainer) -> Recommender?
    /// For stages that train the reasoning path: that path over `base` as the stage evaluates it (the final report
    /// measures it beside the direct path, and the parameters before the first such stage are "w/o reasoning").
    func reasoningRecommender(base: DualHeadModel) -> ReasoningRecommender?
    /// Checks between settings of this kind, beyond each setting's own range (`path` is e.g. "stages[1]").
    func check(path: String, errors: inout ConfigErrors)
}

extension TrainingStage {
    public var evaluation: EvaluationSchedule? { nil }
    public var dropout: Float { 0 }
    public var ema: Float { 0 }
    public var progressEvery: Int { 10 }
    public func begin(_ trainer: Trainer) throws {}
    public func validationRecommender(_ trainer: Trainer) -> Recommender? { nil }
    public func reasoningRecommender(base: DualHeadModel) -> ReasoningRecommender? { nil }
    public func check(path: String, errors: inout ConfigErrors) {}

    public var kind: String { Self.kind }

    /// The settings written back as the config's JSON object (with "stage").
    var json: JSONValue {
        guard case .object(var o) = ConfigReader.write(self, fields: Self.fields) else { preconditionFailure() }
        o["stage"] = .string(Self.kind)
        return .object(o)
    }
}

/// The stage kinds a config may name, and reading one stage's object.
public enum StageKinds {
    public static let all: [any TrainingStage.Type] = [LMStage.self, RecStage.self, RationaleStage.self, RecPOStage.self]

    static func read(_ value: JSONValue, path: String, errors: inout ConfigErrors) -> (any TrainingStage)? {
        guard case .object(var object) = value else {
            errors.add(path, "expected an object with a \"stage\" (\(ConfigReader.list(all.map { $0.kind })))")
            return nil
        }
        var name = RecStage.kind
        if let given = object.removeValue(forKey: "stage") {
            guard case .string(let s) = given else {
                errors.add(path + ".stage", "expected \(ConfigReader.list(all.map { $0.kind })), got \(given.shown)")
                return nil
            }
            name = s
        }
        guard let type = all.first(where: { $0.kind == name }) else {
            errors.add(path + ".stage", "unknown stage \"\(name)\"; expected \(ConfigReader.list(all.map { $0.kind }))" +
                       ConfigReader.suggestion(name, all.map { $0.kind }))
            return nil
        }
        return type.read(.object(object), path: path, errors: &errors)
    }
}

extension TrainingStage {
    /// This kind's settings from `value` (without its "stage" key), checked; keys that belong to other kinds are
    /// named as such.
    static func read(_ value: JSONValue, path: String, errors: inout ConfigErrors) -> Self {
        var elsewhere: [String: String] = [:]
        let mine = Set(fields.map(\.key))
        for other in StageKinds.all where other.kind != kind {
            for key in other.fieldKeys where !mine.contains(key) {
                let owners = StageKinds.all.filter { $0.fieldKeys.contains(key) }.map { $0.kind }
                elsewhere[key] = "not a setting of \(kind) stages (\(ConfigReader.list(owners)) stages have it)"
            }
        }
        var stage = Self()
        ConfigReader.read(value, into: &stage, fields: fields, path: path, what: "a \(kind) stage",
                          elsewhere: elsewhere, errors: &errors)
        stage.optimizer.check(path: path, errors: &errors)
        stage.check(path: path, errors: &errors)
        return stage
    }

    static var fieldKeys: [String] { fields.map(\.key) }
}
