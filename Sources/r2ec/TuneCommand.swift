// `r2ec tune --dataset DIR --budget MIN`: a time-boxed random search over the rec stage's settings, selected on
// validation NDCG@10 only: every trial trains with `Trainer.validationOnly`, so no test sample is ever scored. The
// first trial is the base config as it is, the others are seeded draws from `TuneSpace.default` without repeats
// (each evaluating `evaluations` = 4 times over its stage, as its length is in epochs); each trial gets what is left of the budget as its time limit, and the search
// stops when less than `--min-trial` seconds are left. Writes OUT/trials.jsonl (one line per trial), OUT/trials/NN
// (each trial's checkpoint) and OUT/chosen.json (the chosen trial's whole config, time limit removed), beside a
// markdown table on stdout.
import ArgumentParser
import Data
import Foundation
import Model
import Train

/// The search space: values per setting of the base config's (last) rec stage.
struct TuneSpace {
    var axes: [(key: String, values: [String])]

    static let `default` = TuneSpace(axes: [
        ("epochs", ["1.5", "2.5", "4"]),
        ("lr", ["0.002", "0.004", "0.006"]),
        ("line_weight", ["0.5", "1"]),
        ("fresh_items", ["256", "512"]),
    ])

    /// Every point of the grid in a seeded order (a Fisher-Yates shuffle), each as overrides of the rec stage.
    func shuffled(seed: UInt64) -> [[(String, String)]] {
        var points: [[(String, String)]] = [[]]
        for axis in axes { points = points.flatMap { p in axis.values.map { p + [(axis.key, $0)] } } }
        var rng = SplitMix64(seed: seed)
        for i in stride(from: points.count - 1, to: 0, by: -1) { points.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        return points
    }
}

struct TuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Time-boxed search of the rec stage's settings on validation only (never test); writes the chosen config beside its trials."
    )

    @Option(help: "Dataset directory.")
    var dataset: String

    @Option(help: "Wall-time budget in minutes for the whole search (trials are cut by what is left of it).")
    var budget: Double

    @Option(help: "Base recipe; its last rec stage is searched.")
    var config = "configs/default.json"

    @Option(help: "Output directory: trials.jsonl, trials/NN, chosen.json (default runs/tune-<dataset>).")
    var out: String?

    @Option(help: "Seed of the trial order.")
    var seed: UInt64 = 1

    @Option(help: "Most trials (the space has 36 points plus the base).")
    var maxTrials = 37

    @Option(help: "Start no trial with less than this many seconds of the budget left.")
    var minTrial: Double = 60

    @Option(name: .customLong("set"), help: "Override a base config field for every trial: path=value.")
    var overrides: [String] = []

    func validate() throws {
        guard budget > 0, budget <= 100_000 else { throw ValidationError("--budget must be in (0, 100000] minutes, got \(budget)") }
        guard maxTrials >= 1 else { throw ValidationError("--max-trials must be >= 1, got \(maxTrials)") }
        guard minTrial >= 0 else { throw ValidationError("--min-trial must be >= 0, got \(minTrial)") }
    }

    func run() throws {
        let began = Date()
        let datasetJSON = String(decoding: try JSONEncoder().encode(dataset), as: UTF8.self)
        let base = try TrainConfig.load(path: config, overrides: overrides + ["dataset=\(datasetJSON)"])
        guard let recIndex = base.stages.lastIndex(where: { $0 is RecStage }) else {
            throw ValidationError("--config \(config): no rec stage to tune")
        }
        let folder = out ?? "runs/tune-" + URL(fileURLWithPath: dataset).lastPathComponent
        try FileManager.default.createDirectory(atPath: folder + "/trials", withIntermediateDirectories: true)
        let trialsPath = folder + "/trials.jsonl"
        FileManager.default.createFile(atPath: trialsPath, contents: nil)
        let trialsFile = try FileHandle(forWritingTo: URL(fileURLWithPath: trialsPath))
        defer { try? trialsFile.close() }

        let prefix = "stages.\(recIndex)."
        let points = [[]] + TuneSpace.default.shuffled(seed: seed)
        struct Trial { var index: Int; var overrides: [String]; var validation: [String: Double]; var seconds: Double
                       var steps: Int; var cut: Bool; var config: String }
        var trials: [Trial] = []
        for (i, point) in points.prefix(maxTrials).enumerated() {
            let left = budget * 60 - Date().timeIntervalSince(began)
            if left < minTrial { break }
            let trialOverrides = overrides + ["dataset=\(datasetJSON)", "time_limit=\(Int(left))"]
                + point.map { prefix + "\($0.0)=\($0.1)" } + (point.isEmpty ? [] : [prefix + "evaluations=4"])
            let recipe = try TrainConfig.load(path: config, overrides: trialOverrides)
            let trialOut = folder + "/trials/" + String(format: "%02d", i)
            let trainer = try Trainer(config: recipe, out: trialOut, logPath: Trainer.workDirectory(for: trialOut) + "/train.jsonl")
            trainer.validationOnly = true
            let t0 = Date()
            FileHandle.standardError.write(Data("tune: trial \(i) \(point.isEmpty ? "(the base config)" : point.map { "\($0.0)=\($0.1)" }.joined(separator: " ")), \(Int(left)) s left\n".utf8))
            // One process (no communicator): run() always returns the summary.
            guard let summary = try trainer.run() else { throw ValidationError("tune: trial \(i) returned no summary") }
            var chosenConfig = trainer.config
            chosenConfig.timeLimit = 0
            let trial = Trial(index: i, overrides: point.map { prefix + "\($0.0)=\($0.1)" }, validation: summary.validation.metrics,
                              seconds: Date().timeIntervalSince(t0), steps: summary.steps, cut: summary.timeLimited,
                              config: chosenConfig.jsonString())
            trials.append(trial)
            let line: [String: Any] = ["trial": i, "overrides": trial.overrides, "validation": trial.validation,
                                       "seconds": trial.seconds, "steps": trial.steps, "cut_by_budget": trial.cut,
                                       "checkpoint": trialOut, "config": try JSONSerialization.jsonObject(with: Data(trial.config.utf8))]
            trialsFile.write(try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]) + Data("\n".utf8))
        }
        guard let best = trials.max(by: { ($0.validation["NDCG@10"] ?? 0) < ($1.validation["NDCG@10"] ?? 0) }) else {
            throw ValidationError("--budget \(budget) minutes left no time for a single trial (--min-trial \(minTrial) s)")
        }
        try Data(best.config.utf8).write(to: URL(fileURLWithPath: folder + "/chosen.json"))
        print("## r2ec tune\n\n`" + (["r2ec"] + CommandLine.arguments.dropFirst()).joined(separator: " ") + "`\n")
        print("| trial | overrides | validation NDCG@10 | HR@10 | MRR | steps | seconds |")
        print("|---|---|---|---|---|---|---|")
        for t in trials {
            print("| \(t.index)\(t.index == best.index ? " (chosen)" : "") | \(t.overrides.isEmpty ? "base" : t.overrides.joined(separator: " ")) | "
                  + String(format: "%.4f | %.4f | %.4f | %d%@ | %.0f |", t.validation["NDCG@10"] ?? 0, t.validation["HR@10"] ?? 0,
                           t.validation["MRR"] ?? 0, t.steps, t.cut ? " (cut)" : "", t.seconds))
        }
        print("\nchosen: trial \(best.index), config \(folder)/chosen.json; trials \(trialsPath)")
    }
}
