// The LM head's loss on a TrainingGraph: sum over chosen rows of weight * cross-entropy(hidden[row] · W^T, target),
// W the tied embedding or lm_head. Adds to dHidden and to W's gradient; rows go through the head in chunks so the
// [rows, vocab] logits never exceed `chunkRows` rows. Weights may be negative (policy-gradient advantages).
import Foundation
import Model
import Tensor

extension TrainingGraph {
    /// Rows per chunk of logits.
    static let chunkRows = 1024

    /// Σ_i weights[i] * -log softmax(hidden[rows[i]] W^T)[targets[i]]; returns the loss (Double).
    @discardableResult
    public func tokenLoss(rows: [Int], targets: [Int], weights lossWeights: [Float]) -> Double {
        precondition(rows.count == targets.count && rows.count == lossWeights.count)
        let d = configuration.hiddenSize, vocab = configuration.vocabSize
        let head = weights.lmHead, dHead = gradientWeights.lmHead
        let chunk = Self.chunkRows
        let gathered = UnsafeMutablePointer<Float>.allocate(capacity: chunk * d)
        let dGathered = UnsafeMutablePointer<Float>.allocate(capacity: chunk * d)
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: chunk * vocab)
        defer { gathered.deallocate(); dGathered.deallocate(); logits.deallocate() }
        var total = 0.0
        var start = 0
        while start < rows.count {
            let m = min(chunk, rows.count - start)
            for i in 0..<m { (gathered + i * d).update(from: hidden + rows[start + i] * d, count: d) }
            GEMM.forward(m: m, n: vocab, k: d, a: gathered, b: head, transB: true, c: logits)
            Softmax.forward(out: logits, input: logits, rows: m, cols: vocab)
            for i in 0..<m {
                let t = targets[start + i]
                precondition(t >= 0 && t < vocab, "target token \(t) outside the vocabulary")
                total += Double(lossWeights[start + i]) * -log(max(Double(logits[i * vocab + t]), 1e-30))
            }
            // d loss / d logits = w * (p - onehot(t)), rows split over the pool.
            let base = start
            ThreadPool.shared.parallelSlices(m, minimumPerSlice: 16) { slice in
                for i in slice {
                    let w = lossWeights[base + i], p = logits + i * vocab
                    var j = 0
                    while j + 16 <= vocab { VectorMath.store(VectorMath.load(p + j) * w, p + j); j += 16 }
                    while j < vocab { p[j] *= w; j += 1 }
                    p[targets[base + i]] -= w
                }
            }
            GEMM.forward(m: m, n: d, k: vocab, a: logits, b: head, c: dGathered)
            GEMM.forward(m: vocab, n: d, k: m, a: logits, transA: true, b: gathered, c: dHead, beta: 1)
            for i in 0..<m {
                let target = dHidden + rows[start + i] * d, source = dGathered + i * d
                for j in 0..<d { target[j] += source[j] }
            }
            start += m
        }
        return total
    }
}
