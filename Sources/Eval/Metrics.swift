// Ranking metrics of one held-out target from its 1-based rank: HR@K = [rank <= K], NDCG@K = 1/log2(rank + 1) when
// rank <= K, MRR = 1/rank (not truncated). Ranks come from `Ranks.rank` (full catalogue, masked items skipped, ties
// to the smaller index), the rule of docs/evaluation.md.
import Foundation

public enum Metrics {
    public static let defaultKs = [5, 10, 20]

    /// Metric names in report order: HR@K for each K, NDCG@K for each K, then MRR.
    public static func names(ks: [Int] = defaultKs) -> [String] {
        ks.map { "HR@\($0)" } + ks.map { "NDCG@\($0)" } + ["MRR"]
    }

    /// The value of every metric of `names(ks:)` for one rank, in the same order.
    public static func values(rank: Int, ks: [Int] = defaultKs) -> [Double] {
        precondition(rank >= 1, "ranks are 1-based")
        let r = Double(rank)
        return ks.map { rank <= $0 ? 1 : 0 } + ks.map { rank <= $0 ? 1 / log2(r + 1) : 0 } + [1 / r]
    }
}

public enum Ranks {
    /// Whether an unmasked item other than the target has exactly the target's score (the tie rule then decides).
    public static func isTied(_ target: Int, in scores: UnsafeBufferPointer<Float>, isMasked: UnsafeBufferPointer<Bool>) -> Bool {
        let t = scores[target]
        for i in 0..<scores.count where i != target && !isMasked[i] && scores[i] == t { return true }
        return false
    }

    /// The 1-based rank of `target` among items with `isMasked[i] == false` (the target always counts):
    /// 1 + #(higher scores) + #(equal scores at a smaller index). A NaN target score ranks last among unmasked
    /// items; NaN scores of other items never rank above the target. Same rule as `Ranking.rank`, without a Set.
    public static func rank(of target: Int, in scores: UnsafeBufferPointer<Float>, isMasked: UnsafeBufferPointer<Bool>) -> Int {
        let t = scores[target]
        var higher = 0, unmasked = 0
        if t.isNaN {
            for i in 0..<scores.count where !isMasked[i] || i == target { unmasked += 1 }
            return unmasked
        }
        for i in 0..<target where !isMasked[i] && scores[i] >= t { higher += 1 }
        for i in (target + 1)..<scores.count where !isMasked[i] && scores[i] > t { higher += 1 }
        return higher + 1
    }
}
