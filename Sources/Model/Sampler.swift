// Choosing the next token from a row of logits: greedy (arg-max, ties to the smaller id) or seeded random
// sampling with temperature, top-k and top-p (nucleus) filters, in that order.
import Data
import Foundation

public struct SamplingSettings: Sendable, Equatable {
    /// 0 means greedy.
    public var temperature: Float
    /// Keep only the k most likely tokens; 0 keeps all.
    public var topK: Int
    /// Keep the smallest set of most likely tokens whose probability reaches p; 1 keeps all.
    public var topP: Float
    public var seed: UInt64

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature; self.topK = topK; self.topP = topP; self.seed = seed
    }

    public static let greedy = SamplingSettings()
}

public protocol TokenSampler {
    mutating func sample(_ logits: UnsafePointer<Float>, count: Int) -> Int
}

public struct GreedySampler: TokenSampler {
    public init() {}
    public mutating func sample(_ logits: UnsafePointer<Float>, count: Int) -> Int {
        var best = 0
        for i in 1..<count where logits[i] > logits[best] { best = i }
        return best
    }
}

public struct RandomSampler: TokenSampler {
    public let settings: SamplingSettings
    private var rng: SplitMix64

    public init(settings: SamplingSettings) {
        precondition(settings.temperature > 0, "RandomSampler needs a positive temperature; use GreedySampler")
        self.settings = settings
        self.rng = SplitMix64(seed: settings.seed)
    }

    public mutating func sample(_ logits: UnsafePointer<Float>, count: Int) -> Int {
        // Candidates by descending logit (ties: smaller id first). Top-k selects with a bounded heap (O(n log k)):
        // sorting the whole vocabulary for every token of every chain cost as much as the decode step itself.
        let candidates: [Int]
        if settings.topK > 0 && settings.topK < count {
            candidates = Ranking.topK(UnsafeBufferPointer(start: logits, count: count), k: settings.topK).map(\.index)
        } else if settings.topP < 1 {
            candidates = (0..<count).sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        } else {
            candidates = Array(0..<count)   // the whole softmax: order does not change the distribution
        }
        var maxLogit = -Float.infinity
        for i in candidates { maxLogit = max(maxLogit, logits[i]) }
        var probabilities = candidates.map { Double(Foundation.exp((logits[$0] - maxLogit) / settings.temperature)) }
        var total = probabilities.reduce(0, +)
        if settings.topP < 1 {
            var kept = 0, mass = 0.0
            while kept < probabilities.count {
                mass += probabilities[kept] / total
                kept += 1
                if mass >= Double(settings.topP) { break }
            }
            probabilities.removeSubrange(kept...)
            total = probabilities.reduce(0, +)
        }
        var u = Double(rng.nextUniform()) * total
        for (i, p) in probabilities.enumerated() {
            u -= p
            if u < 0 { return candidates[i] }
        }
        return candidates[probabilities.count - 1]
    }
}

/// The sampler `settings` describe.
public func makeSampler(_ settings: SamplingSettings) -> any TokenSampler {
    settings.temperature <= 0 ? GreedySampler() : RandomSampler(settings: settings)
}
