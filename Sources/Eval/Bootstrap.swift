// Percentile bootstrap intervals over users: resample the per-sample values with replacement, seeded, and take
// the 2.5% and 97.5% quantiles of the resampled means.
import Data
import Foundation

public struct Interval: Sendable, Equatable, Codable {
    public var low: Double
    public var high: Double
    public init(low: Double, high: Double) { self.low = low; self.high = high }
}

public enum Bootstrap {
    /// 95% interval of the mean of each column of `values` (rows = samples), `resamples` times, same resampled
    /// rows for every column (so intervals of related metrics are consistent).
    public static func intervals(_ values: [[Double]], resamples: Int = 1000, seed: UInt64 = 0) -> [Interval] {
        guard let width = values.first?.count, resamples > 0 else { return [] }
        let n = values.count
        var rng = SplitMix64(seed: seed)
        var means = [[Double]](repeating: [Double](repeating: 0, count: resamples), count: width)
        var sum = [Double](repeating: 0, count: width)
        for b in 0..<resamples {
            for c in 0..<width { sum[c] = 0 }
            for _ in 0..<n {
                let row = values[Int(rng.next() % UInt64(n))]
                for c in 0..<width { sum[c] += row[c] }
            }
            for c in 0..<width { means[c][b] = sum[c] / Double(n) }
        }
        return means.map { column in
            let s = column.sorted()
            return Interval(low: quantile(s, 0.025), high: quantile(s, 0.975))
        }
    }

    /// Linear-interpolated quantile of sorted values.
    static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        let pos = q * Double(sorted.count - 1)
        let lo = Int(pos.rounded(.down)), hi = min(lo + 1, sorted.count - 1)
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - Double(lo))
    }
}

extension SplitMix64 {
    /// Standard normal (Box-Muller in single precision: the draws the baselines' seeds were fixed with).
    mutating func normal() -> Float {
        let u1 = max(nextUniform(), 1e-7), u2 = nextUniform()
        return (-2 * logf(u1)).squareRoot() * cosf(2 * .pi * u2)
    }
}
