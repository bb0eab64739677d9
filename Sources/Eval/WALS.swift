// Weighted ALS for implicit feedback: every interaction is a positive with confidence 1 + alpha * count, every
// other cell a zero with confidence 1; users and items alternate exact weighted least-squares solves.
import Data
import Foundation

/// Defaults: the point `r2ec eval --baseline wals --sweep` selected on ml-100k's validation split (docs/evaluation.md);
/// there no extra weight on positives (alpha 0, one shared Cholesky per sweep) did as well as any alpha > 0.
public struct WALSConfig: Sendable, Equatable, Codable {
    public var factors = 64
    public var alpha: Float = 0
    public var reg: Float = 10
    public var iterations = 15
    public var seed: UInt64 = 0
    /// Threads for the independent row solves.
    public var threads = 2
    public init() {}
}

public enum WALS {
    /// Trains and returns the servable model plus the seconds training took.
    public static func train(_ training: [Interaction], catalog: Catalog, numUsers: Int,
                             config c: WALSConfig) throws -> FactorModel {
        let start = Date()
        let k = c.factors
        let ui = SparseRows.userItems(training, numUsers: numUsers, numItems: catalog.count)
        let iu = ui.transposed()
        var rng = SplitMix64(seed: c.seed)
        var y = (0..<(catalog.count * k)).map { _ in 0.01 * rng.normal() }
        var x = [Float](repeating: 0, count: numUsers * k)
        for _ in 0..<c.iterations {
            try ImplicitSolver(factors: y, k: k, alpha: c.alpha, reg: c.reg).solveAll(ui, into: &x, threads: c.threads)
            try ImplicitSolver(factors: x, k: k, alpha: c.alpha, reg: c.reg).solveAll(iu, into: &y, threads: c.threads)
        }
        let seconds = Date().timeIntervalSince(start)
        let json = "{\"kind\":\"wals\",\"factors\":\(k),\"alpha\":\(c.alpha),\"reg\":\(c.reg),\"iterations\":\(c.iterations)," +
            "\"seed\":\(c.seed),\"training_interactions\":\(training.count),\"fit_seconds\":\(seconds)}"
        return FactorModel(kind: "wals", catalog: catalog, configJSON: json, factors: k, itemFactors: y, itemBias: nil,
                           userFactors: x, foldInAlpha: c.alpha, foldInReg: c.reg)
    }
}
