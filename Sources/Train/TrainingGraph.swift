// TrainingGraph: the Qwen2 decoder's training forward over a ragged batch (sequences concatenated, positions from 0,
// causal within each sequence), keeping every activation its backward needs, and the backward pass accumulating
// into a gradient ParameterBuffer carved like the parameters (tied LM head -> the embedding's gradient).
// Every matmul is one GEMM over all rows of the batch; heads (losses) read `hidden` and fill `dHidden`.
// Latent steps (configuration.latentSteps = K, on the sequences a forward names): K rows follow the sequence's
// tokens, row j's input being the final-norm hidden state of the row before it plus latent_embeddings[j]; the last
// one is the sequence's read-out. Causality makes this K + 1 passes of the whole batch (pass p settles latent row
// p - 1), and the backward K + 1 passes too (backward is linear in dHidden: pass p carries the now complete input
// gradient of latent row K - p to the row feeding it).
import Foundation
import Model
import Tensor

/// A growable float scratch buffer (activations are re-used across steps; grown when a batch is larger).
final class Slab {
    private(set) var data: UnsafeMutablePointer<Float>
    private(set) var capacity: Int
    init(_ count: Int = 16) {
        capacity = max(count, 16)
        data = UnsafeMutablePointer<Float>.allocate(capacity: capacity)
        data.initialize(repeating: 0, count: capacity)
    }
    deinit { data.deallocate() }
    /// At least `count` floats; contents are not preserved when it grows.
    @discardableResult func ensure(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            data.deallocate()
            capacity = max(count, capacity + capacity / 2)
            data = UnsafeMutablePointer<Float>.allocate(capacity: capacity)
            data.initialize(repeating: 0, count: capacity)
        }
        return data
    }
}

public final class TrainingGraph: @unchecked Sendable {
    /// When set, forward and backward add their per-phase times to it.
    public var profile: PhaseProfile?
    public let model: Qwen2Model
    public let configuration: Qwen2Configuration
    /// Gradients, carved like `model.parameters`; `backward` adds to them, `zeroGradients` clears them.
    public let gradients: ParameterBuffer
    let weights: ModelWeights
    let gradientWeights: ModelWeights
    let rope: RoPETable
    /// Dropout probability of the next forward passes (0: none): on the embedding output and on each layer's
    /// attention and MLP branch before its residual add. Masks come from `dropoutSeed` (set it per step).
    public var dropout: Float = 0
    public var dropoutSeed: UInt64 = 0
    /// Rows of a larger batch before this one (a data-parallel rank's share): masks are drawn as for those rows of
    /// the whole batch, so N ranks drop what one process running the whole batch drops.
    public var dropoutRowOffset = 0
    /// The dropout of the last forward, which its backward must use.
    private(set) var forwardDropout: Float = 0
    /// Storage for the LM head's weights packed once per loss call (LanguageModelHead).
    var headPacking: PackedMatrix?

    final class LayerActivations {
        let x = Slab(), normed1 = Slab(), rstd1 = Slab(), qkv = Slab(), attention = Slab()
        let middle = Slab(), normed2 = Slab(), rstd2 = Slab(), gateUp = Slab(), activated = Slab()
        let attentionMask = Slab(), mlpMask = Slab()
    }
    let layers: [LayerActivations]
    let finalInput = Slab(), finalRstd = Slab(), hiddenSlab = Slab(), dHiddenSlab = Slab()
    let embeddingMask = Slab(), branch = Slab()
    /// The LM head's chunk buffers (LanguageModelHead): gathered rows, their gradient, the logits.
    let headGathered = Slab(), headDGathered = Slab(), headLogits = Slab()
    // Backward scratch, shared by the layers.
    let dx = Slab(), dNormed = Slab(), dQKV = Slab(), dAttention = Slab(), dGateUp = Slab(), dActivated = Slab()

    /// The current batch: sequence s owns rows seqStart[s]..<seqStart[s+1].
    public private(set) var seqStart: [Int] = [0]
    public private(set) var tokens: [Int32] = []
    var positions: [Int32] = []
    public var rowCount: Int { seqStart.last! }
    /// Rows of the current batch that are latent steps (each fed by the row before it), and their step indices.
    var latentRows: [Int] = [], latentStepOfRow: [Int] = []
    /// Input gradient of the latent rows summed over the backward passes [latentRows.count, hidden].
    let dLatentInput = Slab()

    public init(model: Qwen2Model) {
        self.model = model
        configuration = model.configuration
        gradients = ParameterBuffer(layout: model.parameters.layout)
        weights = ModelWeights(model.parameters, configuration: configuration)
        gradientWeights = ModelWeights(gradients, configuration: configuration)
        rope = RoPETable(headDim: configuration.headDim, maxPositions: configuration.maxPositionEmbeddings,
                         theta: Double(configuration.ropeTheta))
        layers = (0..<configuration.numHiddenLayers).map { _ in LayerActivations() }
    }

    public func zeroGradients() { gradients.all.update(repeating: 0) }

    /// Final-norm hidden states [rowCount, hidden] of the last forward pass.
    public var hidden: UnsafeMutablePointer<Float> { hiddenSlab.data }
    /// The gradient of the loss with respect to `hidden` [rowCount, hidden]: zeroed by `forward`, filled by heads.
    public var dHidden: UnsafeMutablePointer<Float> { dHiddenSlab.data }

    /// Row index of token i of sequence s.
    public func row(sequence s: Int, token i: Int) -> Int { seqStart[s] + i }
    /// The read-out row of sequence s: its last token, or its last latent step when it has them.
    public func lastRow(sequence s: Int) -> Int { seqStart[s + 1] - 1 }

    /// Runs the batch, keeping activations; returns the final-norm hidden states (`hidden`). The sequences s with
    /// `latent[s]` (none when empty) get the configuration's latent steps after their tokens.
    @discardableResult
    public func forward(_ batch: [[Int]], latent: [Bool] = []) -> UnsafeMutablePointer<Float> {
        let c = configuration, k = c.latentSteps
        precondition(latent.isEmpty || latent.count == batch.count, "one latent flag per sequence")
        let steps = batch.indices.map { latent.isEmpty || !latent[$0] ? 0 : k }
        precondition(batch.indices.allSatisfy { !batch[$0].isEmpty && batch[$0].count + steps[$0] <= c.maxPositionEmbeddings },
                     "every sequence needs 1...max_position_embeddings tokens and latent steps")
        seqStart = [0]
        latentRows = []
        latentStepOfRow = []
        for (s, t) in batch.enumerated() {
            for j in 0..<steps[s] { latentRows.append(seqStart.last! + t.count + j); latentStepOfRow.append(j) }
            seqStart.append(seqStart.last! + t.count + steps[s])
        }
        tokens = batch.indices.flatMap { s in batch[s].map(Int32.init) + [Int32](repeating: 0, count: steps[s]) }
        positions = batch.indices.flatMap { (0..<(batch[$0].count + steps[$0])).map(Int32.init) }
        for pass in 0...(latentRows.isEmpty ? 0 : k) { forwardPass(feedback: pass > 0) }
        return hidden
    }

    /// One pass over the current batch; latent rows take the previous pass's hidden states (`feedback`) or only
    /// their step vectors (the first pass, whose latent rows are all recomputed later).
    private func forwardPass(feedback: Bool) {
        let c = configuration
        let d = c.hiddenSize, hd = c.headDim, heads = c.numAttentionHeads, kvHeads = c.numKeyValueHeads
        let qDim = heads * hd, qkvDim = c.qkvRows, ffn = c.intermediateSize
        let n = rowCount
        let profile = self.profile
        profile?.start()
        var x = layers.first?.x.ensure(n * d) ?? finalInput.ensure(n * d)
        tokens.withUnsafeBufferPointer {
            Embedding.forward(out: x, table: weights.embedding, ids: $0.baseAddress!, rows: n, dim: d, vocab: c.vocabSize)
        }
        for (i, r) in latentRows.enumerated() {
            let step = weights.latentEmbeddings! + latentStepOfRow[i] * d, row = x + r * d, previous = hiddenSlab.data + (r - 1) * d
            for j in 0..<d { row[j] = step[j] + (feedback ? previous[j] : 0) }
        }
        let p = dropout
        forwardDropout = p
        /// The mask of dropout site `site` (0: embedding, 1 + 2l: layer l's attention, 2 + 2l: its MLP).
        func mask(_ slab: Slab, site: UInt64) -> UnsafeMutablePointer<Float> {
            let m = slab.ensure(n * d)
            Dropout.fillMask(m, count: n * d, p: p, seed: dropoutSeed, site: site, offset: dropoutRowOffset * d)
            return m
        }
        if p > 0 { Dropout.apply(x, mask: mask(embeddingMask, site: 0), count: n * d) }
        /// out = residual + input W^T [n, k] x [d, k]^T, the branch through its dropout mask when there is one.
        func residualBranch(out: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>,
                            input: UnsafePointer<Float>, weight: UnsafePointer<Float>, k: Int, mask slab: Slab, site: Int) {
            if p > 0 {
                let branch = self.branch.ensure(n * d)
                GEMM.forward(m: n, n: d, k: k, a: input, b: weight, transB: true, c: branch)
                Dropout.addMasked(out: out, residual: residual, branch: branch, mask: mask(slab, site: UInt64(site)), count: n * d)
            } else {
                out.update(from: residual, count: n * d)
                GEMM.forward(m: n, n: d, k: k, a: input, b: weight, transB: true, c: out, beta: 1)
            }
        }
        let scale = 1 / Float(hd).squareRoot()
        for (l, a) in layers.enumerated() {
            let w = weights.layers[l]
            let normed1 = a.normed1.ensure(n * d), rstd1 = a.rstd1.ensure(n), qkv = a.qkv.ensure(n * qkvDim)
            let attention = a.attention.ensure(n * qDim), middle = a.middle.ensure(n * d)
            let normed2 = a.normed2.ensure(n * d), rstd2 = a.rstd2.ensure(n)
            let gateUp = a.gateUp.ensure(n * 2 * ffn), activated = a.activated.ensure(n * ffn)
            RMSNorm.forward(out: normed1, input: x, weight: w.inputNorm, rows: n, dim: d, eps: c.rmsNormEps, rstd: rstd1)
            profile?.lap("fwd norms")
            Linear.forward(out: qkv, input: normed1, weight: w.qkvWeight, bias: w.qkvBias, rows: n, inDim: d, outDim: qkvDim)
            profile?.lap("fwd GEMMs")
            positions.withUnsafeBufferPointer {
                RoPE.forward(x: qkv, positions: $0.baseAddress!, rows: n, heads: heads + kvHeads, headDim: hd,
                             rowStride: qkvDim, table: rope)
            }
            profile?.lap("fwd rope")
            CausalAttention.forward(qkv: qkv, out: attention, seqStart: seqStart, heads: heads, kvHeads: kvHeads,
                                    headDim: hd, scale: scale)
            profile?.lap("fwd attention")
            residualBranch(out: middle, residual: x, input: attention, weight: w.outputWeight, k: qDim,
                           mask: a.attentionMask, site: 1 + 2 * l)
            profile?.lap("fwd GEMMs")
            RMSNorm.forward(out: normed2, input: middle, weight: w.postAttentionNorm, rows: n, dim: d,
                            eps: c.rmsNormEps, rstd: rstd2)
            profile?.lap("fwd norms")
            GEMM.forward(m: n, n: 2 * ffn, k: d, a: normed2, b: w.gateUpWeight, transB: true, c: gateUp)
            profile?.lap("fwd GEMMs")
            SwiGLU.forwardFused(out: activated, gateUp: gateUp, rows: n, ffn: ffn)
            profile?.lap("fwd swiglu")
            let next = l + 1 < layers.count ? layers[l + 1].x.ensure(n * d) : finalInput.ensure(n * d)
            residualBranch(out: next, residual: middle, input: activated, weight: w.downWeight, k: ffn,
                           mask: a.mlpMask, site: 2 + 2 * l)
            profile?.lap("fwd GEMMs")
            x = next
        }
        let hidden = hiddenSlab.ensure(n * d)
        RMSNorm.forward(out: hidden, input: x, weight: weights.finalNorm, rows: n, dim: d, eps: c.rmsNormEps,
                        rstd: finalRstd.ensure(n))
        dHiddenSlab.ensure(n * d).update(repeating: 0, count: n * d)
        profile?.lap("fwd norms")
    }

    /// Backpropagates `dHidden` through the final norm, every layer and the embedding (and the latent steps' chain),
    /// adding to `gradients`.
    public func backward() {
        let d = configuration.hiddenSize, n = rowCount
        let dLatent = dLatentInput.ensure(max(1, latentRows.count) * d)
        dLatent.update(repeating: 0, count: latentRows.count * d)
        backwardPass()
        guard !latentRows.isEmpty else { return }
        // Pass p: latent step K - p's input gradient is complete; it is the gradient of the row feeding it.
        for step in stride(from: configuration.latentSteps - 1, through: 0, by: -1) {
            dHidden.update(repeating: 0, count: n * d)
            for (i, r) in latentRows.enumerated() where latentStepOfRow[i] == step {
                (dHidden + (r - 1) * d).update(from: dLatent + i * d, count: d)
            }
            backwardPass()
        }
        let dSteps = gradientWeights.latentEmbeddings!
        for (i, step) in latentStepOfRow.enumerated() {
            let target = dSteps + step * d, source = dLatent + i * d
            for j in 0..<d { target[j] += source[j] }
        }
    }

    /// One backward pass of `dHidden`; the latent rows' input gradients are added to `dLatentInput`.
    private func backwardPass() {
        let c = configuration
        let d = c.hiddenSize, hd = c.headDim, heads = c.numAttentionHeads, kvHeads = c.numKeyValueHeads
        let qDim = heads * hd, qkvDim = c.qkvRows, ffn = c.intermediateSize
        let n = rowCount
        let dx = self.dx.ensure(n * d), dNormed = self.dNormed.ensure(n * d), dQKV = self.dQKV.ensure(n * qkvDim)
        let dAttention = self.dAttention.ensure(n * qDim), dGateUp = self.dGateUp.ensure(n * 2 * ffn)
        let dActivated = self.dActivated.ensure(n * ffn)
        // With dropout, a branch's output gradient is the residual gradient through the branch's mask.
        let dropped = forwardDropout > 0
        let dBranch = dropped ? branch.ensure(n * d) : dx
        let profile = self.profile
        profile?.start()
        RMSNorm.backward(dInput: dx, dWeight: gradientWeights.finalNorm, dOut: dHidden, input: finalInput.data,
                         weight: weights.finalNorm, rstd: finalRstd.data, rows: n, dim: d, accumulate: false)
        profile?.lap("bwd norms")
        let scale = 1 / Float(hd).squareRoot()
        for l in stride(from: layers.count - 1, through: 0, by: -1) {
            let a = layers[l], w = weights.layers[l], g = gradientWeights.layers[l]
            // MLP: x_next = middle + mask * (swiglu(norm2(middle) Wgu^T) Wd^T).
            if dropped { Dropout.masked(out: dBranch, dx, mask: a.mlpMask.data, count: n * d) }
            Linear.backward(dInput: dActivated, dWeight: g.downWeight, dBias: nil, dOut: dBranch, input: a.activated.data,
                            weight: w.downWeight, rows: n, inDim: ffn, outDim: d)
            profile?.lap("bwd GEMMs")
            SwiGLU.backwardFused(dGateUp: dGateUp, dOut: dActivated, gateUp: a.gateUp.data, rows: n, ffn: ffn)
            profile?.lap("bwd swiglu")
            Linear.backward(dInput: dNormed, dWeight: g.gateUpWeight, dBias: nil, dOut: dGateUp, input: a.normed2.data,
                            weight: w.gateUpWeight, rows: n, inDim: d, outDim: 2 * ffn)
            profile?.lap("bwd GEMMs")
            RMSNorm.backward(dInput: dx, dWeight: g.postAttentionNorm, dOut: dNormed, input: a.middle.data,
                             weight: w.postAttentionNorm, rstd: a.rstd2.data, rows: n, dim: d, accumulate: true)
            profile?.lap("bwd norms")
            // Attention: middle = x + mask * (attention Wo^T).
            if dropped { Dropout.masked(out: dBranch, dx, mask: a.attentionMask.data, count: n * d) }
            Linear.backward(dInput: dAttention, dWeight: g.outputWeight, dBias: nil, dOut: dBranch, input: a.attention.data,
                            weight: w.outputWeight, rows: n, inDim: qDim, outDim: d)
            profile?.lap("bwd GEMMs")
            CausalAttention.backward(dQKV: dQKV, dOut: dAttention, qkv: a.qkv.data, seqStart: seqStart, heads: heads,
                                     kvHeads: kvHeads, headDim: hd, scale: scale)
            profile?.lap("bwd attention")
            positions.withUnsafeBufferPointer {
                RoPE.backward(dx: dQKV, positions: $0.baseAddress!, rows: n, heads: heads + kvHeads, headDim: hd,
                              rowStride: qkvDim, table: rope)
            }
            profile?.lap("bwd rope")
            Linear.backward(dInput: dNormed, dWeight: g.qkvWeight, dBias: g.qkvBias, dOut: dQKV, input: a.normed1.data,
                            weight: w.qkvWeight, rows: n, inDim: d, outDim: qkvDim)
            profile?.lap("bwd GEMMs")
            RMSNorm.backward(dInput: dx, dWeight: g.inputNorm, dOut: dNormed, input: a.x.data, weight: w.inputNorm,
                             rstd: a.rstd1.data, rows: n, dim: d, accumulate: true)
            profile?.lap("bwd norms")
        }
        if dropped { Dropout.apply(dx, mask: embeddingMask.data, count: n * d) }
        for (i, r) in latentRows.enumerated() {
            let source = dx + r * d, target = dLatentInput.data + i * d
            for j in 0..<d { target[j] += source[j]; source[j] = 0 }
        }
        tokens.withUnsafeBufferPointer {
            Embedding.backward(dTable: gradientWeights.embedding, dOut: dx, ids: $0.baseAddress!, rows: n, dim: d)
        }
        profile?.lap("bwd embedding")
    }

    /// Multiply-adds of one forward pass of the current batch in its GEMMs (attention counted with its causal
    /// blocks), plus `lmRows` rows through the LM head: the training step does three times this.
    public func forwardMultiplyAdds(lmRows: Int) -> Double {
        let c = configuration
        let d = Double(c.hiddenSize), ffn = Double(c.intermediateSize), qDim = Double(c.numAttentionHeads * c.headDim)
        let perRow = d * Double(c.qkvRows) + qDim * d + d * 2 * ffn + ffn * d
        var attention = 0.0
        let b = CausalAttention.block
        for s in 0..<(seqStart.count - 1) {
            let length = seqStart[s + 1] - seqStart[s]
            for r0 in stride(from: 0, to: length, by: b) {
                let rows = min(b, length - r0)
                attention += 2 * Double(rows * (r0 + rows)) * qDim
            }
        }
        return Double(c.numHiddenLayers) * (Double(rowCount) * perRow + attention) + Double(lmRows) * d * Double(c.vocabSize)
    }
}
