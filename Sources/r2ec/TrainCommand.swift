// `r2ec train --config FILE`: trains the dual-head network through the config's stages (lm, rec, recpo) into a
// checkpoint directory, with a progress line on stderr, a JSONL log of every step and evaluation, resumable state,
// and a markdown summary (validation and test metrics, ECE@10 of top-N calibration) on stdout.
import ArgumentParser
import Eval
import Foundation
import Train

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the dual-head network (stages lm, rec, recpo) from a config file into a checkpoint directory."
    )

    @Option(help: "Training recipe (JSON), e.g. configs/default.json or configs/full.json.")
    var config: String?

    @Option(help: "Checkpoint directory (the best parameters, tokenizer, item table, r2ec_train.json).")
    var out = "models/default"

    @Option(help: "JSONL log of every step and evaluation (default: OUT/train.jsonl).")
    var log: String?

    @Option(name: .customLong("set"), help: "Override a config field: path=value (e.g. stages.0.steps=300).")
    var overrides: [String] = []

    @Option(help: "Dataset directory (overrides the config's).")
    var dataset: String?

    @Option(help: "Stop after this many seconds (overrides the config's time_limit; the best checkpoint is kept).")
    var timeLimit: Double?

    @Flag(help: "Continue from OUT/state when it exists (same config), else start afresh.")
    var resume = false

    func run() throws {
        var extra = overrides
        if let dataset { extra.append("dataset=\"\(dataset)\"") }
        if let timeLimit { extra.append("time_limit=\(timeLimit)") }
        let recipe = try TrainConfig.load(path: config, overrides: extra)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let logPath = log ?? out + "/train.jsonl"
        if !resume { try? FileManager.default.removeItem(atPath: logPath) }
        let wall = Date()
        let trainer = try Trainer(config: recipe, out: out, logPath: logPath)
        let summary = try trainer.run(resume: resume)
        let command = (["r2ec"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        print("## r2ec train\n\n`\(command)`\n")
        print(String(format: "training %.1f s, wall %.1f s (load, tokenizer, final evaluation included); log %@\n",
                     summary.trainSeconds, Date().timeIntervalSince(wall), logPath))
        print("| split | " + summary.test.names.joined(separator: " | ") + " |")
        print("|---|" + String(repeating: "---|", count: summary.test.names.count))
        var rows = [("validation, direct path", summary.validation), ("test, direct path", summary.test)]
        if let v = summary.reasoningValidation, let t = summary.reasoningTest {
            rows += [("validation, reasoning (greedy)", v), ("test, reasoning (greedy)", t)]
        }
        if let v = summary.withoutReasoningValidation, let t = summary.withoutReasoningTest {
            rows += [("validation, w/o reasoning (before RecPO), direct path", v),
                     ("test, w/o reasoning (before RecPO), direct path", t)]
        }
        for (name, r) in rows {
            print("| \(name) | " + r.names.map { String(format: "%.4f", r.metrics[$0] ?? 0) }.joined(separator: " | ") + " |")
        }
        if let calibrated = summary.calibratedTest, let ece = calibrated.ece {
            let global = TopNCalibrator.fit(summary.validation.topN.map { (rank: 1, score: $0.score, hit: $0.hit) }, n: 1)
            var probabilities: [Double] = [], labels: [Bool] = []
            for e in summary.test.topN { probabilities.append(global.probability(score: e.score, rank: 1)); labels.append(e.hit) }
            let before = Calibration.ece(probabilities: probabilities, labels: labels)
            print(String(format: "\ntest ECE@10: one Platt scaling over the top-10 %.4f -> per-rank-group Platt (ranks %@) %.4f",
                         before, calibrated.ece.map { _ in "1 | 2-3 | 4-10" } ?? "", ece))
        }
    }
}
