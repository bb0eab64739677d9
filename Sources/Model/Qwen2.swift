// The Qwen2 decoder's forward pass over a ragged batch: sequences are concatenated (no padding), each row carries
// its own position, attention is causal within each sequence (over its KV cache when one is given). Q|K|V and
// gate|up are single GEMMs over every token of the batch; the LM head runs only on the rows asked for.
import Foundation
import Tensor

/// Which rows of each sequence a forward pass returns (final-norm hidden states and, if asked, logits).
public enum OutputRows: Sendable {
    /// The last token of each sequence (decoding, readout).
    case last
    /// Every token (training, tests).
    case all
}

/// The rows a forward pass returns, in sequence order: `rowStart[s]..<rowStart[s+1]` belong to sequence s.
public struct ForwardOutput {
    /// Final-norm hidden states [rows, hidden].
    public let hidden: FloatBuffer
    /// LM-head logits [rows, vocab], when asked for.
    public let logits: FloatBuffer?
    public let rowStart: [Int]
    public var rowCount: Int { hidden.rowCount }
}

public final class Qwen2Model: @unchecked Sendable {
    public let configuration: Qwen2Configuration
    /// Every weight, in one allocation carved by `parameters.layout` (Hugging Face names).
    public let parameters: ParameterBuffer
    let weights: ModelWeights
    let rope: RoPETable

    /// Attention computes query rows in blocks of this many, so that causal prefill skips most masked scores.
    static let queryBlock = 32

    public init(configuration: Qwen2Configuration, parameters: ParameterBuffer) throws {
        try configuration.validate()
        precondition(parameters.layout == ParameterLayout(configuration: configuration),
                     "parameters carved for another configuration")
        self.configuration = configuration
        self.parameters = parameters
        self.weights = ModelWeights(parameters, configuration: configuration)
        self.rope = RoPETable(headDim: configuration.headDim, maxPositions: configuration.maxPositionEmbeddings,
                              theta: Double(configuration.ropeTheta))
    }

    /// A model with seeded random weights (for tests, benchmarks and from-scratch training).
    public convenience init(randomWith configuration: Qwen2Configuration, seed: UInt64, std: Float = 0.02) throws {
        let buffer = ParameterBuffer(layout: ParameterLayout(configuration: configuration))
        buffer.initialiseRandomly(seed: seed, std: std)
        try self.init(configuration: configuration, parameters: buffer)
    }

    public var parameterCount: Int { parameters.layout.parameterCount }

    /// Runs `tokens[s]` for every sequence s. With `caches`, sequence s continues `caches[s]` (its rows take
    /// positions caches[s].offset onwards, attend to the cached tokens too, and are appended to the cache);
    /// without, each sequence starts at position 0 and nothing is kept.
    public func forward(_ tokens: [[Int]], caches: [KVCache]? = nil, rows: OutputRows = .last,
                        logits wantLogits: Bool = true) -> ForwardOutput {
        let c = configuration
        let d = c.hiddenSize, hd = c.headDim, heads = c.numAttentionHeads, kvHeads = c.numKeyValueHeads
        let qDim = heads * hd, kvDim = kvHeads * hd, qkvDim = c.qkvRows, ffn = c.intermediateSize
        precondition(caches == nil || caches!.count == tokens.count, "one cache per sequence")
        precondition(tokens.allSatisfy { !$0.isEmpty }, "every sequence needs at least one token")

        // Row bookkeeping: sequence s owns rows seqStart[s]..<seqStart[s+1] of the concatenated batch.
        var seqStart = [0]
        for t in tokens { seqStart.append(seqStart.last! + t.count) }
        let total = seqStart.last!
        let offsets = caches?.map(\.offset) ?? [Int](repeating: 0, count: tokens.count)
        var ids = [Int32](repeating: 0, count: total)
        var positions = [Int32](repeating: 0, count: total)
        for (s, t) in tokens.enumerated() {
            precondition(offsets[s] + t.count <= c.maxPositionEmbeddings,
                         "sequence of \(offsets[s] + t.count) tokens exceeds max_position_embeddings \(c.maxPositionEmbeddings)")
            for (i, id) in t.enumerated() {
                ids[seqStart[s] + i] = Int32(id)
                positions[seqStart[s] + i] = Int32(offsets[s] + i)
            }
        }
        if let caches { for (s, cache) in caches.enumerated() { cache.reserve(offsets[s] + tokens[s].count) } }

        let x = FloatBuffer(shape: [total, d])          // the residual stream
        let normed = FloatBuffer(shape: [total, d])
        let qkv = FloatBuffer(shape: [total, qkvDim])
        let attention = FloatBuffer(shape: [total, qDim])
        let gateUp = FloatBuffer(shape: [total, 2 * ffn])
        let activated = FloatBuffer(shape: [total, ffn])

        ids.withUnsafeBufferPointer {
            Embedding.forward(out: x.data, table: weights.embedding, ids: $0.baseAddress!, rows: total, dim: d,
                              vocab: c.vocabSize)
        }
        let scale = 1 / Float(hd).squareRoot()
        for (l, w) in weights.layers.enumerated() {
            RMSNorm.forward(out: normed.data, input: x.data, weight: w.inputNorm, rows: total, dim: d, eps: c.rmsNormEps)
            Linear.forward(out: qkv.data, input: normed.data, weight: w.qkvWeight, bias: w.qkvBias,
                           rows: total, inDim: d, outDim: qkvDim)
            positions.withUnsafeBufferPointer { p in
                // q and k rotate in place inside the fused buffer (k's heads follow q's in each row).
                RoPE.forward(x: qkv.data, positions: p.baseAddress!, rows: total, heads: heads + kvHeads,
                             headDim: hd, rowStride: qkvDim, table: rope)
            }
            // Where each sequence's keys and values live: the fused buffer itself, or its cache after appending.
            var keyBase: [UnsafePointer<Float>] = [], valueBase: [UnsafePointer<Float>] = []
            let kvStride: Int
            if let caches {
                kvStride = kvDim
                for (s, cache) in caches.enumerated() {
                    let k = cache.keys(l), v = cache.values(l)
                    for i in 0..<tokens[s].count {
                        let row = qkv.data + (seqStart[s] + i) * qkvDim
                        (k + (offsets[s] + i) * kvDim).update(from: row + qDim, count: kvDim)
                        (v + (offsets[s] + i) * kvDim).update(from: row + qDim + kvDim, count: kvDim)
                    }
                    keyBase.append(UnsafePointer(k)); valueBase.append(UnsafePointer(v))
                }
            } else {
                kvStride = qkvDim
                for s in 0..<tokens.count {
                    let row = qkv.data + seqStart[s] * qkvDim
                    keyBase.append(UnsafePointer(row + qDim)); valueBase.append(UnsafePointer(row + qDim + kvDim))
                }
            }
            Self.attend(qkv: qkv.data, qkvDim: qkvDim, out: attention.data, qDim: qDim, seqStart: seqStart,
                        offsets: offsets, keys: keyBase, values: valueBase, kvStride: kvStride, heads: heads,
                        kvHeads: kvHeads, headDim: hd, scale: scale)
            // x += attention · Wo^T, straight into the residual stream (beta = 1).
            GEMM.forward(m: total, n: d, k: qDim, a: attention.data, b: w.outputWeight, transB: true, c: x.data, beta: 1)
            RMSNorm.forward(out: normed.data, input: x.data, weight: w.postAttentionNorm, rows: total, dim: d,
                            eps: c.rmsNormEps)
            Linear.forward(out: gateUp.data, input: normed.data, weight: w.gateUpWeight, bias: nil,
                           rows: total, inDim: d, outDim: 2 * ffn)
            SwiGLU.forwardFused(out: activated.data, gateUp: gateUp.data, rows: total, ffn: ffn)
            GEMM.forward(m: total, n: d, k: ffn, a: activated.data, b: w.downWeight, transB: true, c: x.data, beta: 1)
        }
        if let caches { for (s, cache) in caches.enumerated() { cache.advance(by: tokens[s].count) } }

        // Final norm and LM head only on the rows asked for.
        var rowStart = [0]
        var sourceRows: [Int] = []
        for s in 0..<tokens.count {
            switch rows {
            case .last: sourceRows.append(seqStart[s + 1] - 1)
            case .all: sourceRows += Array(seqStart[s]..<seqStart[s + 1])
            }
            rowStart.append(sourceRows.count)
        }
        let hidden = FloatBuffer(shape: [sourceRows.count, d])
        if case .all = rows {
            RMSNorm.forward(out: hidden.data, input: x.data, weight: weights.finalNorm, rows: total, dim: d, eps: c.rmsNormEps)
        } else {
            for (r, source) in sourceRows.enumerated() {
                RMSNorm.forward(out: hidden.data + r * d, input: x.data + source * d, weight: weights.finalNorm,
                                rows: 1, dim: d, eps: c.rmsNormEps)
            }
        }
        var logits: FloatBuffer? = nil
        if wantLogits {
            let out = FloatBuffer(shape: [sourceRows.count, c.vocabSize])
            Linear.forward(out: out.data, input: hidden.data, weight: weights.lmHead, bias: nil,
                           rows: sourceRows.count, inDim: d, outDim: c.vocabSize)
            logits = out
        }
        return ForwardOutput(hidden: hidden, logits: logits, rowStart: rowStart)
    }

    /// Causal grouped-query attention for every (sequence, head, query block), spread over the thread pool.
    /// Queries are read from the fused QKV rows; sequence s's keys/values are rows 0..<offsets[s]+len of
    /// keys[s]/values[s] with row stride kvStride; the output goes to out[row, head * headDim ...].
    static func attend(qkv: UnsafeMutablePointer<Float>, qkvDim: Int, out: UnsafeMutablePointer<Float>, qDim: Int,
                       seqStart: [Int], offsets: [Int], keys: [UnsafePointer<Float>], values: [UnsafePointer<Float>],
                       kvStride: Int, heads: Int, kvHeads: Int, headDim hd: Int, scale: Float) {
        struct WorkItem { var sequence: Int; var head: Int; var firstRow: Int; var rowCount: Int }
        var items: [WorkItem] = []
        for s in 0..<(seqStart.count - 1) {
            let length = seqStart[s + 1] - seqStart[s]
            for h in 0..<heads {
                var r = 0
                while r < length {
                    let n = min(queryBlock, length - r)
                    items.append(WorkItem(sequence: s, head: h, firstRow: r, rowCount: n))
                    r += n
                }
            }
        }
        // Largest score block any item needs: queryBlock rows by the longest context.
        var longest = 0
        for s in 0..<(seqStart.count - 1) { longest = max(longest, offsets[s] + seqStart[s + 1] - seqStart[s]) }
        let group = heads / kvHeads
        let scratchSize = queryBlock * longest
        items.withUnsafeBufferPointer { work in
            ThreadPool.shared.parallelFor(work.count) { index in
                let item = work[index]
                let s = item.sequence, kvHead = item.head / group
                let context = offsets[s] + item.firstRow + item.rowCount   // keys this block may see
                let queries = qkv + (seqStart[s] + item.firstRow) * qkvDim + item.head * hd
                let k = keys[s] + kvHead * hd, v = values[s] + kvHead * hd
                let scores = UnsafeMutablePointer<Float>.allocate(capacity: scratchSize)
                defer { scores.deallocate() }
                GEMM.forward(m: item.rowCount, n: context, k: hd, a: queries, lda: qkvDim, b: k, ldb: kvStride,
                             transB: true, c: scores, ldc: context, alpha: scale)
                Softmax.forwardCausal(out: scores, input: scores, rows: item.rowCount, cols: context,
                                      offset: offsets[s] + item.firstRow)
                GEMM.forward(m: item.rowCount, n: hd, k: context, a: scores, lda: context, b: v, ldb: kvStride,
                             c: out + (seqStart[s] + item.firstRow) * qDim + item.head * hd, ldc: qDim)
            }
        }
    }
}
