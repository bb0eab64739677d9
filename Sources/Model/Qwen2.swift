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
    /// The projections packed for inference (`packedForInference`), or nil: OpenBLAS on `weights`.
    let packed: PackedWeights?
    let rope: RoPETable

    /// Attention computes query rows in blocks of this many, so that causal prefill skips most masked scores.
    nonisolated(unsafe) public static var queryBlock = 32

    public convenience init(configuration: Qwen2Configuration, parameters: ParameterBuffer) throws {
        try self.init(configuration: configuration, parameters: parameters, packed: nil)
    }

    init(configuration: Qwen2Configuration, parameters: ParameterBuffer, packed: PackedMatrix.Precision?) throws {
        try configuration.validate()
        precondition(parameters.layout == ParameterLayout(configuration: configuration),
                     "parameters carved for another configuration")
        self.configuration = configuration
        self.parameters = parameters
        let weights = ModelWeights(parameters, configuration: configuration)
        self.weights = weights
        self.packed = packed.map { PackedWeights(weights, configuration: configuration, precision: $0) }
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

    /// This model over the same parameters with its projections packed for the packed-weight GEMM in `precision`
    /// (itself, unpacked, when the CPU lacks the float32 kernel; bfloat16 requires `precision.isSupported`: check it
    /// first and tell the user). The packed copies are taken now: the parameters must not change afterwards, so this
    /// is for checkpoints loaded to serve or evaluate, never for a model in training.
    public func packedForInference(precision: PackedMatrix.Precision = .float32) -> Qwen2Model {
        precondition(precision == .float32 || precision.isSupported, "bfloat16 weights need AVX512_BF16")
        guard packed?.precision != precision, precision.isSupported else { return self }
        return try! Qwen2Model(configuration: configuration, parameters: parameters, packed: precision)
    }

    /// Whether the projections run through packed copies of the weights.
    public var isPacked: Bool { packed != nil }
    /// The precision of the packed projections (nil when unpacked: OpenBLAS on the float32 parameters).
    public var packedPrecision: PackedMatrix.Precision? { packed?.precision }
    /// Bytes of the packed copies (0 when unpacked).
    public var packedByteCount: Int { packed?.byteCount ?? 0 }

    /// When set, forward passes add their per-phase times to it (single-threaded callers only).
    nonisolated(unsafe) public var profile: PhaseProfile?

    /// Rows from which a batch of many sequences runs sequence-parallel (see `forward`); below, and for batches
    /// of few sequences, each GEMM is split over the pool instead.
    nonisolated(unsafe) public static var pipelineMinimumRows = 128
    /// Rows from which a batch of few sequences runs row-parallel (each thread takes a contiguous block of rows
    /// through o-proj, MLP and the next layer's QKV, meeting the other only around attention), which bounds the
    /// intermediates of very long inputs. Measured interleaved at 1-4 x 128 tokens, splitting each GEMM was 1-3
    /// points of sgemm peak faster, hence the high default.
    nonisolated(unsafe) public static var rowParallelMinimumRows = 4096
    /// Rows per single-threaded GEMM inside a pipeline block (OpenBLAS reaches its peak from about 128 rows).
    nonisolated(unsafe) public static var pipelineChunk = 512
    /// Rows per thread from which a batch below `pipelineMinimumRows` (a decode step of many sequences) is split
    /// by sequences over the pool for the whole pass: each thread takes a contiguous group of sequences through
    /// every layer, attention included, with single-threaded GEMMs of its rows and no meeting point until the LM
    /// head. Below, each GEMM is split over the pool instead (each thread then reads half the weights).
    nonisolated(unsafe) public static var stepSplitMinimumRows = 12

    /// Runs `tokens[s]` for every sequence s. With `caches`, sequence s continues `caches[s]` (its rows take
    /// positions caches[s].offset onwards, attend to the cached tokens too, and are appended to the cache);
    /// without, each sequence starts at position 0 and nothing is kept. With `embedded` [rows, hidden], those rows
    /// are the inputs in place of the tokens' embeddings (latent steps), the tokens giving only the lengths.
    public func forward(_ tokens: [[Int]], caches: [KVCache]? = nil, rows: OutputRows = .last,
                        logits wantLogits: Bool = true) -> ForwardOutput {
        forward(tokens, caches: caches, rows: rows, logits: wantLogits, embedded: nil)
    }

    func forward(_ tokens: [[Int]], caches: [KVCache]?, rows: OutputRows, logits wantLogits: Bool,
                 embedded: UnsafePointer<Float>?) -> ForwardOutput {
        let c = configuration
        let d = c.hiddenSize, hd = c.headDim, heads = c.numAttentionHeads, kvHeads = c.numKeyValueHeads
        let qDim = heads * hd, kvDim = kvHeads * hd, qkvDim = c.qkvRows
        precondition(caches == nil || caches!.count == tokens.count, "one cache per sequence")
        precondition(tokens.allSatisfy { !$0.isEmpty }, "every sequence needs at least one token")

        // Row bookkeeping: sequence s owns rows seqStart[s]..<seqStart[s+1] of the concatenated batch.
        var seqStart = [0]
        for t in tokens { seqStart.append(seqStart.last! + t.count) }
        let total = seqStart.last!
        let offsets = caches?.map(\.offset) ?? [Int](repeating: 0, count: tokens.count)
        var ids = [Int32](repeating: 0, count: total)
        var positions = [Int32](repeating: 0, count: total)
        var rowSequence = [Int](repeating: 0, count: total)
        for (s, t) in tokens.enumerated() {
            precondition(offsets[s] + t.count <= c.maxPositionEmbeddings,
                         "sequence of \(offsets[s] + t.count) tokens exceeds max_position_embeddings \(c.maxPositionEmbeddings)")
            for (i, id) in t.enumerated() {
                ids[seqStart[s] + i] = Int32(id)
                positions[seqStart[s] + i] = Int32(offsets[s] + i)
                rowSequence[seqStart[s] + i] = s
            }
        }
        if let caches { for (s, cache) in caches.enumerated() { cache.reserve(offsets[s] + tokens[s].count) } }
        let profile = self.profile
        profile?.start()

        let x = Workspace(total * d)                    // the residual stream
        let qkv = Workspace(total * qkvDim)
        let attention = Workspace(total * qDim)
        if let embedded {
            x.data.update(from: embedded, count: total * d)
        } else {
            ids.withUnsafeBufferPointer {
                Embedding.forward(out: x.data, table: weights.embedding, ids: $0.baseAddress!, rows: total, dim: d,
                                  vocab: c.vocabSize)
            }
        }
        // Where each sequence's keys and values live: the fused buffer itself, or its cache (rows appended by the
        // QKV step of each layer).
        let precision = caches?.first?.precision ?? .float32
        precondition(caches?.allSatisfy { $0.precision == precision } ?? true, "caches of one batch share a precision")
        func keyValues(_ l: Int) -> (keys: [UnsafeRawPointer], values: [UnsafeRawPointer], stride: Int) {
            if let caches {
                return (caches.map { UnsafeRawPointer($0.keys(l)) }, caches.map { UnsafeRawPointer($0.values(l)) }, kvDim)
            }
            return ((0..<tokens.count).map { UnsafeRawPointer(qkv.data + seqStart[$0] * qkvDim + qDim) },
                    (0..<tokens.count).map { UnsafeRawPointer(qkv.data + seqStart[$0] * qkvDim + qDim + kvDim) }, qkvDim)
        }
        let scale = 1 / Float(hd).squareRoot()
        positions.withUnsafeBufferPointer { positionsBuffer in
            rowSequence.withUnsafeBufferPointer { rowSequenceBuffer in
                let rowsPass = LayerRows(model: self, x: x.data, qkv: qkv.data, attention: attention.data,
                                         positions: positionsBuffer.baseAddress!, rowSequence: rowSequenceBuffer.baseAddress!,
                                         seqStart: seqStart, offsets: offsets, caches: caches)
                func attend(_ l: Int, sequences: Range<Int>) {
                    let kv = keyValues(l)
                    Self.attend(qkv: qkv.data, qkvDim: qkvDim, out: attention.data, qDim: qDim, seqStart: seqStart,
                                sequences: sequences, offsets: offsets, keys: kv.keys, values: kv.values,
                                kvStride: kv.stride, precision: precision, heads: heads, kvHeads: kvHeads, headDim: hd, scale: scale)
                }
                let threads = ThreadPool.shared.threadCount
                let units = Self.sequenceUnits(seqStart: seqStart, rowsPerUnit: Self.pipelineChunk)
                // A decode step of many sequences: one unit of about total / threads rows per thread.
                let stepUnits = total < Self.pipelineMinimumRows && threads > 1
                    && total >= threads * Self.stepSplitMinimumRows
                    ? Self.sequenceUnits(seqStart: seqStart, rowsPerUnit: (total + threads - 1) / threads) : []
                let splitStep = stepUnits.count >= threads
                if total >= Self.pipelineMinimumRows && units.count >= 2 * threads || splitStep {
                    // Many sequences: each thread takes whole groups of sequences through every layer, attention
                    // included, with no meeting point at all (work handed out unit by unit, so uneven units balance).
                    let work = splitStep ? stepUnits : units
                    let chunk = splitStep ? work.map { seqStart[$0.upperBound] - seqStart[$0.lowerBound] }.max()!
                        : Self.pipelineChunk
                    let scratch = ScratchPool(configuration: c, rows: chunk)
                    ThreadPool.shared.parallelFor(work.count) { u in
                        let unit = work[u], r0 = seqStart[unit.lowerBound], r1 = seqStart[unit.upperBound]
                        let s = scratch.take()
                        defer { scratch.give(s) }
                        func chunks(_ body: (Int, Int) -> Void) {
                            var r = r0
                            while r < r1 { let n = min(chunk, r1 - r); body(r, n); r += n }
                        }
                        chunks { r, n in rowsPass.preAttention(layer: 0, first: r, count: n, scratch: s, serial: true) }
                        for l in 0..<c.numHiddenLayers {
                            attend(l, sequences: unit)
                            chunks { r, n in
                                rowsPass.postAttention(layer: l, first: r, count: n, scratch: s, serial: true)
                                if l + 1 < c.numHiddenLayers {
                                    rowsPass.preAttention(layer: l + 1, first: r, count: n, scratch: s, serial: true)
                                }
                            }
                        }
                    }
                    profile?.lap("sequence-parallel layers")
                } else if total >= Self.rowParallelMinimumRows {
                    // Few long sequences: each thread owns a contiguous block of rows from one attention to the next.
                    let scratch = (0..<threads).map { _ in LayerScratch(configuration: c, rows: Self.pipelineChunk) }
                    func rowParallel(_ body: (Int, Int, LayerScratch) -> Void) {
                        ThreadPool.shared.parallelFor(threads) { b in
                            let begin = total * b / threads, end = total * (b + 1) / threads
                            var r = begin
                            while r < end {
                                let n = min(Self.pipelineChunk, end - r)
                                body(r, n, scratch[b]); r += n
                            }
                        }
                        profile?.lap("row-parallel layers")
                    }
                    rowParallel { r, n, s in rowsPass.preAttention(layer: 0, first: r, count: n, scratch: s, serial: true) }
                    for l in 0..<c.numHiddenLayers {
                        attend(l, sequences: 0..<tokens.count)
                        profile?.lap("attention")
                        rowParallel { r, n, s in
                            rowsPass.postAttention(layer: l, first: r, count: n, scratch: s, serial: true)
                            if l + 1 < c.numHiddenLayers {
                                rowsPass.preAttention(layer: l + 1, first: r, count: n, scratch: s, serial: true)
                            }
                        }
                    }
                } else {
                    // Few rows (decoding): one kernel at a time over every row, each GEMM split over the pool.
                    let s = LayerScratch(configuration: c, rows: total)
                    for l in 0..<c.numHiddenLayers {
                        rowsPass.preAttention(layer: l, first: 0, count: total, scratch: s, serial: false)
                        profile?.lap("norm + qkv + rope")
                        attend(l, sequences: 0..<tokens.count)
                        profile?.lap("attention")
                        rowsPass.postAttention(layer: l, first: 0, count: total, scratch: s, serial: false)
                        profile?.lap("o + norm + mlp")
                    }
                }
            }
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
            project(false, rows: sourceRows.count, n: c.vocabSize, k: d, x: hidden.data, ldx: d, weight: weights.lmHead,
                    packed: packed?.lmHead,
                    out: out.data, ldo: c.vocabSize, beta: 0)
            logits = out
        }
        profile?.lap("final norm + lm head")
        return ForwardOutput(hidden: hidden, logits: logits, rowStart: rowStart)
    }

    /// Consecutive sequences grouped into units of about `rowsPerUnit` rows (a longer sequence is a unit alone).
    static func sequenceUnits(seqStart: [Int], rowsPerUnit: Int) -> [Range<Int>] {
        var units: [Range<Int>] = []
        var first = 0
        for s in 0..<(seqStart.count - 1) {
            if s > first && seqStart[s + 1] - seqStart[first] > rowsPerUnit {
                units.append(first..<s); first = s
            }
        }
        if seqStart.count > 1 { units.append(first..<(seqStart.count - 1)) }
        return units
    }

    /// Causal grouped-query attention for every (sequence, head, query block), spread over the thread pool.
    /// Queries are read from the fused QKV rows; sequence s's keys/values are rows 0..<offsets[s]+len of
    /// keys[s]/values[s] (elements of `precision`) with row stride kvStride elements; the output goes to
    /// out[row, head * headDim ...]. A float16 cache is read as halves by the decode kernel; the GEMM paths widen
    /// the rows a block may see into float32 scratch first.
    /// A one-token block (decoding) takes the query heads sharing a key/value head together: in a single row they
    /// are adjacent, so the group is one [group, headDim] matrix against the shared keys.
    static func attend(qkv: UnsafeMutablePointer<Float>, qkvDim: Int, out: UnsafeMutablePointer<Float>, qDim: Int,
                       seqStart: [Int], sequences: Range<Int>, offsets: [Int], keys: [UnsafeRawPointer],
                       values: [UnsafeRawPointer], kvStride: Int, precision: KVPrecision, heads: Int, kvHeads: Int,
                       headDim hd: Int, scale: Float) {
        struct WorkItem { var sequence: Int; var firstHead: Int; var headCount: Int; var firstRow: Int; var rowCount: Int }
        let group = heads / kvHeads
        var items: [WorkItem] = []
        for s in sequences {
            let length = seqStart[s + 1] - seqStart[s]
            if length == 1 {
                for g in 0..<kvHeads {
                    items.append(WorkItem(sequence: s, firstHead: g * group, headCount: group, firstRow: 0, rowCount: 1))
                }
                continue
            }
            for h in 0..<heads {
                var r = 0
                while r < length {
                    let n = min(queryBlock, length - r)
                    items.append(WorkItem(sequence: s, firstHead: h, headCount: 1, firstRow: r, rowCount: n))
                    r += n
                }
            }
        }
        // Multiply-adds (causal blocks counted whole): a batch-1 decode step's attention is a few microseconds,
        // less than waking a pool thread costs.
        var multiplyAdds = 0
        for s in sequences {
            let length = seqStart[s + 1] - seqStart[s]
            multiplyAdds += 2 * heads * hd * length * (offsets[s] + length)
        }
        let serial = multiplyAdds < GEMM.parallelThreshold
        items.withUnsafeBufferPointer { work in
            func each(_ body: (Int) -> Void) {
                if serial { for i in 0..<work.count { body(i) } } else { ThreadPool.shared.parallelFor(work.count, body) }
            }
            each { index in
                let item = work[index]
                let s = item.sequence, kvHead = item.firstHead / group
                let context = offsets[s] + item.firstRow + item.rowCount   // keys this block may see
                let elementBytes = precision.bytesPerElement
                let kRaw = keys[s] + kvHead * hd * elementBytes, vRaw = values[s] + kvHead * hd * elementBytes
                let queries = qkv + (seqStart[s] + item.firstRow) * qkvDim + item.firstHead * hd
                let target = out + (seqStart[s] + item.firstRow) * qDim + item.firstHead * hd
                let scores = UnsafeMutablePointer<Float>.allocate(capacity: max(item.rowCount, item.headCount) * context)
                defer { scores.deallocate() }
                if item.rowCount == 1 && hd % 16 == 0 {
                    DecodeAttention.forward(queries: queries, heads: item.headCount, keys: kRaw, values: vRaw,
                                            precision: precision, stride: kvStride, context: context, headDim: hd,
                                            scale: scale, scores: scores, out: target)
                    return
                }
                // The GEMM paths read float32 rows: a float16 cache's rows are widened first.
                let widened = precision == .float16
                    ? DecodeAttention.widen(keys: kRaw, values: vRaw, stride: kvStride, rows: context, width: hd) : nil
                defer { widened?.deallocate() }
                var k = kRaw.assumingMemoryBound(to: Float.self), v = vRaw.assumingMemoryBound(to: Float.self)
                var kvStride = kvStride
                if let widened { (k, v, kvStride) = (UnsafePointer(widened), UnsafePointer(widened + context * hd), hd) }
                if item.headCount > 1 {
                    // One row, `group` heads stacked: every head sees the whole context.
                    gemm(true, m: item.headCount, n: context, k: hd, a: queries, lda: hd, b: k, ldb: kvStride,
                         transB: true, c: scores, ldc: context, alpha: scale, beta: 0)
                    Softmax.forward(out: scores, input: scores, rows: item.headCount, cols: context)
                    gemm(true, m: item.headCount, n: hd, k: context, a: scores, lda: context, b: v, ldb: kvStride,
                         transB: false, c: target, ldc: hd, beta: 0)
                } else {
                    gemm(true, m: item.rowCount, n: context, k: hd, a: queries, lda: qkvDim, b: k, ldb: kvStride,
                         transB: true, c: scores, ldc: context, alpha: scale, beta: 0)
                    Softmax.forwardCausal(out: scores, input: scores, rows: item.rowCount, cols: context,
                                          offset: offsets[s] + item.firstRow)
                    gemm(true, m: item.rowCount, n: hd, k: context, a: scores, lda: context, b: v, ldb: kvStride,
                         transB: false, c: target, ldc: qDim, beta: 0)
                }
            }
        }
    }
}
