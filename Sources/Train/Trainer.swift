// The training run: tokenizer, model, then each configured stage (LMStage, RecStage, RationaleStage, RecPOStage) through one loop
// (`run(_:)`) with AdamW and its schedule, validation NDCG@10 evaluations (the Eval evaluator, history masked) with
// early stopping and the best parameters kept, resumable state saved as it goes, and at the end the best checkpoint
// (weights, tokenizer, item table, r2ec_train.json with tau, split and the top-N calibrator) plus validation and
// test reports. Everything is written into `OUT.partial`, which becomes OUT only when the run has finished: a
// failed run never leaves a half-written OUT (its scratch folder stays only when it holds resumable state).
//
// Data-parallel (under mpirun, `communicator` of size N > 1): every rank builds the same tokenizer, model and seeded
// batch order, computes its share of each global batch (the stage's step splits it) and the gradients are summed
// over the ranks before every optimiser update, so each rank holds the same parameters; rank 0 alone evaluates,
// logs, saves state and writes the checkpoint, and broadcasts the decisions every rank must share (time limit,
// early stop, best parameters).
import Collectives
import Data
import Eval
import Foundation
import Model
import Tensor

public final class Trainer: @unchecked Sendable {
    public let config: TrainConfig
    /// Where the finished checkpoint goes.
    public let out: String
    /// Where the run writes until it has finished (`out` + ".partial"); renamed to `out` at the end.
    public let work: String
    public let log: TrainLog
    public let corpus: TrainingCorpus
    /// Every process of the run (a single process unless started by mpirun).
    public let world: Communicator
    public private(set) var model: Qwen2Model!
    public private(set) var tokenizer: Tokenizer!
    var graph: TrainingGraph!
    /// Unit item vectors [items, hidden] read out with recent parameters (the full-table columns).
    var table: FloatBuffer?
    var progress = TrainingProgress()
    var optimizer: AdamW?
    var bestParameters: ParameterBuffer?
    /// Learned per-item id vectors (`item_id_vectors`), added to the text read-outs of items seen in training.
    var ids: ItemIDVectors?
    /// The current stage's moving average of the parameters (stages with `ema` > 0).
    var average: ParameterAverage?
    /// Seconds spent before this process (a resumed run continues the clock).
    var priorSeconds = 0.0
    let validationSubsetSeed: UInt64 = 99
    var stopAll = false
    /// Tests simulate a crash: after this many state saves the run throws, leaving the state as a kill would.
    var crashAfterSaves: Int?
    /// Tests simulate a failure before this global step (no state saved since the last save).
    var failAtStep: Int?
    private var saves = 0
    /// Measure the finished checkpoint on validation only: no test evaluation at all (`r2ec tune`'s trials, which
    /// must never see test); r2ec_train.json then has empty test metrics.
    public var validationOnly = false
    /// Whether the last evaluation found the best parameters so far.
    var lastEvaluationImproved = false

    public struct Summary {
        public var validation: EvalResult
        /// Nil when the run measured validation only (`validationOnly`, as `r2ec tune` runs its trials).
        public var test: EvalResult?
        public var calibratedTest: EvalResult?
        public var trainSeconds: Double
        /// The reasoning path (greedy chains), when the recipe has a reasoning stage (rationale, RecPO).
        public var reasoningValidation: EvalResult?
        public var reasoningTest: EvalResult?
        /// The paper's "w/o reasoning" model: the best parameters before the first reasoning stage (trained with the
        /// recommendation loss only), saved in OUT/without-reasoning and measured on its direct path.
        public var withoutReasoningValidation: EvalResult?
        public var withoutReasoningTest: EvalResult?
        /// Optimiser steps taken over all stages, and whether the time limit cut the run.
        public var steps = 0
        public var timeLimited = false
    }

    /// Where a recipe with a reasoning stage keeps the checkpoint it had before the first one ("w/o reasoning"),
    /// inside the run's folder.
    public var withoutReasoningDirectory: String { work + "/without-reasoning" }

    /// The index of the first stage that trains the reasoning path (rationale, RecPO).
    var firstReasoningStage: Int? {
        config.stages.firstIndex { $0 is RecPOStage || $0 is RationaleStage }
    }

    /// The scratch folder a run into `out` writes in.
    public static func workDirectory(for out: String) -> String {
        (out.hasSuffix("/") ? String(out.dropLast()) : out) + ".partial"
    }

    /// Whether `run()` continues from the resumable state of an earlier run (when there is one).
    public let resume: Bool

    /// Checks the machine can take the config (dataset, memory budget) and reads the dataset before anything is
    /// written; `logPath` nil logs to stderr only. With `resume` an earlier run's scratch folder (and its state) is
    /// kept; otherwise a stale one is removed.
    /// `communicator` is every process of a data-parallel run (each must be given the same arguments); only its
    /// rank 0 writes anything.
    public init(config: TrainConfig, out: String, logPath: String?, budget: MemoryBudget = .unlimited,
                resume: Bool = false, communicator: Communicator = SingleProcess()) throws {
        self.resume = resume
        self.out = out
        self.work = Self.workDirectory(for: out)
        world = communicator
        try config.checkResources(budget: budget)
        guard let kind = Splits.Kind(rawValue: config.split) else { throw TrainError.config("split: expected loo or temporal") }
        let dataset = try DatasetLoader.load(config.dataset)
        corpus = TrainingCorpus(dataset: dataset, split: Splits.make(kind, dataset), includeValidation: config.fitValidation,
                                promptFormat: config.promptFormat)
        self.config = Self.resolved(config, corpus: corpus)
        // Every rank must train the same recipe on the same data.
        try world.checkAgreement(Self.fingerprint(self.config.jsonString() + "\u{0}" + dataset.fingerprint),
                                 what: "the config or dataset")
        if world.isRoot {
            if !resume { try? FileManager.default.removeItem(atPath: work) }
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            log = try TrainLog(path: logPath)
        } else {
            log = try TrainLog(path: nil, quiet: true)
        }
    }

    /// FNV-1a of a text (what ranks compare to agree on their inputs).
    static func fingerprint(_ text: String) -> UInt64 {
        var h = FNV1a()
        h.bytes(text.utf8)
        return h.value
    }

    /// FNV-1a of the parameters' bits.
    func parameterFingerprint() -> UInt64 {
        var h = FNV1a()
        let p = model.parameters.base
        for i in 0..<model.parameters.count { h.mix(UInt64(p[i].bitPattern)) }
        return h.value
    }

    /// `config` with every stage given in epochs turned into steps for this corpus (an epoch is the stage's
    /// first epoch of windows; its length varies by a few windows between seeds).
    static func resolved(_ config: TrainConfig, corpus: TrainingCorpus) -> TrainConfig {
        var c = config
        for i in c.stages.indices where c.stages[i].optimizer.epochs > 0 {
            let length = corpus.epoch(seed: c.stages[i].batchSeed(seed: c.seed, stage: i)).count
            c.stages[i].optimizer = c.stages[i].optimizer.resolved(epochLength: length)
        }
        return c
    }

    var stateDirectory: String { work + "/" + TrainingState.directoryName }
    public var seconds: Double { priorSeconds + log.elapsed }

    /// Builds or resumes the model, runs every stage, and moves the finished checkpoint to `out`; returns the final
    /// reports (nil on the ranks other than 0 of a data-parallel run, which only train). A run that throws removes
    /// its scratch folder unless it holds resumable state (`--resume` continues from it).
    @discardableResult
    public func run() throws -> Summary? {
        let summary: Summary
        do {
            // Rank 0's scratch folder decides (the other ranks may be on hosts that do not see it).
            if try world.broadcast(resume && world.isRoot && TrainingState.exists(directory: stateDirectory)) {
                try resumeState()
            } else {
                try start()
            }
            while progress.stage < config.stages.count && !stopAll {
                let stage = config.stages[progress.stage]
                graph.dropout = stage.dropout
                graph.dropoutSeed = dropoutSeed
                try run(stage)
                progress.stage += 1
                progress.step = 0
                progress.recentScores = nil
                optimizer = nil
                average = nil
                progress.averageUpdates = -1
                if let bestParameters, progress.stage < config.stages.count {
                    // Early stopping keeps the best parameters, not the last: the next stage starts from them.
                    model.parameters.base.update(from: bestParameters.base, count: bestParameters.count)
                    ids?.restoreBest()
                    table = nil
                    log.note(String(format: "stage %d starts from the best parameters so far (stage %d step %d, validation NDCG@10 %.4f)",
                                    progress.stage, progress.bestStage, progress.bestStep, progress.bestScore))
                    if progress.stage == firstReasoningStage && world.isRoot {
                        try Checkpoint.save(model, tokenizer: tokenizer, directory: withoutReasoningDirectory)
                        try ids?.save(ids: corpus.dataset.catalog.items.map(\.id), directory: withoutReasoningDirectory)
                        log.note("the model without reasoning (before \(config.stages[progress.stage].kind)) is saved in \(withoutReasoningDirectory)")
                    }
                }
                try saveState()
            }
            // The other ranks have trained the same parameters; rank 0 measures and writes them.
            guard world.isRoot else { return nil }
            summary = try finish()
        } catch {
            if world.isRoot && !TrainingState.exists(directory: stateDirectory) { try? FileManager.default.removeItem(atPath: work) }
            throw error
        }
        // The finished checkpoint stays in the scratch folder if the move fails.
        try publish()
        return summary
    }

    /// The loop every stage shares: per step the time limit, the step's batch, the stage's forward and backward,
    /// one optimiser update, a log line and the progress line; validation evaluations (for stages that evaluate)
    /// with early stopping; resumable state every `save_every` steps.
    func run(_ stage: any TrainingStage) throws {
        let o = stage.optimizer, kind = stage.kind
        var batches = WindowSchedule(corpus: corpus, seed: stage.batchSeed(seed: config.seed, stage: progress.stage),
                                     batch: o.batch)
        try stage.begin(self)
        let stageStart = Date()
        var tokens = 0
        if o.epochs > 0 {
            log.note(String(format: "%@ stage: %.2f epochs of %d windows in batches of %d = %d steps", kind, o.epochs,
                            corpus.epoch(seed: stage.batchSeed(seed: config.seed, stage: progress.stage)).count,
                            o.batch, o.steps))
        }
        for step in progress.step..<o.steps {
            // Rank 0's clock decides for every rank (their clocks differ; all must stop at the same step).
            let timeUp = try world.broadcast(outOfTime)
            if timeUp { stopAll = true; log.note("time limit reached at \(kind) step \(step)"); break }
            if let failAtStep, progress.globalStep >= failAtStep { throw SimulatedCrash() }
            let t0 = Date()
            let (windows, epoch) = batches.windows(step: step)
            var report = try stage.step(self, step: step, windows: windows)
            if world.size > 1 {
                // Each rank reported its share of the batch's loss and tokens.
                let sums = try world.sum([report.loss, Double(report.tokens)])
                report.loss = sums[0]
                report.tokens = Int(sums[1])
            }
            let norm = try update(stage, step: step)
            tokens += report.tokens
            let elapsed = Date().timeIntervalSince(t0)
            log.write([("step", progress.globalStep), ("stage", kind), ("stage_step", step), ("loss", report.loss),
                       ("tokens_per_s", Double(report.tokens) / elapsed), ("lr", Double(o.learningRate.rate(step))),
                       ("grad_norm", norm), ("epoch", epoch)] + report.fields + [("seconds", seconds)])
            log.progress(stage: kind, step: step, total: o.steps, loss: report.loss,
                         tokensPerSecond: Double(tokens) / Date().timeIntervalSince(stageStart),
                         stageSeconds: Date().timeIntervalSince(stageStart),
                         extra: String(format: " epoch %.2f", epoch) + report.progress, every: stage.progressEvery)
            progress.step = step + 1
            let last = step + 1 == o.steps
            let evaluate = stage.evaluation.map { e in
                let every = e.interval(steps: o.steps)
                return (every > 0 && (step + 1) % every == 0) || last
            } ?? false
            // The time limit evaluates early too (rank 0's clock again).
            let timeUpNow = !evaluate && stage.evaluation != nil ? try world.broadcast(outOfTime) : false
            if evaluate || timeUpNow {
                if try evaluateShared(stage, step: step + 1) {
                    log.note("early stop at \(kind) step \(step + 1)")
                    break
                }
            }
            if config.saveEvery > 0 && (step + 1) % config.saveEvery == 0 && !last { try saveState() }
        }
    }

    func start() throws {
        let began = Date()
        log.note("r2ec train: \(corpus.dataset.name), \(corpus.catalogCount) items, \(corpus.split.numUsers) users, " +
                 "split \(config.split): \(corpus.trainingInteractions.count) training interactions" +
                 (config.fitValidation ? " (train + validation)" : ""))
        tokenizer = try corpus.trainTokenizer(vocabularySize: config.vocabSize, userPrompts: config.tokenizerUserPrompts,
                                              seed: config.seed)
        log.note(String(format: "tokenizer: %d tokens, trained in %.1f s", tokenizer.vocabularySize,
                        Date().timeIntervalSince(began)))
        let c = config.modelConfiguration(vocabularySize: tokenizer.vocabularySize)
        model = try Qwen2Model(randomWith: c, seed: config.seed, std: config.model.initStd)
        makeIDVectors()
        try setUp()
        progress.config = config.jsonString()
        progress.parameterCount = model.parameterCount
        if world.size > 1 {
            try world.checkAgreement(Self.fingerprint(tokenizer.vocabularySize.description + "\u{0}" +
                                                      corpus.itemTokens.map { $0.description }.joined(separator: ";")),
                                     what: "the trained tokenizer")
            try world.checkAgreement(parameterFingerprint(), what: "the initial parameters")
            log.note("data-parallel: \(world.size) ranks, each computing 1/\(world.size) of every batch")
        }
        if world.isRoot { try Checkpoint.save(model, tokenizer: tokenizer, directory: work) }
    }

    /// Continues from the state in the scratch folder: rank 0 reads it there, every other rank of a data-parallel
    /// run from its own copy of that folder, which rank 0 sends it (`SharedScratch`).
    func resumeState() throws {
        let folder = try SharedScratch.share(work, over: world)
        defer { if folder != work { try? FileManager.default.removeItem(atPath: folder) } }
        let stateFolder = folder + "/" + TrainingState.directoryName
        let p = try TrainingState.loadProgress(directory: stateFolder)
        guard p.config == config.jsonString() else {
            throw TrainError.state("the state in \(stateDirectory) was written with another config; use the same config or drop --resume")
        }
        tokenizer = try Checkpoint.loadTokenizer(directory: folder)
        let c = try Checkpoint.loadConfiguration(directory: folder)
        model = try Qwen2Model(randomWith: c, seed: config.seed)
        if p.bestStage >= 0 {
            bestParameters = try Checkpoint.loadModel(directory: folder).parameters
        }
        progress = p
        priorSeconds = p.elapsed
        try setUp()
        if p.step > 0 {
            optimizer = AdamW(layout: model.parameters.layout, settings: config.stages[p.stage].optimizer.adam)
            optimizer!.step = p.optimizerStep
        }
        if p.averageUpdates >= 0 {
            average = ParameterAverage(of: model.parameters, decay: config.stages[p.stage].ema, updates: p.averageUpdates)
        }
        table = try TrainingState.load(directory: stateFolder, parameters: model.parameters, optimizer: optimizer,
                                       average: average?.average)
        makeIDVectors()
        try ids?.loadState(directory: stateFolder)
        if world.size > 1 {
            try world.checkAgreement(parameterFingerprint(), what: "the resumed parameters")
            log.note("data-parallel: \(world.size) ranks, each computing 1/\(world.size) of every batch")
        }
        log.note("resumed stage \(p.stage) (\(config.stages[min(p.stage, config.stages.count - 1)].kind)) at step \(p.step)")
    }

    func makeIDVectors() {
        guard config.itemIDVectors else { return }
        ids = ItemIDVectors(count: corpus.catalogCount, dimension: model.configuration.hiddenSize,
                            trainable: corpus.itemFrequency.map { $0 > 0 })
    }

    /// Writes the id vectors (when the run has them) beside the checkpoint in the scratch folder.
    func saveIDVectors() throws {
        try ids?.save(ids: corpus.dataset.catalog.items.map(\.id), directory: work)
    }

    func setUp() throws {
        corpus.use(tokenizer: tokenizer, maxPositions: model.configuration.promptPositions)
        graph = TrainingGraph(model: model)
        if ProcessInfo.processInfo.environment["R2EC_TRAIN_PROFILE"] != nil { graph.profile = PhaseProfile() }
        log.note("model: \(model.parameterCount) parameters, d_model \(model.configuration.hiddenSize), " +
                 "\(model.configuration.numHiddenLayers) layers, vocab \(model.configuration.vocabSize)" +
                 (model.configuration.latentSteps > 0 ? ", \(model.configuration.latentSteps) latent steps" : ""))
    }

    /// The optimiser of the current stage (created at its first step; loaded on resume).
    func stageOptimizer(_ s: any TrainingStage) -> AdamW {
        if let optimizer { return optimizer }
        let o = AdamW(layout: model.parameters.layout, settings: s.optimizer.adam)
        optimizer = o
        return o
    }

    /// One optimiser update after the gradients of a step are in `graph.gradients` (each rank's share, summed over
    /// the ranks first); returns the gradient norm.
    func update(_ s: any TrainingStage, step: Int) throws -> Double {
        if world.size > 1 { try world.allreduceSum(graph.gradients.base, count: graph.gradients.count) }
        let o = stageOptimizer(s)
        let norm = o.update(parameters: model.parameters, gradients: graph.gradients, lr: s.optimizer.learningRate.rate(step))
        progress.optimizerStep = o.step
        ids?.step(lr: s.optimizer.learningRate.rate(step) * config.itemIDLRScale)
        progress.globalStep += 1
        if s.ema > 0 {
            if average == nil { average = ParameterAverage(of: model.parameters, decay: s.ema) }
            average!.update(from: model.parameters)
            progress.averageUpdates = average!.updates
        }
        graph.dropoutSeed = dropoutSeed
        return norm
    }

    /// The seed of the next forward's dropout masks: a function of the global step, so a resumed run draws the
    /// masks an uninterrupted one would.
    var dropoutSeed: UInt64 {
        var rng = SplitMix64(seed: config.seed &* 0x2545_F491_4F6C_DD1D &+ UInt64(progress.globalStep))
        return rng.next()
    }

    /// Rank 0 writes the state; every rank counts the save (a simulated crash stops them all at the same point).
    func saveState() throws {
        if world.isRoot {
            progress.elapsed = seconds
            try TrainingState.save(directory: stateDirectory, parameters: model.parameters, optimizer: optimizer,
                                   table: table, average: average?.average, progress: progress)
            try ids?.saveState(directory: stateDirectory)
        }
        saves += 1
        if let crashAfterSaves, saves >= crashAfterSaves { throw SimulatedCrash() }
    }

    struct SimulatedCrash: Error {}

    /// Whether the run's time limit has passed (every stage then stops; the best parameters are kept).
    var outOfTime: Bool { config.timeLimit > 0 && seconds >= config.timeLimit }

    // MARK: Item table and evaluation

    /// Reads out every item with the current parameters. Every rank of a data-parallel run must call it together
    /// (`shared`): each reads out its slice of the catalogue and the slices are gathered; with `shared` false this
    /// process reads out every item alone.
    func refreshTable(shared: Bool = true) throws {
        let d = model.configuration.hiddenSize, n = corpus.catalogCount
        let t = table ?? FloatBuffer(shape: [n, d])
        let split = shared && world.size > 1
        // Equal blocks for allgather: every rank reads out up to ceil(n / size) items into its block.
        let block = split ? (n + world.size - 1) / world.size : n
        let mine = split ? min(n, world.rank * block)..<min(n, (world.rank + 1) * block) : 0..<n
        let local = split ? FloatBuffer(shape: [max(1, block), d]) : t
        var start = mine.lowerBound
        while start < mine.upperBound {
            let end = min(mine.upperBound, start + 128)
            let unit = model.readout(Array(corpus.itemTokens[start..<end]))
            (local.data + (split ? start - mine.lowerBound : start) * d).update(from: unit.data, count: (end - start) * d)
            start = end
        }
        if split {
            let all = FloatBuffer(shape: [block * world.size, d])
            try world.allgather(local.data, bytes: block * d * 4, into: all.data)
            t.data.update(from: all.data, count: n * d)
        }
        ids?.apply(to: t)
        table = t
    }

    /// The current parameters as a DualHeadModel over a freshly refreshed table.
    func currentRecommender() -> DualHeadModel {
        // Only rank 0 evaluates: it reads out the whole table alone (no collective, nothing to throw).
        try! refreshTable(shared: false)
        let copy = FloatBuffer(shape: table!.shape)
        copy.copy(from: table!)
        return DualHeadModel(model: model, tokenizer: tokenizer, catalog: corpus.dataset.catalog,
                             itemTable: ItemTable(vectors: copy, weightsHash: "", promptsHash: ""), tau: config.tau,
                             promptFormat: config.promptFormat)
    }

    func validationSubset(_ users: Int) -> [EvalSample] {
        let all = corpus.split.validation
        if users <= 0 || users >= all.count { return all }
        var rng = SplitMix64(seed: validationSubsetSeed)
        var indices = Array(all.indices)
        for i in stride(from: indices.count - 1, to: 0, by: -1) {
            indices.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
        return indices.prefix(users).sorted().map { all[$0] }
    }

    func evalOptions(bootstrap: Int) -> EvalOptions {
        var o = EvalOptions()
        o.bootstrapResamples = bootstrap
        o.batchSize = 128
        return o
    }

    /// Rank 0 evaluates and tracks; the others wait for its decisions (stop early; whether these parameters are the
    /// best so far, which each rank then keeps too, so the next stage starts from the same parameters everywhere).
    func evaluateShared(_ stage: any TrainingStage, step: Int) throws -> Bool {
        if world.size == 1 {
            return try evaluateAndTrack(stage, step: step, recommender: stage.validationRecommender(self))
        }
        var decision: (stop: Bool, improved: Bool, score: Double) = (false, false, 0)
        if world.isRoot {
            let stop = try evaluateAndTrack(stage, step: step, recommender: stage.validationRecommender(self))
            decision = (stop, lastEvaluationImproved, progress.bestScore)
        }
        decision.stop = try world.broadcast(decision.stop)
        decision.improved = try world.broadcast(decision.improved)
        decision.score = try world.broadcast(decision.score)
        if !world.isRoot {
            if decision.improved {
                progress.bestScore = decision.score
                progress.bestStage = progress.stage
                progress.bestStep = step
                progress.evaluationsWithoutImprovement = 0
                let keep = { [self] in
                    let copy = bestParameters ?? ParameterBuffer(layout: model.parameters.layout)
                    copy.base.update(from: model.parameters.base, count: copy.count)
                    bestParameters = copy
                }
                if let average { average.withAverage(in: model.parameters, keep) } else { keep() }
                ids?.keepBest()
            } else {
                progress.evaluationsWithoutImprovement += 1
            }
        }
        return decision.stop
    }

    /// Validation NDCG@10 (and friends) of `recommender`, or when nil of the current parameters (their moving
    /// average when the stage keeps one); logs an eval line, keeps the best parameters (saving them as the
    /// checkpoint) and returns whether the stage should stop early.
    func evaluateAndTrack(_ stage: any TrainingStage, step: Int, recommender: Recommender?) throws -> Bool {
        if let average, recommender == nil {
            return try average.withAverage(in: model.parameters) { try track(stage, step: step, recommender: nil) }
        }
        return try track(stage, step: step, recommender: recommender)
    }

    private func track(_ stage: any TrainingStage, step: Int, recommender: Recommender?) throws -> Bool {
        let began = Date()
        let schedule = stage.evaluation ?? EvaluationSchedule()
        let r = recommender ?? currentRecommender()
        let result = try Self.evaluate(r, on: validationSubset(schedule.users), options: evalOptions(bootstrap: 0))
        let ndcg = result.metrics["NDCG@10"] ?? 0
        var fields: [(String, Any)] = [("eval", progress.globalStep), ("stage", stage.kind), ("stage_step", step)]
        for name in result.names { fields.append((name, result.metrics[name] ?? 0)) }
        fields.append(("users", result.samples))
        fields.append(("seconds", Date().timeIntervalSince(began)))
        // The selection score: the mean of the stage's last `smooth` evaluations (the evaluation's own when 1).
        var recent = (progress.recentScores ?? []) + [ndcg]
        recent.removeFirst(max(0, recent.count - schedule.smooth))
        progress.recentScores = recent
        let score = recent.reduce(0, +) / Double(recent.count)
        fields.append(("selection_score", score))
        log.write(fields)
        let improved = score > progress.bestScore
        lastEvaluationImproved = improved
        log.note(String(format: "[%@] step %d: validation NDCG@10 %.4f HR@10 %.4f on %d users (%.1f s)%@%@", stage.kind, step,
                        ndcg, result.metrics["HR@10"] ?? 0, result.samples, Date().timeIntervalSince(began),
                        schedule.smooth > 1 ? String(format: ", mean of the last %d %.4f", recent.count, score) : "",
                        improved ? " (best)" : ""))
        if improved {
            progress.bestScore = score
            progress.bestStage = progress.stage
            progress.bestStep = step
            progress.evaluationsWithoutImprovement = 0
            let copy = bestParameters ?? ParameterBuffer(layout: model.parameters.layout)
            copy.base.update(from: model.parameters.base, count: copy.count)
            bestParameters = copy
            try Checkpoint.save(model, tokenizer: tokenizer, directory: work)
            ids?.keepBest()
            try saveIDVectors()
        } else {
            progress.evaluationsWithoutImprovement += 1
        }
        return schedule.patience > 0 && progress.evaluationsWithoutImprovement >= schedule.patience
    }

    /// The Eval evaluator on a dual-head recommender, prompts counting back from each sample's target time (as
    /// `r2ec eval --model` does).
    public static func evaluate(_ r: Recommender, on samples: [EvalSample], options: EvalOptions,
                                calibrator: TopNCalibrator? = nil) throws -> EvalResult {
        try Evaluator.evaluate(kind: r.kind, catalogSize: r.catalog.count, on: samples, options: options,
                               calibrator: calibrator) { batch in
            let histories = batch.map(\.history), times = batch.map(\.targetTime)
            if let reasoning = r as? ReasoningRecommender { return try reasoning.scoreAll(histories, targetTimes: times) }
            if let direct = r as? DualHeadModel { return try direct.scoreAll(histories, targetTimes: times) }
            return try r.scoreAll(histories)
        }
    }

    // MARK: Finish

    func finish() throws -> Summary {
        if let bestParameters {
            model.parameters.base.update(from: bestParameters.base, count: bestParameters.count)
            ids?.restoreBest()
            log.note(String(format: "best validation NDCG@10 %.4f (stage %d step %d)", progress.bestScore,
                            progress.bestStage, progress.bestStep))
        }
        let trainSeconds = seconds
        if let profile = graph.profile {
            log.note("training passes, seconds per phase: " + profile.order.map {
                String(format: "%@ %.1f", $0, profile.seconds[$0]!) }.joined(separator: ", "))
        }
        try Checkpoint.save(model, tokenizer: tokenizer, directory: work)
        try saveIDVectors()
        let began = Date()
        // The tau the checkpoint will be served with, so the calibrator is fitted on the scores the server computes;
        // the item table is cached in the checkpoint, which training owns.
        let recommender = try DualHeadLoader.load(directory: work, dataset: corpus.dataset, tau: config.tau,
                                                  promptFormat: config.promptFormat,
                                                  writeItemTable: true)
        var options = evalOptions(bootstrap: 1000)
        options.calibrationN = config.calibrationRanks
        let validation = try Self.evaluate(recommender, on: corpus.split.validation, options: options)
        let calibrator = config.calibrate ? TopNCalibrator.fit(validation.topN, n: options.calibrationN) : nil
        let test = validationOnly ? nil
            : try Self.evaluate(recommender, on: corpus.split.test, options: options, calibrator: calibrator)
        let calibrated = calibrator == nil ? nil : test
        // With a stage that trains the reasoning path (rationale, RecPO), that path (greedy chains, as the last such
        // stage evaluates it) is measured on the same parameters too.
        var reasoningValidation: EvalResult?, reasoningTest: EvalResult?
        if !validationOnly, let reasoning = config.stages.compactMap({ $0.reasoningRecommender(base: recommender) }).last {
            reasoningValidation = try Self.evaluate(reasoning, on: corpus.split.validation, options: options)
            reasoningTest = try Self.evaluate(reasoning, on: corpus.split.test, options: options)
            log.note(String(format: "reasoning path (greedy, <= %d tokens, mean chain %.1f tokens): validation NDCG@10 %.4f, test NDCG@10 %.4f",
                            reasoning.maxNewTokens, reasoning.meanChainLength, reasoningValidation!.metrics["NDCG@10"] ?? 0,
                            reasoningTest!.metrics["NDCG@10"] ?? 0))
        }
        // The model before the first reasoning stage, on its direct path: the "w/o reasoning" row reasoning is judged
        // against. When the checkpoint kept is that stage's step 0 (or earlier), those are the parameters just measured.
        var withoutValidation: EvalResult?, withoutTest: EvalResult?
        if !validationOnly, let test, let recpo = firstReasoningStage,
           FileManager.default.fileExists(atPath: withoutReasoningDirectory + "/model.safetensors") {
            if progress.bestStage < recpo || (progress.bestStage == recpo && progress.bestStep == 0) {
                (withoutValidation, withoutTest) = (validation, test)
            } else {
                let without = try DualHeadLoader.load(directory: withoutReasoningDirectory, dataset: corpus.dataset,
                                                      tau: config.tau, promptFormat: config.promptFormat, writeItemTable: true)
                withoutValidation = try Self.evaluate(without, on: corpus.split.validation, options: options)
                withoutTest = try Self.evaluate(without, on: corpus.split.test, options: options)
            }
            log.note(String(format: "without reasoning (before the reasoning stages), direct path: validation NDCG@10 %.4f, test NDCG@10 %.4f",
                            withoutValidation!.metrics["NDCG@10"] ?? 0, withoutTest!.metrics["NDCG@10"] ?? 0))
        }
        let info = TrainedModelInfo(tau: config.tau, split: config.split, datasetFingerprint: corpus.dataset.fingerprint,
                                    calibrator: calibrator, validation: validation.metrics, test: test?.metrics ?? [:],
                                    testReasoning: reasoningTest?.metrics,
                                    trainSeconds: trainSeconds, config: config.jsonString(),
                                    promptFormat: config.promptFormat)
        try info.save(directory: work)
        // The final report line has neither "step" nor "eval", so curve plotters keep it apart from validation.
        var fields: [(String, Any)] = [("final", "best checkpoint"), ("after_step", progress.globalStep)]
        if let test { for name in test.names { fields.append(("test " + name, test.metrics[name] ?? 0)) } }
        for name in validation.names { fields.append(("validation " + name, validation.metrics[name] ?? 0)) }
        if let t = reasoningTest { for name in t.names { fields.append(("test reasoning " + name, t.metrics[name] ?? 0)) } }
        if let t = withoutTest { for name in t.names { fields.append(("test without reasoning " + name, t.metrics[name] ?? 0)) } }
        log.write(fields)
        log.note(String(format: "final: validation NDCG@10 %.4f, test NDCG@10 %.4f HR@10 %.4f (evaluation %.1f s, training %.1f s)",
                        validation.metrics["NDCG@10"] ?? 0, test?.metrics["NDCG@10"] ?? .nan, test?.metrics["HR@10"] ?? .nan,
                        Date().timeIntervalSince(began), trainSeconds))
        try? FileManager.default.removeItem(atPath: stateDirectory)
        return Summary(validation: validation, test: test, calibratedTest: calibrated, trainSeconds: trainSeconds,
                       reasoningValidation: reasoningValidation, reasoningTest: reasoningTest,
                       withoutReasoningValidation: withoutValidation, withoutReasoningTest: withoutTest,
                       steps: progress.globalStep, timeLimited: stopAll)
    }

    /// Moves the finished run from its scratch folder to `out`, replacing an earlier checkpoint there only now
    /// that the new one is complete.
    func publish() throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: out) {
            let old = out + ".old"
            try? fm.removeItem(atPath: old)
            try fm.moveItem(atPath: out, toPath: old)
            try fm.moveItem(atPath: work, toPath: out)
            try? fm.removeItem(atPath: old)
        } else {
            try fm.moveItem(atPath: work, toPath: out)
        }
    }
}
