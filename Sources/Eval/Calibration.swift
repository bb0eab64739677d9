// Top-N calibration (after Sato, RecSys 2024). ECE@N: over every user's top-N items, the gap between predicted
// probability and the hit rate, averaged over equal-width probability bins weighted by their size. The calibrator:
// one Platt scaling (sigmoid(a * z + b) of the standardised score) per rank group of the top-N, fitted on validation.
import Foundation

public enum Calibration {
    /// ECE over (probability, label) pairs with `bins` equal-width bins on [0, 1].
    public static func ece(probabilities: [Double], labels: [Bool], bins: Int = 10) -> Double {
        precondition(probabilities.count == labels.count)
        guard !probabilities.isEmpty else { return 0 }
        var conf = [Double](repeating: 0, count: bins), hits = [Double](repeating: 0, count: bins)
        var count = [Int](repeating: 0, count: bins)
        for (p, y) in zip(probabilities, labels) {
            let b = min(bins - 1, max(0, Int(p * Double(bins))))
            conf[b] += p; hits[b] += y ? 1 : 0; count[b] += 1
        }
        var e = 0.0
        for b in 0..<bins where count[b] > 0 {
            e += abs(hits[b] - conf[b]) / Double(probabilities.count)
        }
        return e
    }
}

/// Per-rank-group Platt scaling of top-N scores into the probability that the item is the held-out target.
public struct TopNCalibrator: Sendable, Codable, Equatable {
    /// Upper rank (1-based, inclusive) of each group, ascending; the last is N.
    public var groupEnds: [Int]
    /// Per group: score mean and standard deviation (for z-scores), slope and intercept.
    public var mean: [Double], std: [Double], slope: [Double], intercept: [Double]

    /// Default groups for N = 10: rank 1, ranks 2-3, ranks 4-10.
    public static func defaultGroups(n: Int) -> [Int] {
        var ends: [Int] = []
        var e = 1
        while e < n { ends.append(e); e = e * 3 }
        ends.append(n)
        return ends
    }

    public func group(ofRank rank: Int) -> Int {
        groupEnds.firstIndex { rank <= $0 } ?? groupEnds.count - 1
    }

    public func probability(score: Float, rank: Int) -> Double {
        let g = group(ofRank: rank)
        let z = (Double(score) - mean[g]) / std[g]
        return 1 / (1 + exp(-(slope[g] * z + intercept[g])))
    }

    /// Fits every group by Newton's method on the log loss (with a tiny ridge for separable data).
    /// `entries`: (rank 1...N, score, is the target) of validation top-N lists.
    public static func fit(_ entries: [(rank: Int, score: Float, hit: Bool)], n: Int) -> TopNCalibrator {
        let ends = defaultGroups(n: n)
        var c = TopNCalibrator(groupEnds: ends, mean: [], std: [], slope: [], intercept: [])
        for g in ends.indices {
            let lo = g == 0 ? 1 : ends[g - 1] + 1
            let rows = entries.filter { $0.rank >= lo && $0.rank <= ends[g] }
            let xs = rows.map { Double($0.score) }
            let m = xs.isEmpty ? 0 : xs.reduce(0, +) / Double(xs.count)
            let v = xs.isEmpty ? 0 : xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count)
            let s = v > 1e-12 ? v.squareRoot() : 1
            let zs = xs.map { ($0 - m) / s }
            let ys = rows.map { $0.hit ? 1.0 : 0.0 }
            let (a, b) = platt(zs, ys)
            c.mean.append(m); c.std.append(s); c.slope.append(a); c.intercept.append(b)
        }
        return c
    }

    /// Logistic regression of y on z with intercept: 50 Newton steps, ridge 1e-3 on both parameters.
    static func platt(_ z: [Double], _ y: [Double]) -> (Double, Double) {
        guard !z.isEmpty else { return (0, -10) }
        let prior = min(max(y.reduce(0, +) / Double(y.count), 1e-6), 1 - 1e-6)
        var a = 0.0, b = log(prior / (1 - prior))
        let ridge = 1e-3
        for _ in 0..<50 {
            var ga = ridge * a, gb = ridge * b, haa = ridge, hab = 0.0, hbb = ridge
            for (zi, yi) in zip(z, y) {
                let p = 1 / (1 + exp(-(a * zi + b)))
                let w = p * (1 - p)
                ga += (p - yi) * zi; gb += p - yi
                haa += w * zi * zi; hab += w * zi; hbb += w
            }
            let det = haa * hbb - hab * hab
            guard det > 1e-18 else { break }
            let da = (hbb * ga - hab * gb) / det, db = (haa * gb - hab * ga) / det
            a -= da; b -= db
            if abs(da) + abs(db) < 1e-10 { break }
        }
        return (a, b)
    }
}
