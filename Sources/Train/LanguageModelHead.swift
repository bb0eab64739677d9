// The LM head's loss on a TrainingGraph: sum over chosen rows of weight * cross-entropy(hidden[row] · W^T, target),
// W the tied embedding or lm_head. Adds to dHidden and to W's gradient; rows go through the head in chunks so the
// [rows, vocab] logits never exceed `chunkRows` rows. Weights may be negative (policy-gradient advantages). The head's
// weights are packed once per call for the project's GEMM (not once per chunk), when the CPU runs it.
import Foundation
import Model
import Tensor

extension TrainingGraph {
    /// Rows per chunk of logits: [256, vocab 8192] is 8 MB, which the GEMM writes and the loss re-reads in L3 (chunks
    /// of 1024 rows spilled 32 MB to memory between the two).
    static let chunkRows = 256

    /// Σ_i weights[i] * -log softmax(hidden[rows[i]] W^T)[targets[i]]; returns the loss (Double).
    @discardableResult
    public func tokenLoss(rows: [Int], targets: [Int], weights lossWeights: [Float]) -> Double {
        precondition(rows.count == targets.count && rows.count == lossWeights.count)
        let d = configuration.hiddenSize, vocab = configuration.vocabSize
        let head = weights.lmHead, dHead = gradientWeights.lmHead
        let chunk = Self.chunkRows
        // Kept on the graph across calls: a fresh 8 MB logits buffer per call was mapped (and page-faulted) anew.
        let gathered = headGathered.ensure(chunk * d), dGathered = headDGathered.ensure(chunk * d)
        let logits = headLogits.ensure(chunk * vocab)
        let rowLoss = UnsafeMutablePointer<Double>.allocate(capacity: chunk)
        defer { rowLoss.deallocate() }
        let targets32 = targets.map { t in
            precondition(t >= 0 && t < vocab, "target token \(t) outside the vocabulary")
            return Int32(t)
        }
        var total = 0.0
        var start = 0
        let profile = self.profile
        profile?.start()
        let packed = packedHead(rows: rows.count)
        profile?.lap("head pack")
        while start < rows.count {
            let m = min(chunk, rows.count - start)
            for i in 0..<m { (gathered + i * d).update(from: hidden + rows[start + i] * d, count: d) }
            if let packed {
                packed.multiply(rows: m, x: gathered, ldx: d, out: logits, ldo: vocab, beta: 0, serial: false)
            } else {
                GEMM.forward(m: m, n: vocab, k: d, a: gathered, b: head, transB: true, c: logits)
            }
            profile?.lap("head logits GEMM")
            // The loss, and d loss / d logits = w * (p - onehot(t)) in place of the logits.
            targets32.withUnsafeBufferPointer { t in
                lossWeights.withUnsafeBufferPointer { w in
                    CrossEntropy.forwardBackward(logits: logits, rows: m, cols: vocab, targets: t.baseAddress! + start,
                                                 weights: w.baseAddress! + start, loss: rowLoss)
                }
            }
            for i in 0..<m { total += rowLoss[i] }
            profile?.lap("head softmax + loss")
            GEMM.forward(m: m, n: d, k: vocab, a: logits, b: head, c: dGathered)
            profile?.lap("head dHidden GEMM")
            GEMM.forward(m: vocab, n: d, k: m, a: logits, transA: true, b: gathered, c: dHead, beta: 1)
            profile?.lap("head dWeight GEMM")
            for i in 0..<m {
                let target = dHidden + rows[start + i] * d, source = dGathered + i * d
                for j in 0..<d { target[j] += source[j] }
            }
            start += m
        }
        return total
    }

    /// The head's weights packed for this call's logits (the graph keeps the storage across steps), or nil when the
    /// CPU has no packed kernel or the rows are too few for packing to pay.
    func packedHead(rows: Int) -> PackedMatrix? {
        guard PackedMatrix.isSupported, rows >= 16 else { return nil }
        let d = configuration.hiddenSize, vocab = configuration.vocabSize
        if let head = headPacking {
            head.repack(weights: weights.lmHead)
            return head
        }
        let head = PackedMatrix(weights: weights.lmHead, n: vocab, k: d)
        headPacking = head
        return head
    }
}
