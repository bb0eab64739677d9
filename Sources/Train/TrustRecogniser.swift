// ATJT-style denoising trust weights (RELATED.md), small: a logistic recogniser over features of how well a
// sequence's history agrees with its target and with itself in item-vector space (attention of history vs target,
// max and mean cosine, the least coherent history item). It learns from weak labels - each step half of the batch's
// sequences get one history item replaced by a random item (label 0), the others are clean (label 1) - and its
// output on the real sequences is their weight in the rec loss (normalised by the sum of weights).
import Data
import Foundation
import Model
import Tensor

public final class TrustRecogniser: @unchecked Sendable {
    static let featureCount = 4
    public private(set) var theta = [Float](repeating: 0, count: TrustRecogniser.featureCount)
    public private(set) var bias: Float = 0
    let learningRate: Float
    let catalogSize: Int
    /// Running binary cross-entropy of the recogniser on its noised/clean copies.
    public private(set) var lastLoss: Double = .nan
    /// Mean trust weight given to the last batch's real sequences.
    public private(set) var lastMeanWeight: Double = .nan

    public init(catalogSize: Int, learningRate: Float = 0.5) {
        self.catalogSize = catalogSize
        self.learningRate = learningRate
    }

    /// Features of history items (the last 20 shown) against the target, from unit item vectors.
    func features(history: [Int], target: Int, table: FloatBuffer) -> [Float] {
        let d = table.rowLength
        let h = Array(history.suffix(20))
        guard !h.isEmpty else { return [0, 0, 0, 0] }
        let t = table.data + target * d
        let sims = h.map { VectorMath.dot(table.data + $0 * d, t, d) }
        let m = sims.max()!
        let e = sims.map { Foundation.exp(($0 - m) / 0.1) }
        let attention = zip(e, sims).reduce(0) { $0 + $1.0 * $1.1 } / e.reduce(0, +)
        // Coherence: each history item's cosine with the mean of the others; the least coherent one.
        var mean = [Float](repeating: 0, count: d)
        for i in h { for j in 0..<d { mean[j] += table.data[i * d + j] } }
        var least: Float = 1
        if h.count > 1 {
            for i in h {
                var dot: Float = 0, norm: Float = 0
                for j in 0..<d {
                    let other = mean[j] - table.data[i * d + j]
                    dot += other * table.data[i * d + j]; norm += other * other
                }
                least = min(least, dot / max(norm.squareRoot(), 1e-6))
            }
        }
        return [attention, m, sims.reduce(0, +) / Float(sims.count), least]
    }

    func score(_ f: [Float]) -> Float {
        var z = bias
        for k in 0..<f.count { z += theta[k] * f[k] }
        return 1 / (1 + Foundation.exp(-z))
    }

    /// Trust weights in (0, 1) of the real sequences.
    public func weights(examples: [TrainingCorpus.UserExample], table: FloatBuffer) -> [Float] {
        let w = examples.map { score(features(history: $0.before, target: $0.target, table: table)) }
        lastMeanWeight = Double(w.reduce(0, +)) / Double(max(1, w.count))
        return w
    }

    /// One gradient step of the logistic recogniser on weak labels: half the examples noised (label 0).
    public func train(examples: [TrainingCorpus.UserExample], table: FloatBuffer, seed: UInt64) {
        var rng = SplitMix64(seed: seed &* 0x2545_F491_4F6C_DD1D &+ 17)
        var gradTheta = [Float](repeating: 0, count: theta.count), gradBias: Float = 0
        var loss = 0.0
        for (i, e) in examples.enumerated() {
            var history = e.before
            var label: Float = 1
            if i % 2 == 0 && !history.isEmpty {
                let shown = min(20, history.count)
                let position = history.count - 1 - Int(rng.next() % UInt64(shown))
                history[position] = Int(rng.next() % UInt64(catalogSize))
                label = 0
            }
            let f = features(history: history, target: e.target, table: table)
            let p = score(f)
            loss -= Double(label * log(max(p, 1e-7)) + (1 - label) * log(max(1 - p, 1e-7)))
            for k in 0..<f.count { gradTheta[k] += (p - label) * f[k] }
            gradBias += p - label
        }
        let scale = learningRate / Float(max(1, examples.count))
        for k in 0..<theta.count { theta[k] -= scale * gradTheta[k] }
        bias -= scale * gradBias
        lastLoss = loss / Double(max(1, examples.count))
    }
}
