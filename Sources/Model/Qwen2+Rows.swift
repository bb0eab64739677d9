// The row-wise halves of a Qwen2 decoder layer over a block of rows of the concatenated batch: before attention
// (input norm, fused QKV + bias, rotary, appending keys/values to the caches) and after it (o-proj into the residual
// stream, post-attention norm, fused gate|up, SwiGLU, down-proj into the residual stream). Serial mode runs every
// GEMM single-threaded (the caller parallelises over blocks); otherwise each GEMM is split over the pool.
import COpenBLAS
import Foundation
import Tensor

/// Floats whose every element is written before it is read (activations of one pass): 64-byte aligned and not
/// zero-filled, since clearing megabytes per pass showed up in profiles.
final class Workspace {
    let data: UnsafeMutablePointer<Float>
    init(_ count: Int) {
        data = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: max(1, count))
    }
    deinit { data.deallocate() }
}

/// Per-thread temporaries of the row-wise layer halves, sized for `rows` rows.
final class LayerScratch {
    let normed: Workspace
    let gateUp: Workspace
    let activated: Workspace
    init(configuration c: Qwen2Configuration, rows: Int) {
        normed = Workspace(rows * c.hiddenSize)
        gateUp = Workspace(rows * 2 * c.intermediateSize)
        activated = Workspace(rows * c.intermediateSize)
    }
}

/// Scratch buffers handed to whichever pool thread runs a work unit (units outnumber threads).
final class ScratchPool: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [LayerScratch] = []
    private let configuration: Qwen2Configuration
    private let rows: Int
    init(configuration: Qwen2Configuration, rows: Int) { self.configuration = configuration; self.rows = rows }
    func take() -> LayerScratch {
        lock.lock(); defer { lock.unlock() }
        return free.popLast() ?? LayerScratch(configuration: configuration, rows: rows)
    }
    func give(_ s: LayerScratch) { lock.lock(); free.append(s); lock.unlock() }
}

/// The buffers of one forward pass that the row-wise halves read and write.
struct LayerRows {
    let model: Qwen2Model
    let x: UnsafeMutablePointer<Float>
    let qkv: UnsafeMutablePointer<Float>
    let attention: UnsafeMutablePointer<Float>
    let positions: UnsafePointer<Int32>
    let rowSequence: UnsafePointer<Int>
    let seqStart: [Int]
    let offsets: [Int]
    let caches: [KVCache]?

    /// qkv[rows] = rope(norm1(x[rows]) · Wqkv^T + b), and the new keys/values copied into the caches.
    func preAttention(layer l: Int, first r0: Int, count n: Int, scratch: LayerScratch, serial: Bool) {
        let c = model.configuration, w = model.weights.layers[l], packed = model.packed?.layers[l]
        let d = c.hiddenSize, hd = c.headDim, qkvDim = c.qkvRows
        let qDim = c.numAttentionHeads * hd, kvDim = c.numKeyValueHeads * hd
        RMSNorm.forward(out: scratch.normed.data, input: x + r0 * d, weight: w.inputNorm, rows: n, dim: d, eps: c.rmsNormEps)
        let out = qkv + r0 * qkvDim
        for r in 0..<n { (out + r * qkvDim).update(from: w.qkvBias, count: qkvDim) }
        project(serial, rows: n, n: qkvDim, k: d, x: scratch.normed.data, ldx: d, weight: w.qkvWeight,
                packed: packed?.qkv, out: out, ldo: qkvDim, beta: 1)
        // q and k rotate in place inside the fused rows (k's heads follow q's).
        RoPE.forward(x: out, positions: positions + r0, rows: n, heads: c.numAttentionHeads + c.numKeyValueHeads,
                     headDim: hd, rowStride: qkvDim, table: model.rope)
        if let caches {
            for r in r0..<(r0 + n) {
                let s = rowSequence[r], row = qkv + r * qkvDim
                caches[s].store(layer: l, position: offsets[s] + r - seqStart[s], key: row + qDim, value: row + qDim + kvDim)
            }
        }
    }

    /// x[rows] += attention[rows] · Wo^T; x[rows] += swiglu(norm2(x[rows]) · Wgu^T) · Wd^T.
    func postAttention(layer l: Int, first r0: Int, count n: Int, scratch: LayerScratch, serial: Bool) {
        let c = model.configuration, w = model.weights.layers[l], packed = model.packed?.layers[l]
        let d = c.hiddenSize, ffn = c.intermediateSize, qDim = c.numAttentionHeads * c.headDim
        let xs = x + r0 * d
        project(serial, rows: n, n: d, k: qDim, x: attention + r0 * qDim, ldx: qDim, weight: w.outputWeight,
                packed: packed?.output, out: xs, ldo: d, beta: 1)
        RMSNorm.forward(out: scratch.normed.data, input: xs, weight: w.postAttentionNorm, rows: n, dim: d, eps: c.rmsNormEps)
        project(serial, rows: n, n: 2 * ffn, k: d, x: scratch.normed.data, ldx: d, weight: w.gateUpWeight,
                packed: packed?.gateUp, out: scratch.gateUp.data, ldo: 2 * ffn, beta: 0)
        SwiGLU.forwardFused(out: scratch.activated.data, gateUp: scratch.gateUp.data, rows: n, ffn: ffn)
        project(serial, rows: n, n: d, k: ffn, x: scratch.activated.data, ldx: ffn, weight: w.downWeight,
                packed: packed?.down, out: xs, ldo: d, beta: 1)
    }
}

/// out[rows, n] = x[rows, k] · W[n, k]^T + beta · out, a projection by Hugging Face-layout weights: through the
/// packed copy when the model has one, else OpenBLAS. There, one row (a batch-1 decode step, the LM head of one
/// sequence) goes through sgemv: sgemm packs the whole weight matrix even for one row, which made the 8192 x 256
/// LM head 5x slower than sgemv here (1.1 ms vs 0.2 ms).
func project(_ serial: Bool, rows m: Int, n: Int, k: Int, x: UnsafePointer<Float>, ldx: Int,
             weight: UnsafePointer<Float>, packed: PackedMatrix?, out: UnsafeMutablePointer<Float>, ldo: Int,
             beta: Float) {
    if let packed {
        packed.multiply(rows: m, x: x, ldx: ldx, out: out, ldo: ldo, beta: beta, serial: serial)
        return
    }
    guard m == 1 else {
        gemm(serial, m: m, n: n, k: k, a: x, lda: ldx, b: weight, ldb: k, transB: true, c: out, ldc: ldo, beta: beta)
        return
    }
    BLAS.configure()
    func rowsOfW(_ range: Range<Int>) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, blasint(range.count), blasint(k), 1, weight + range.lowerBound * k,
                    blasint(k), x, 1, beta, out + range.lowerBound, 1)
    }
    if serial || n * k < GEMM.parallelThreshold {
        rowsOfW(0..<n)
    } else {
        ThreadPool.shared.parallelSlices(n, minimumPerSlice: 64) { rowsOfW($0) }
    }
}

/// C = alpha · A · op(B) + beta · C, row-major: on the calling thread alone when `serial` (the caller is one of
/// several threads working on disjoint rows), else split over the pool (Tensor's GEMM either way).
@inline(__always)
func gemm(_ serial: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
          transB: Bool, c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, beta: Float) {
    if serial {
        GEMM.forwardSerial(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transB: transB, c: c, ldc: ldc,
                           alpha: alpha, beta: beta)
    } else {
        GEMM.forward(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, transB: transB, c: c, ldc: ldc,
                     alpha: alpha, beta: beta)
    }
}
