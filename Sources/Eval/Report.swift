// An evaluation report: what was evaluated on which data and split, validation and test results, the sweep if
// any, and timings; rendered as a markdown table for people and as JSON (`metrics` keyed "NDCG@10", ...) for tools.
import Data
import Foundation

public struct EvalReport {
    public var command: String
    public var datasetName: String
    public var fingerprint: String
    public var users: Int
    public var items: Int
    public var interactions: Int
    public var split: Split
    public var modelKind: String
    public var modelConfigJSON: String
    public var validation: EvalResult?
    public var test: EvalResult
    public var sweep: [SweepPoint] = []
    /// Fits averaged (one per seed); fitSeconds is then their median.
    public var fits = 1
    /// Seconds spent reading the dataset and splitting it.
    public var loadSeconds = 0.0
    public var splitSeconds = 0.0
    public var fitSeconds: Double
    public var wallSeconds: Double

    public init(command: String, dataset: Dataset, split: Split, model: Recommender, validation: EvalResult?,
                test: EvalResult, sweep: [SweepPoint], fitSeconds: Double, wallSeconds: Double) {
        self.command = command
        self.datasetName = dataset.name
        self.fingerprint = dataset.fingerprint
        self.users = dataset.numUsers
        self.items = dataset.catalog.count
        self.interactions = dataset.interactions.count
        self.split = split
        self.modelKind = model.kind
        self.modelConfigJSON = model.configJSON
        self.validation = validation
        self.test = test
        self.sweep = sweep
        self.fitSeconds = fitSeconds
        self.wallSeconds = wallSeconds
    }

    /// Four decimals, without the leading zero below 1 (".0449"), as the docs' tables write them.
    static func f4(_ v: Double) -> String {
        let n = Int((v * 10000).rounded())
        let frac = String(n % 10000)
        let digits = String(repeating: "0", count: 4 - frac.count) + frac
        return n >= 10000 ? "\(n / 10000).\(digits)" : ".\(digits)"
    }

    static func seconds(_ v: Double) -> String {
        v < 10 ? String(Int((v * 1000).rounded())) + " ms" : String(Int(v.rounded())) + " s"
    }

    public func markdown() -> String {
        var out: [String] = []
        out.append("## \(modelKind) on \(datasetName), \(split.kind) split")
        out.append("")
        out.append("dataset \(datasetName) (fingerprint \(fingerprint)): \(users) users, \(items) items, " +
                   "\(interactions) interactions; split: \(split.train.count) training interactions, " +
                   "\(split.validation.count) validation and \(split.test.count) test samples")
        out.append("model: \(modelConfigJSON)" + (fits > 1 ? " (first of \(fits) fits with consecutive seeds; metrics are their mean)" : ""))
        out.append("")
        let names = test.names
        out.append("| | " + names.joined(separator: " | ") + " |")
        out.append("|---|" + names.map { _ in "---|" }.joined())
        if let v = validation {
            out.append("| validation | " + names.map { EvalReport.f4(v.metrics[$0] ?? 0) }.joined(separator: " | ") + " |")
        }
        out.append("| **test** | " + names.map { EvalReport.f4(test.metrics[$0] ?? 0) }.joined(separator: " | ") + " |")
        out.append("| test 95% CI | " + names.map { n in
            test.intervals[n].map { "\(EvalReport.f4($0.low))-\(EvalReport.f4($0.high))" } ?? "" }.joined(separator: " | ") + " |")
        out.append("")
        var facts = ["coverage@10 \(EvalReport.f4(test.coverage))",
                     "list errors (seen/duplicate/out-of-catalogue) \(test.listErrors.withSeen)/\(test.listErrors.withDuplicate)/" +
                        "\(test.listErrors.withOutOfCatalogue) of \(test.listErrors.lists)",
                     "seen items in unmasked top-10 \(EvalReport.f4(test.unmaskedListErrors.seenRate))",
                     "targets tied with another item \(test.tiedTargets) of \(test.samples * fits)"]
        if let e = test.ece {
            let n = test.calibrationN
            facts.append("ECE@\(n) over ranks 1-\(n), the ranks served with a probability (monotone rank-group Platt, " +
                         "fitted on validation) \(EvalReport.f4(e))")
        }
        if let e = test.modelECE { facts.append("ECE@\(test.calibrationN) of the model's own softmax probabilities \(EvalReport.f4(e))") }
        out.append(facts.joined(separator: "; "))
        out.append("load \(EvalReport.seconds(loadSeconds)), split \(EvalReport.seconds(splitSeconds)), " +
                   "fit \(EvalReport.seconds(fitSeconds))\(fits > 1 ? " (median)" : ""), test evaluation \(EvalReport.seconds(test.seconds)), " +
                   "wall \(EvalReport.seconds(wallSeconds))")
        if !sweep.isEmpty {
            out.append("")
            out.append("sweep (\(sweep.count) points, selected on validation NDCG@10): best " +
                       sweep.max { $0.validationNDCG10 < $1.validationNDCG10 }.map { p in
                           p.options.keys.sorted().map { "\($0)=\(p.options[$0]!)" }.joined(separator: ",") +
                           " at \(EvalReport.f4(p.validationNDCG10))" }!)
        }
        out.append("")
        out.append("command: `\(command)`")
        return out.joined(separator: "\n")
    }

    public func jsonObject() -> [String: Any] {
        func metrics(_ r: EvalResult) -> [String: Double] { r.metrics }
        var o: [String: Any] = [
            "command": command,
            "dataset": ["name": datasetName, "fingerprint": fingerprint, "users": users, "items": items,
                        "interactions": interactions],
            "split": ["kind": split.kind, "train_interactions": split.train.count,
                      "validation_samples": split.validation.count, "test_samples": split.test.count],
            "model": ["kind": modelKind,
                      "config": (try? JSONSerialization.jsonObject(with: Data(modelConfigJSON.utf8))) ?? modelConfigJSON],
            "metrics": metrics(test),
            "intervals": test.intervals.mapValues { [$0.low, $0.high] },
            "coverage@10": test.coverage,
            "tied_targets": test.tiedTargets,
            "list_errors": ["lists": test.listErrors.lists, "seen": test.listErrors.withSeen,
                            "duplicate": test.listErrors.withDuplicate,
                            "out_of_catalogue": test.listErrors.withOutOfCatalogue,
                            "unmasked_seen_rate": test.unmaskedListErrors.seenRate],
            "fit_seconds": fitSeconds,
            "fits": fits,
            "load_seconds": loadSeconds,
            "split_seconds": splitSeconds,
            "eval_seconds": test.seconds,
            "wall_seconds": wallSeconds,
        ]
        if let v = validation { o["validation_metrics"] = metrics(v) }
        if let e = test.ece { o["ece@\(test.calibrationN)"] = e }
        if let e = test.modelECE { o["model_ece@\(test.calibrationN)"] = e }
        if !sweep.isEmpty {
            o["sweep"] = sweep.map { ["options": $0.options, "validation_ndcg@10": $0.validationNDCG10, "fit_seconds": $0.fitSeconds] }
        }
        return o
    }

    public func json() throws -> String {
        let data = try JSONSerialization.data(withJSONObject: jsonObject(), options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
