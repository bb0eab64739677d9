// `r2ec eval`: loads a dataset, splits it, trains a baseline (or loads a model), evaluates on validation and test
// with full ranking and masked history, prints a markdown table and optionally writes the JSON report.
import ArgumentParser
import Data
import Eval
import Foundation
import Model
import Train
import Tensor

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a baseline or a model: HR/NDCG@5/10/20, MRR, intervals, coverage, list errors, ECE@N of a top-N calibrator."
    )

    @Option(help: "Dataset directory (RecBole atomic, raw MovieLens or Amazon 2023 JSONL).")
    var dataset = "data/ml-100k"

    @Option(help: "loo (leave-one-out) or temporal (the paper's 80/10/10 by target time).")
    var split = "loo"

    @Option(help: "A baseline: pop, wals, bpr, or random (seeded uniform scores per history: the chance level).")
    var baseline: String?

    @Option(help: "A dual-head checkpoint directory (config.json, model.safetensors, tokenizer.json).")
    var model: String?

    @Option(help: "With --model: score with the reasoning path (greedy chains of at most N new tokens, then <answer>) instead of the direct path, and report the chains' text quality (quoted titles in the catalogue and in the history, distinct-2, repetition-4).")
    var reasoning: Int?

    @Option(help: "With --reasoning: quoted titles in the chains are decoded through a trie of titles, so every \"[...]\" a chain closes is one of them: catalogue (every item's title) or history (the titles the user's prompt shows).")
    var constrainTitles: TitleScope?

    @Option(help: "Weights of --model in inference: float32, or bfloat16 (projections and item table in bfloat16, float32 sums; needs a CPU with AVX512_BF16).")
    var precision: PackedMatrix.Precision = .float32

    @Option(help: "Item table --model scores against: float32, or int8 (one float32 scale per row; ranking by the dequantised table).")
    var itemTablePrecision = ItemTablePrecision.float32

    @Option(help: "With --model: weight W in [0, 1] of new items' content prior. An item without a training interaction scores with unit((1-W)*text vector + W*mean of its genres' centroids), a centroid being the mean vector of the trained items of that genre (text alone when none of its genres has one); 0 = text alone.")
    var newItemPrior: Float = 0

    @Flag(help: "Evaluate an untrained dual-head network (d 128, 2 layers, BPE of 1,024 tokens trained on the prompts): a floor for trained ones and a check of the path.")
    var randomModel = false

    @Option(help: "Baseline options, key=value,... (e.g. factors=32,alpha=3,reg=1).")
    var options = ""

    @Option(help: "Samples evaluated: all, warm (the target item has a training interaction) or cold (it has none: a new item to the model).")
    var targets = "all"

    @Option(help: "Keep only users and items with at least this many interactions (0: no filtering).")
    var kcore = 0

    @Option(help: "Write the JSON report here.")
    var json: String?

    @Flag(help: "Sweep the baseline's hyper-parameters, select on validation NDCG@10, report test.")
    var sweep = false

    @Flag(help: "Factor baselines: score with the users' trained vectors instead of folding histories in.")
    var trainedUsers = false

    @Option(help: "Fits with seeds 0..<n (or from --options seed=S): metrics averaged per user, median fit time.")
    var seeds = 1

    @Option(help: "Bootstrap resamples for the 95% intervals.")
    var bootstrap = 1000

    @Option(help: "Ranks 1...N the top-N calibrator is fitted on (validation) and ECE@N is taken over (test): the ranks a server gives probabilities for.")
    var calibrationRanks = 10

    @Option(help: "With --model: a directory where item tables are kept across runs (read when weights, item prompts and --precision match; built resumably otherwise), as r2ec serve's --item-table-cache; off when not given.")
    var itemTableCache: String?

    @Option(help: "Most memory loading --model may take (bytes, or with K/M/G: 8G). Default: 80% of the memory available.")
    var memoryBudget: String?

    func run() throws {
        let wall = Date()
        if precision == .bfloat16 && !precision.isSupported {
            throw ValidationError("--precision bfloat16 needs a CPU with AVX512_BF16 (this one runs the \(CPU.isa) kernels without it)")
        }
        if let reasoning, model == nil || !(1...4096).contains(reasoning) {
            throw ValidationError("--reasoning N needs --model and N in 1...4096, got \(reasoning)")
        }
        if constrainTitles != nil && reasoning == nil { throw ValidationError("--constrain-titles needs --reasoning N") }
        if precision != .float32 && model == nil {
            throw ValidationError("--precision applies to --model only")
        }
        if itemTablePrecision != .float32 && model == nil {
            throw ValidationError("--item-table-precision applies to --model only")
        }
        guard (0...1).contains(newItemPrior) else {
            throw ValidationError("--new-item-prior: expected a weight in [0, 1], got \(newItemPrior)")
        }
        if newItemPrior != 0 && model == nil { throw ValidationError("--new-item-prior applies to --model only") }
        if itemTableCache != nil && model == nil { throw ValidationError("--item-table-cache applies to --model only") }
        try Serve.validate(itemTableCache: itemTableCache)
        guard [baseline != nil, model != nil, randomModel].filter({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --baseline pop|wals|bpr|random, --model PATH or --random-model")
        }
        guard let kind = Splits.Kind(rawValue: split) else { throw ValidationError("--split must be loo or temporal") }
        guard (1...1000).contains(calibrationRanks) else {
            throw ValidationError("--calibration-ranks must be in 1...1000, got \(calibrationRanks)")
        }
        guard bootstrap >= 0 else { throw ValidationError("--bootstrap must be >= 0, got \(bootstrap)") }
        if baseline == nil && (sweep || trainedUsers || !options.isEmpty) {
            throw ValidationError("--sweep, --trained-users and --options apply to baselines only")
        }
        var data = try DatasetLoader.load(dataset)
        if kcore > 1 { data = try Splits.kCore(data, k: kcore) }
        let loaded = Date()
        guard ["all", "warm", "cold"].contains(targets) else {
            throw ValidationError("--targets must be all, warm or cold, got '\(targets)'")
        }
        var s = Splits.make(kind, data)
        if targets != "all" {
            // Warm: the target has a training interaction; cold: it has none. Models still train on all of train.
            var seen = [Bool](repeating: false, count: data.catalog.count)
            for x in s.train { seen[x.item] = true }
            let keep = { (e: EvalSample) in seen[e.target] == (targets == "warm") }
            s.validation = s.validation.filter(keep)
            s.test = s.test.filter(keep)
            guard !s.test.isEmpty else { throw ValidationError("--targets \(targets): no test sample has such a target") }
        }
        let splitSeconds = Date().timeIntervalSince(loaded)
        var evalOptions = EvalOptions()
        evalOptions.bootstrapResamples = bootstrap
        evalOptions.calibrationN = calibrationRanks

        var points: [SweepPoint] = []
        var chosen = try Baselines.parseOptions(options)
        var first: (Recommender, Double)?
        if baseline == nil {
            let start = Date()
            first = (try dualHead(data: data, split: s), Date().timeIntervalSince(start))
        }
        if sweep {
            let result = try Sweep.run(kind: baseline!, split: s, catalog: data.catalog, base: chosen, options: evalOptions) { p in
                let o = p.options.keys.sorted().map { "\($0)=\(p.options[$0]!)" }.joined(separator: ",")
                FileHandle.standardError.write(Data("sweep \(o): validation NDCG@10 \(p.validationNDCG10)\n".utf8))
            }
            points = result.points
            chosen = result.best.options
            first = (result.model, result.best.fitSeconds)
        }

        var chains: ReasoningRecommender?
        let evaluate = { (recommender: Recommender, samples: [EvalSample], calibrator: TopNCalibrator?) throws -> EvalResult in
            if let dual = recommender as? DualHeadModel, let reasoning {
                // The reasoning path: greedy chains, the read-out after <answer>; the chains are kept for their
                // text quality (the last call's, test's, are reported).
                let path = ReasoningRecommender(base: dual, maxNewTokens: reasoning, constrainTitles: constrainTitles)
                path.recordChains = true
                chains = path
                var o = evalOptions
                o.scoresAreLogits = true
                return try Evaluator.evaluate(kind: path.kind, catalogSize: data.catalog.count, on: samples,
                                              options: o, calibrator: calibrator) {
                    try path.scoreAll($0.map(\.history), targetTimes: $0.map(\.targetTime))
                }
            }
            if let dual = recommender as? DualHeadModel {
                // The prompt's times count back from each sample's target time, as in training; scores are
                // cosine / tau, the logits of the model's p.
                var o = evalOptions
                o.scoresAreLogits = true
                return try Evaluator.evaluate(kind: dual.kind, catalogSize: data.catalog.count, on: samples,
                                              options: o, calibrator: calibrator) {
                    try dual.scoreAll($0.map(\.history), targetTimes: $0.map(\.targetTime))
                }
            }
            guard trainedUsers else {
                return try Evaluator.evaluate(recommender, on: samples, options: evalOptions, calibrator: calibrator)
            }
            guard let factors = recommender as? FactorModel else {
                throw ValidationError("--trained-users needs a factor baseline (wals or bpr)")
            }
            return try Evaluator.evaluate(kind: factors.kind, catalogSize: data.catalog.count, on: samples,
                                          options: evalOptions, calibrator: calibrator) {
                try factors.scoreTrainedUsers($0.map(\.user))
            }
        }
        // One fit per seed (seeds 0..<n unless --options fixes one): metrics averaged, fit time the median.
        let baseSeed = Int(chosen["seed"] ?? "0") ?? 0
        var fits: [Double] = [], validations: [EvalResult] = [], tests: [EvalResult] = []
        var recommender: Recommender?
        // Popularity has no seed; the dual-head network is loaded once.
        let runs = baseline == nil || baseline == "pop" || baseline == "popularity" ? 1 : max(1, seeds)
        for i in 0..<runs {
            let model: Recommender, fit: Double
            if i == 0, let first {
                (model, fit) = first
            } else {
                var o = chosen
                if self.baseline != "pop" { o["seed"] = String(baseSeed + i) }
                let start = Date()
                guard let baseline else { throw ValidationError("--seeds applies to baselines only") }
                model = try Baselines.train(kind: baseline, on: s.train, catalog: data.catalog, numUsers: s.numUsers, options: o)
                fit = Date().timeIntervalSince(start)
            }
            let validation = try evaluate(model, s.validation, nil)
            let calibrator = TopNCalibrator.fit(validation.topN, n: evalOptions.calibrationN)
            tests.append(try evaluate(model, s.test, calibrator))
            validations.append(validation)
            fits.append(fit)
            if recommender == nil { recommender = model }
        }
        let validation = EvalResult.mean(validations, options: evalOptions)
        let test = EvalResult.mean(tests, options: evalOptions)
        let fitSeconds = fits.sorted()[fits.count / 2]
        let command = (["r2ec"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        var report = EvalReport(command: command, dataset: data, split: s, model: recommender!, validation: validation,
                                test: test, sweep: points, fitSeconds: fitSeconds, wallSeconds: Date().timeIntervalSince(wall))
        report.fits = fits.count
        report.loadSeconds = loaded.timeIntervalSince(wall)
        report.splitSeconds = splitSeconds
        print(report.markdown())
        var quality: ReasoningQuality?
        if let chains {
            let titles = data.catalog.items.map(Prompts.displayTitle)
            let shown = chains.recorded.map { c in c.history.items.suffix(Prompts.historyLength).map { titles[$0] } }
            let q = ReasoningQuality.measure(chains: chains.recorded.map(\.text), histories: Array(shown),
                                             catalogue: Set(titles))
            quality = q
            print(String(format: "\nreasoning text (test chains, mean %.1f tokens): ", chains.meanChainLength) + q.summary)
            for c in chains.recorded.prefix(3) { print("\n```\n\(c.text)\n```") }
        }
        if let json {
            var object = report.jsonObject()
            if let q = quality {
                func value(_ v: Double?) -> Any { v.map { $0 as Any } ?? NSNull() }
                object["reasoning_quality"] = ["chains": q.chains, "quoted_titles": q.quotedTitles,
                    "titles_in_catalogue": value(q.titlesInCatalogue), "titles_in_history": value(q.titlesInHistory),
                    "distinct_2": value(q.distinct2), "repetition_4": value(q.repetition4), "mean_words": q.meanWords,
                    "mean_tokens": chains?.meanChainLength ?? 0]
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: json))
        }
    }

    /// The dual-head network of --model PATH or --random-model, with item prompts from the training interactions'
    /// statistics (so held-out ratings do not leak into the item table).
    func dualHead(data: Dataset, split s: Split) throws -> DualHeadModel {
        let stats = data.itemStats(from: s.train)
        let itemPrompts = data.catalog.items.enumerated().map { Prompts.item($1, stats: stats[$0]) }
        if let model {
            // Train's loader: tau and the item table cache from the checkpoint, item prompts from its split.
            if let info = try TrainedModelInfo.load(directory: model), info.datasetFingerprint != data.fingerprint {
                FileHandle.standardError.write(Data(("warning: \(model) was trained on dataset \(info.datasetFingerprint), " +
                    "evaluating on \(data.fingerprint)\n").utf8))
            }
            var budget = MemoryBudget.available()
            if let memoryBudget {
                guard let b = MemoryBudget.parse(memoryBudget, source: "--memory-budget") else {
                    throw ValidationError("--memory-budget: expected bytes or a size like 512M or 8G, got '\(memoryBudget)'")
                }
                budget = b
            }
            return try DualHeadLoader.load(directory: model, dataset: data, budget: budget,
                                           itemTableCache: itemTableCache.map { ItemTableCache(directory: $0) },
                                           precision: precision,
                                           itemTablePrecision: itemTablePrecision, newItemPrior: newItemPrior)
        }
        let texts = itemPrompts + s.validation.prefix(200).map {
            Prompts.user(history: $0.history, catalog: data.catalog, targetTime: $0.targetTime, format: .current)
        }
        let tokenizer = try TokenizerTrainer.train(texts: texts, vocabularySize: 1024)
        let configuration = Qwen2Configuration(hiddenSize: 128, intermediateSize: 352, numHiddenLayers: 2,
                                               numAttentionHeads: 4, numKeyValueHeads: 2,
                                               vocabSize: tokenizer.vocabularySize, maxPositionEmbeddings: 4096)
        let network = try Qwen2Model(randomWith: configuration, seed: 1)
        return try DualHeadModel(model: network, tokenizer: tokenizer, catalog: data.catalog, itemPrompts: itemPrompts,
                                 progress: false, promptFormat: .current)
    }
}

extension TitleScope: ExpressibleByArgument {}
