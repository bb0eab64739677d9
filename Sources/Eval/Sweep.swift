// Hyper-parameter sweep for the factor baselines: train each grid point on the split's training interactions,
// select on validation NDCG@10, and report the chosen point's test result (never selected on test).
import Data
import Foundation

public struct SweepPoint: Sendable {
    public var options: [String: String]
    public var validationNDCG10: Double
    public var fitSeconds: Double
}

public struct SweepResult: Sendable {
    public var points: [SweepPoint]
    public var best: SweepPoint
    public var model: Recommender
}

public enum Sweep {
    /// The default grid of a kind (small enough to run in about a minute on ml-100k).
    public static func grid(_ kind: String) -> [[String: String]] {
        switch kind {
        case "wals":
            return product(["factors": ["32", "64"], "alpha": ["0", "0.5", "1", "3"], "reg": ["0.1", "1", "10"],
                            "iterations": ["8", "15"]])
        case "bpr":
            return product(["factors": ["32", "64"], "lr": ["0.02", "0.05", "0.1"], "reg": ["0.002", "0.01"]])
        default:
            return [[:]]
        }
    }

    static func product(_ axes: [String: [String]]) -> [[String: String]] {
        var out: [[String: String]] = [[:]]
        for key in axes.keys.sorted() {
            out = out.flatMap { o in axes[key]!.map { v in var p = o; p[key] = v; return p } }
        }
        return out
    }

    public static func run(kind: String, split: Split, catalog: Catalog, base: [String: String] = [:],
                           grid: [[String: String]]? = nil, options: EvalOptions = EvalOptions(),
                           log: ((SweepPoint) -> Void)? = nil) throws -> SweepResult {
        var quick = options
        quick.bootstrapResamples = 0
        var points: [SweepPoint] = []
        var best: (SweepPoint, Recommender)?
        for g in grid ?? self.grid(kind) {
            let o = base.merging(g) { _, new in new }
            let start = Date()
            let model = try Baselines.train(kind: kind, on: split.train, catalog: catalog, numUsers: split.numUsers, options: o)
            let fit = Date().timeIntervalSince(start)
            let r = try Evaluator.evaluate(model, on: split.validation, options: quick)
            let point = SweepPoint(options: o, validationNDCG10: r.metrics["NDCG@10"] ?? 0, fitSeconds: fit)
            points.append(point)
            log?(point)
            if best == nil || point.validationNDCG10 > best!.0.validationNDCG10 { best = (point, model) }
        }
        guard let best else { throw EvalError.invalidInput("empty sweep grid") }
        return SweepResult(points: points, best: best.0, model: best.1)
    }
}
