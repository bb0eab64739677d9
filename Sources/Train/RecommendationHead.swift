// The recommendation head's loss on a TrainingGraph: user and item vectors are the L2-normalised final-norm hidden
// states at chosen rows (each sequence's last token); logits = cosine / tau of every user against the batch's item
// columns (with gradient) and optional fixed columns (the refreshed item table, no gradient); per-user masked columns
// are excluded; loss = Σ_u weight_u * cross-entropy(logits_u, target_u). Adds to dHidden.
import Foundation
import Model
import Tensor

public struct ContrastiveBatch {
    /// Rows (of the TrainingGraph batch) read out as users, and as the batch's items.
    public var userRows: [Int]
    public var itemRows: [Int]
    /// Per user, the column of its target (an index into itemRows).
    public var targets: [Int]
    public var weights: [Float]
    public var tau: Float
    /// Fixed unit vectors [fixedCount, hidden] appended as columns after the batch items (no gradient).
    public var fixed: UnsafePointer<Float>?
    public var fixedCount: Int
    /// Per user, columns (batch items first, then fixed) that do not compete: history items, stale duplicates.
    public var masked: [[Int]]
    /// Unit vectors [items, hidden] whose values the batch items' columns take in the logits (a memory bank's rows),
    /// while the gradient still flows into the fresh read-outs (straight-through). With the full table as fixed
    /// columns, this keeps every column equally stale, so the loss cannot be lowered by fresh-versus-stale drift.
    public var itemValues: UnsafePointer<Float>?
    /// Added to every user's logit of each column (e.g. -log of a sampled column's inclusion probability: the
    /// logQ correction of in-batch softmax, so that training approximates the full-catalogue softmax).
    public var columnOffsets: [Float]?
    /// Per batch item, a vector [items, hidden] added to its unit read-out before a second L2 normalisation: the
    /// item's column is unit(unit(read-out) + offset) (a learned per-item id vector beside the text); the result's
    /// `offsetGradients` holds d loss / d offset. Not with `itemValues`.
    public var itemOffsets: UnsafePointer<Float>?
    /// The batch items' raw (final-norm) vectors [externalItemCount, hidden] when they are not rows of this graph
    /// (a data-parallel rank gathers every rank's item read-outs): `itemRows` is then ignored, and their gradient is
    /// returned in `ContrastiveResult.itemGradient` instead of being added to dHidden.
    public var externalItems: UnsafePointer<Float>?
    public var externalItemCount = 0

    public init(userRows: [Int], itemRows: [Int], targets: [Int], weights: [Float], tau: Float,
                fixed: UnsafePointer<Float>? = nil, fixedCount: Int = 0, masked: [[Int]]? = nil) {
        self.userRows = userRows; self.itemRows = itemRows; self.targets = targets; self.weights = weights
        self.tau = tau; self.fixed = fixed; self.fixedCount = fixedCount
        self.masked = masked ?? Array(repeating: [], count: userRows.count)
    }
}

public struct ContrastiveResult {
    public var loss: Double
    /// Per user: the target's probability among the unmasked columns.
    public var targetProbability: [Float]
    /// The batch items' fresh unit vectors [items, hidden] (to refresh a memory bank).
    public var itemVectors: FloatBuffer
    /// With `itemOffsets`: d loss / d offset [items, hidden].
    public var offsetGradients: FloatBuffer?
    /// With external items: d loss / d raw item vector [items, hidden].
    public var itemGradient: FloatBuffer?
}

extension TrainingGraph {
    @discardableResult
    public func contrastiveLoss(_ b: ContrastiveBatch) -> ContrastiveResult {
        let d = configuration.hiddenSize
        let external = b.externalItems != nil
        let users = b.userRows.count, items = external ? b.externalItemCount : b.itemRows.count
        let columns = items + b.fixedCount
        precondition(b.targets.count == users && b.weights.count == users && b.masked.count == users)
        let u = FloatBuffer(shape: [users, d]), uNorms = FloatBuffer(shape: [users])
        let all = FloatBuffer(shape: [columns, d]), iNorms = FloatBuffer(shape: [items])
        for (i, r) in b.userRows.enumerated() { (u.data + i * d).update(from: hidden + r * d, count: d) }
        if let raw = b.externalItems {
            all.data.update(from: raw, count: items * d)
        } else {
            for (i, r) in b.itemRows.enumerated() { (all.data + i * d).update(from: hidden + r * d, count: d) }
        }
        L2Normalize.forward(out: u.data, input: u.data, rows: users, dim: d, norms: uNorms.data)
        L2Normalize.forward(out: all.data, input: all.data, rows: items, dim: d, norms: iNorms.data)
        // With id vectors: text unit vectors kept for the backward, then unit(text + offset) in the columns.
        precondition(b.itemOffsets == nil || b.itemValues == nil, "item offsets and item values do not combine")
        var textUnits: FloatBuffer?, offsetNorms: FloatBuffer?
        if let offsets = b.itemOffsets, items > 0 {
            let text = FloatBuffer(shape: [items, d])
            text.data.update(from: all.data, count: items * d)
            for i in 0..<(items * d) { all.data[i] += offsets[i] }
            let norms = FloatBuffer(shape: [items])
            L2Normalize.forward(out: all.data, input: all.data, rows: items, dim: d, norms: norms.data)
            textUnits = text
            offsetNorms = norms
        }
        if let fixed = b.fixed { (all.data + items * d).update(from: fixed, count: b.fixedCount * d) }
        let freshItems = FloatBuffer(shape: [max(items, 1), d])
        freshItems.data.update(from: all.data, count: items * d)
        // Straight-through: the logits read the given values; the item gradient goes to the fresh vectors below.
        if let values = b.itemValues { all.data.update(from: values, count: items * d) }
        let logits = FloatBuffer(shape: [users, columns])
        if users > 0 {
            GEMM.forward(m: users, n: columns, k: d, a: u.data, b: all.data, transB: true, c: logits.data, alpha: 1 / b.tau)
        }
        if let offsets = b.columnOffsets {
            precondition(offsets.count == columns, "one offset per column")
            for i in 0..<users { for j in 0..<columns { logits.data[i * columns + j] += offsets[j] } }
        }
        for (i, cols) in b.masked.enumerated() {
            for col in cols where col != b.targets[i] { logits.data[i * columns + col] = -1e30 }
        }
        Softmax.forward(out: logits.data, input: logits.data, rows: users, cols: columns)
        var loss = 0.0
        var probability = [Float](repeating: 0, count: users)
        for i in 0..<users {
            let p = logits.data + i * columns, t = b.targets[i], w = b.weights[i]
            probability[i] = p[t]
            loss += Double(w) * -log(max(Double(p[t]), 1e-30))
            // d loss / d logit = w (p - onehot); the logit is cos / tau.
            let factor = w / b.tau
            for j in 0..<columns { p[j] *= factor }
            p[t] -= factor
        }
        // dU = dLogits · all; dItems = dLogits[:, :items]^T · U.
        let dU = FloatBuffer(shape: [max(users, 1), d]), dI = FloatBuffer(shape: [max(items, 1), d])
        if users > 0 { GEMM.forward(m: users, n: d, k: columns, a: logits.data, b: all.data, c: dU.data) }
        if items > 0 && users > 0 {
            GEMM.forward(m: items, n: d, k: users, a: logits.data, lda: columns, transA: true, b: u.data, c: dI.data)
        }
        let dRaw = FloatBuffer(shape: [max(users, items), d])
        L2Normalize.backward(dInput: dRaw.data, dOut: dU.data, output: u.data, norms: uNorms.data, rows: users, dim: d,
                             accumulate: false)
        for (i, r) in b.userRows.enumerated() {
            let target = dHidden + r * d, source = dRaw.data + i * d
            for j in 0..<d { target[j] += source[j] }
        }
        var offsetGradients: FloatBuffer?
        if let textUnits, let offsetNorms {
            // dPre = d loss / d(text unit + offset): the offsets' gradient, and what flows back into the text unit.
            let dPre = FloatBuffer(shape: [items, d])
            L2Normalize.backward(dInput: dPre.data, dOut: dI.data, output: freshItems.data, norms: offsetNorms.data,
                                 rows: items, dim: d, accumulate: false)
            offsetGradients = dPre
            dI.data.update(from: dPre.data, count: items * d)
            L2Normalize.backward(dInput: dRaw.data, dOut: dI.data, output: textUnits.data, norms: iNorms.data, rows: items,
                                 dim: d, accumulate: false)
        } else {
            L2Normalize.backward(dInput: dRaw.data, dOut: dI.data, output: freshItems.data, norms: iNorms.data, rows: items,
                                 dim: d, accumulate: false)
        }
        if external {
            let gradient = FloatBuffer(shape: [max(items, 1), d])
            gradient.data.update(from: dRaw.data, count: items * d)
            return ContrastiveResult(loss: loss, targetProbability: probability, itemVectors: freshItems,
                                     offsetGradients: offsetGradients, itemGradient: gradient)
        }
        for (i, r) in b.itemRows.enumerated() {
            let target = dHidden + r * d, source = dRaw.data + i * d
            for j in 0..<d { target[j] += source[j] }
        }
        return ContrastiveResult(loss: loss, targetProbability: probability, itemVectors: freshItems,
                                 offsetGradients: offsetGradients)
    }
}
