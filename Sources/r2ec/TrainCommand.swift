// `r2ec train --config FILE`: trains the dual-head network through the config's stages (lm, rationale, rec, recpo) into a
// checkpoint directory, with a progress line on stderr, a JSONL log of every step and evaluation, resumable state,
// and a markdown summary (validation and test metrics, ECE@10 of top-N calibration) on stdout. `--store URL` trains on
// what a live store holds (exported to atomic files first). Under mpirun (`mpirun -np N r2ec train ...`) it trains
// data-parallel over the N ranks; rank 0 writes the log and checkpoint.
import ArgumentParser
import Collectives
import Data
import Eval
import Foundation
import Model
import Store
import Train

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the dual-head network (stages lm, rationale, rec, recpo) from a config file into a checkpoint directory.",
        discussion: """
        Data-parallel: `mpirun -np N r2ec train --config FILE ...` (every rank given the same arguments) splits each \
        batch over the N ranks, sums the gradients over them every step (Open MPI allreduce) and keeps the \
        single-process run's seeded batch order, so the losses are the single process's up to float rounding. Rank \
        0 evaluates and writes the log and the checkpoint. Set R2EC_THREADS per rank (mpirun -x R2EC_THREADS=1). \
        every stage kind; --store only as one process. --resume under mpirun continues from rank 0's \
        OUT.partial (rank 0 sends its state to the other ranks, so they need not see its disk), with any number \
        of ranks or as one process: the state does not depend on how many ranks wrote it.
        """
    )

    @Option(help: "Training recipe (JSON), e.g. configs/default.json or configs/full.json.")
    var config: String?

    @Option(help: "Checkpoint directory (the best parameters, tokenizer, item table, r2ec_train.json). The run writes into OUT.partial and renames it to OUT when it has finished.")
    var out = "models/default"

    @Option(help: "JSONL log of every step and evaluation (default: OUT/train.jsonl).")
    var log: String?

    @Option(name: .customLong("set"), help: "Override a config field: path=value (e.g. stages.0.steps=300).")
    var overrides: [String] = []

    @Option(help: "Dataset directory (overrides the config's).")
    var dataset: String?

    @Option(help: ArgumentHelp(
        "Train from a store's catalogue and events instead of a dataset directory: sqlite:PATH or postgres://...",
        discussion: "The store is read (one consistent snapshot, no writer lock: a server may keep serving from it) "
            + "into RecBole atomic files in OUT.store/NAME (NAME: the store's name), trained on as --dataset would be, "
            + "and removed when the run ends. Serve the result with Admin/LoadModel or SIGHUP (hot swap)."))
    var store: String?

    @Option(help: "Stop after this many seconds (overrides the config's time_limit; the best checkpoint is kept).")
    var timeLimit: Double?

    @Option(help: "Most memory the model's parameters, gradients and optimiser state may take (bytes, or with K/M/G: 8G); checked before anything is allocated. Default: 80% of the memory available.")
    var memoryBudget: String?

    @Flag(help: "Continue from the state in OUT.partial when there is one (same config), else start afresh. Under mpirun rank 0's OUT.partial decides.")
    var resume = false

    func run() throws {
        var extra = overrides
        if store != nil && dataset != nil { throw ValidationError("--store and --dataset: give one of them") }
        let world = try Collectives.world()
        if store != nil && world.size > 1 {
            throw ValidationError("--store: not under mpirun (\(world.size) ranks would each export the store); export it once (r2ec store export --store URL --out DIR) and give every rank --dataset DIR")
        }
        let exported = try store.map { try Self.export(store: $0, out: out) }
        defer { if let exported { try? FileManager.default.removeItem(atPath: exported.root) } }
        if let chosen = exported?.dataset ?? dataset {
            extra.append("dataset=\(String(decoding: try JSONEncoder().encode(chosen), as: UTF8.self))")
        }
        if let timeLimit { extra.append("time_limit=\(timeLimit)") }
        // The whole config is read and checked before anything is written.
        let recipe = try TrainConfig.load(path: config, overrides: extra)
        var budget = MemoryBudget.available()
        if let memoryBudget {
            guard let b = MemoryBudget.parse(memoryBudget, source: "--memory-budget") else {
                throw ValidationError("--memory-budget: expected bytes or a size like 512M or 8G, got '\(memoryBudget)'")
            }
            budget = b
        }
        let logPath = log ?? Trainer.workDirectory(for: out) + "/train.jsonl"
        if !resume, log != nil, world.isRoot { try? FileManager.default.removeItem(atPath: logPath) }
        let wall = Date()
        let trainer = try Trainer(config: recipe, out: out, logPath: logPath, budget: budget, resume: resume,
                                  communicator: world)
        // Only rank 0 has a summary; the other ranks have trained with it and are done.
        guard let summary = try trainer.run() else { return }
        let shownLog = log ?? out + "/train.jsonl"
        let command = (["r2ec"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
        print("## r2ec train\n\n`\(command)`\n")
        print(String(format: "training %.1f s, wall %.1f s (load, tokenizer, final evaluation included); log %@\n",
                     summary.trainSeconds, Date().timeIntervalSince(wall), shownLog))
        print("| split | " + summary.validation.names.joined(separator: " | ") + " |")
        print("|---|" + String(repeating: "---|", count: summary.validation.names.count))
        var rows = [("validation, direct path", summary.validation)]
        if let test = summary.test { rows.append(("test, direct path", test)) }
        if let v = summary.reasoningValidation, let t = summary.reasoningTest {
            rows += [("validation, reasoning (greedy)", v), ("test, reasoning (greedy)", t)]
        }
        if let v = summary.withoutReasoningValidation, let t = summary.withoutReasoningTest {
            rows += [("validation, w/o reasoning (before the reasoning stages), direct path", v),
                     ("test, w/o reasoning (before the reasoning stages), direct path", t)]
        }
        for (name, r) in rows {
            print("| \(name) | " + r.names.map { String(format: "%.4f", r.metrics[$0] ?? 0) }.joined(separator: " | ") + " |")
        }
        if let calibrated = summary.calibratedTest, let ece = calibrated.ece {
            // The same model with one Platt scaling over the whole top-N (every rank one group), for comparison.
            let n = calibrated.calibrationN
            let global = TopNCalibrator.fit(summary.validation.topN.map { (rank: 1, score: $0.score, hit: $0.hit) }, n: 1)
            var probabilities: [Double] = [], labels: [Bool] = []
            for e in calibrated.topN {
                if let p = global.probability(score: e.score, rank: 1) as Double? { probabilities.append(p); labels.append(e.hit) }
            }
            let before = Calibration.ece(probabilities: probabilities, labels: labels)
            print(String(format: "\ntest ECE@%d: one Platt scaling over the top-%d %.4f -> monotone rank-group Platt (ranks %@) %.4f",
                         n, n, before, Self.groups(TopNCalibrator.defaultGroups(n: n)), ece))
        }
    }

    /// Writes the store's catalogue and events as atomic files into OUT.store/NAME; returns that folder and OUT.store.
    static func export(store url: String, out: String) throws -> (dataset: String, root: String) {
        let source: EventStore
        do { source = try Stores.open(url, writer: false) } catch let e as StoreError { throw ValidationError("--store: \(e)") }
        defer { source.close() }
        do {
            let info = try source.info()
            guard info.items > 0, info.events > 0 else {
                throw ValidationError("--store \(source.location): \(info.items) items, \(info.events) events: nothing to train on")
            }
            let root = (out.hasSuffix("/") ? String(out.dropLast()) : out) + ".store"
            try? FileManager.default.removeItem(atPath: root)
            let name = info.name.isEmpty || info.name.contains("/") || info.name.hasPrefix(".") ? "store" : info.name
            let directory = root + "/" + name
            let bar = ProgressBar(label: "export")
            let (items, events) = try StoreExporter.export(source, to: directory) { n in
                bar.show(done: Double(n), total: Double(info.events), detail: "\(n) events")
            }
            bar.finish()
            Console.status("training on \(source.location): \(items) items, \(events) events (exported to \(directory))")
            return (directory, root)
        } catch let e as StoreError {
            throw ValidationError("--store \(source.location): \(e)")
        }
    }

    /// "1 | 2-3 | 4-10".
    static func groups(_ ends: [Int]) -> String {
        zip([0] + ends, ends).map { $0 + 1 == $1 ? "\($1)" : "\($0 + 1)-\($1)" }.joined(separator: " | ")
    }
}
