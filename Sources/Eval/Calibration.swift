// Top-N calibration (after Sato, RecSys 2024). ECE@N: over every user's top-N items, the gap between predicted
// probability and the hit rate, averaged over equal-width probability bins weighted by their size. The calibrator:
// Platt scaling per rank group of the top-N with one slope shared by every group and intercepts that never rise
// with rank, fitted on validation, so probabilities are monotone in the score within any ranked list.
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

    /// The calibration rank of every item of a best-first list: 1 + the number of items scoring strictly higher,
    /// so tied scores share a rank (1, 2, 2, 4) and so a probability. Serving and evaluation use the same rule.
    public static func sharedRanks(_ scores: [Float]) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(scores.count)
        for (i, s) in scores.enumerated() { out.append(i > 0 && s == scores[i - 1] ? out[i - 1] : i + 1) }
        return out
    }
}

/// The probability that an item of a user's top-N is the one they interact with next, from its score and its rank
/// in the list (1-based; tied scores share a rank, see `Calibration.sharedRanks`):
///
///     p = sigmoid(slope * (score - mean) / std + intercept[group(rank)])
///
/// with one `slope >= 0` for all rank groups and intercepts that never rise with rank. Within one ranked list a
/// higher score never has a worse rank, so it never gets a lower probability: probabilities are monotone in the
/// score by construction (Sato's per-group calibrators with free slopes are not: fitted on ml-100k they gave rank
/// 1,679 a higher probability than rank 1). Ranks beyond `ranks`, the N it was fitted on, have no probability.
public struct TopNCalibrator: Sendable, Codable, Equatable {
    /// Ranks 1...ranks have a probability.
    public var ranks: Int
    /// Upper rank (inclusive) of each group, ascending; the last is `ranks`.
    public var groupEnds: [Int]
    /// Standardisation of the scores (shared by all groups, so one slope means one thing).
    public var mean: Double
    public var std: Double
    public var slope: Double
    /// Per group, non-increasing.
    public var intercepts: [Double]

    enum CodingKeys: String, CodingKey {
        case ranks, mean, std, slope, intercepts
        case groupEnds = "group_ends"
    }

    public init(ranks: Int, groupEnds: [Int], mean: Double, std: Double, slope: Double, intercepts: [Double]) {
        precondition(groupEnds.count == intercepts.count && groupEnds.last == ranks && slope >= 0 && std > 0)
        self.ranks = ranks; self.groupEnds = groupEnds; self.mean = mean; self.std = std; self.slope = slope
        self.intercepts = intercepts
    }

    /// Decoding checks what `probability` relies on: a file with a rising intercept or a negative slope would
    /// give probabilities that fall as scores rise.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ranks = try c.decode(Int.self, forKey: .ranks)
        groupEnds = try c.decode([Int].self, forKey: .groupEnds)
        mean = try c.decode(Double.self, forKey: .mean)
        std = try c.decode(Double.self, forKey: .std)
        slope = try c.decode(Double.self, forKey: .slope)
        intercepts = try c.decode([Double].self, forKey: .intercepts)
        let ordered = zip(groupEnds, groupEnds.dropFirst()).allSatisfy { $0 < $1 } && (groupEnds.first ?? 0) >= 1
        let falling = zip(intercepts, intercepts.dropFirst()).allSatisfy { $0 >= $1 }
        guard ranks >= 1, !groupEnds.isEmpty, groupEnds.count == intercepts.count, groupEnds.last == ranks, ordered,
              falling, slope >= 0, slope.isFinite, std > 0, std.isFinite, mean.isFinite,
              intercepts.allSatisfy(\.isFinite) else {
            throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath, debugDescription:
                "calibrator: needs ranks >= 1, ascending group_ends ending at ranks, one finite intercept per group, " +
                "non-increasing, slope >= 0 and std > 0"))
        }
    }

    /// Groups for N: ranks 1 | 2-3 | 4-10 | 11-30 | 31-100 | ... (half decades), the last ending at N.
    public static func defaultGroups(n: Int) -> [Int] {
        precondition(n >= 1)
        var ends: [Int] = []
        var e = 1, three = true
        while e < n { ends.append(e); e = three ? e * 3 : e / 3 * 10; three.toggle() }
        ends.append(n)
        return ends
    }

    public func group(ofRank rank: Int) -> Int {
        groupEnds.firstIndex { rank <= $0 } ?? groupEnds.count - 1
    }

    /// The probability of an item at `rank` with `score`; nil beyond the fitted ranks (and for a NaN score).
    public func probability(score: Float, rank: Int) -> Double? {
        guard rank >= 1 && rank <= ranks && !score.isNaN else { return nil }
        let z = (Double(score) - mean) / std
        return 1 / (1 + exp(-(slope * z + intercepts[group(ofRank: rank)])))
    }

    /// Fits on validation top-N lists: `entries` are (rank 1...n, score, is the target) with ranks from
    /// `Calibration.sharedRanks`. Maximum likelihood (Newton's method, a small ridge for separable data) under the
    /// monotonicity constraints: adjacent groups whose intercepts come out rising are pooled into one and the fit is
    /// redone (as pool-adjacent-violators does), and a negative slope is fixed at 0. Groups without data are pooled
    /// with their neighbour.
    public static func fit(_ entries: [(rank: Int, score: Float, hit: Bool)], n: Int) -> TopNCalibrator {
        let ends = defaultGroups(n: n)
        let rows = entries.filter { $0.rank >= 1 && $0.rank <= n && !$0.score.isNaN }
        let xs = rows.map { Double($0.score) }
        let m = xs.isEmpty ? 0 : xs.reduce(0, +) / Double(xs.count)
        let v = xs.isEmpty ? 0 : xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count)
        let s = v > 1e-24 ? v.squareRoot() : 1
        let z = xs.map { ($0 - m) / s }
        let y = rows.map { $0.hit ? 1.0 : 0.0 }
        let groupOfRow = rows.map { r in ends.firstIndex { r.rank <= $0 }! }
        // blockOf[g]: the pooled block group g belongs to. Start with the non-empty groups, empty ones pooled.
        var counts = [Int](repeating: 0, count: ends.count)
        for g in groupOfRow { counts[g] += 1 }
        var blockOf = [Int](repeating: 0, count: ends.count)
        var block = 0, seenData = false
        for g in ends.indices {
            if counts[g] > 0 { if seenData { block += 1 }; seenData = true }
            blockOf[g] = block
        }
        var slope = 0.0, intercepts: [Double] = []
        var fixSlope = false
        while true {
            let blocks = (blockOf.max() ?? 0) + 1
            let rowBlock = groupOfRow.map { blockOf[$0] }
            (slope, intercepts) = platt(z, y, blocks: rowBlock, blockCount: blocks, fixSlopeAtZero: fixSlope)
            if slope < 0 && !fixSlope { fixSlope = true; continue }
            // The first rising pair of adjacent blocks is pooled, then everything is refitted.
            guard let b = (0..<(blocks - 1)).first(where: { intercepts[$0] < intercepts[$0 + 1] }) else { break }
            for g in blockOf.indices where blockOf[g] > b { blockOf[g] -= 1 }
        }
        return TopNCalibrator(ranks: n, groupEnds: ends, mean: m, std: s, slope: max(0, slope),
                              intercepts: blockOf.map { intercepts[$0] })
    }

    /// Logistic regression of y on (z, one-hot block) with a shared slope: Newton steps on the ridge-penalised log
    /// loss (ridge 1e-3), intercepts started at each block's log-odds. Returns the slope and one intercept per block.
    static func platt(_ z: [Double], _ y: [Double], blocks: [Int], blockCount k: Int,
                      fixSlopeAtZero: Bool) -> (Double, [Double]) {
        let ridge = 1e-3
        var hits = [Double](repeating: 0, count: k), totals = [Double](repeating: 0, count: k)
        for (b, yi) in zip(blocks, y) { hits[b] += yi; totals[b] += 1 }
        var b = (0..<k).map { j -> Double in
            let rate = totals[j] > 0 ? min(max(hits[j] / totals[j], 1e-6), 1 - 1e-6) : 1e-6
            return log(rate / (1 - rate))
        }
        var a = 0.0
        if z.isEmpty { return (0, b) }
        // Parameters: [a, b_0, ..., b_{k-1}]; without the slope, index 0 is held at 0.
        let p = k + 1
        for _ in 0..<100 {
            var g = [Double](repeating: 0, count: p)
            var h = [Double](repeating: 0, count: p * p)
            g[0] = ridge * a; h[0] = ridge
            for j in 0..<k { g[j + 1] = ridge * b[j]; h[(j + 1) * p + j + 1] = ridge }
            for i in z.indices {
                let j = blocks[i] + 1
                let q = 1 / (1 + exp(-(a * z[i] + b[j - 1])))
                let w = q * (1 - q), r = q - y[i]
                g[0] += r * z[i]; g[j] += r
                h[0] += w * z[i] * z[i]; h[j * p + j] += w; h[j] += w * z[i]; h[j * p] += w * z[i]
            }
            if fixSlopeAtZero { g[0] = 0; for j in 0..<p { h[j] = 0; h[j * p] = 0 }; h[0] = 1 }
            guard let step = solve(h, g, p) else { break }
            a -= step[0]
            for j in 0..<k { b[j] -= step[j + 1] }
            if step.reduce(0, { $0 + abs($1) }) < 1e-10 { break }
        }
        return (fixSlopeAtZero ? 0 : a, b)
    }

    /// x with H x = g (H symmetric positive definite, p x p), by Gaussian elimination with partial pivoting.
    static func solve(_ h: [Double], _ g: [Double], _ p: Int) -> [Double]? {
        var m = h, x = g
        for c in 0..<p {
            let pivot = (c..<p).max { abs(m[$0 * p + c]) < abs(m[$1 * p + c]) }!
            guard abs(m[pivot * p + c]) > 1e-300 else { return nil }
            if pivot != c {
                for j in 0..<p { m.swapAt(c * p + j, pivot * p + j) }
                x.swapAt(c, pivot)
            }
            for r in (c + 1)..<p {
                let f = m[r * p + c] / m[c * p + c]
                if f == 0 { continue }
                for j in c..<p { m[r * p + j] -= f * m[c * p + j] }
                x[r] -= f * x[c]
            }
        }
        for c in stride(from: p - 1, through: 0, by: -1) {
            var v = x[c]
            for j in (c + 1)..<p { v -= m[c * p + j] * x[j] }
            x[c] = v / m[c * p + c]
        }
        return x
    }
}
