// CausalAttention: grouped-query causal self-attention over a ragged training batch (sequences concatenated, each
// starting at position 0), reading q|k|v from fused rows qkv[rows, (heads + 2 kvHeads) * headDim] and writing
// out[rows, heads * headDim]. Nothing is saved: backward recomputes the probabilities block by block (as flash
// attention does), so activation memory stays linear in the sequence length. Softmax and its backward run CKernels'
// row kernels; the products run on GEMM.
import CKernels
import Tensor

enum CausalAttention {
    /// Query rows per block: a block of queries only ever sees keys up to its own last row.
    static let block = 64

    /// out = softmax(scale * Q K^T, causal) V per (sequence, query head), K/V of head h's group h / (heads/kvHeads).
    static func forward(qkv: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, seqStart: [Int],
                        heads: Int, kvHeads: Int, headDim hd: Int, scale: Float) {
        let qkvDim = (heads + 2 * kvHeads) * hd, qDim = heads * hd, group = heads / kvHeads
        var items: [(s: Int, h: Int, r0: Int)] = []
        for s in 0..<(seqStart.count - 1) {
            let length = seqStart[s + 1] - seqStart[s]
            for h in 0..<heads { for r0 in stride(from: 0, to: length, by: block) { items.append((s, h, r0)) } }
        }
        var longest = 0
        for s in 0..<(seqStart.count - 1) { longest = max(longest, seqStart[s + 1] - seqStart[s]) }
        ThreadPool.shared.parallelFor(items.count) { index in
            let (s, h, r0) = items[index]
            let length = seqStart[s + 1] - seqStart[s], n = min(block, length - r0), context = r0 + n
            let base = qkv + seqStart[s] * qkvDim, g = h / group
            let q = base + r0 * qkvDim + h * hd, k = base + qDim + g * hd, v = base + qDim + kvHeads * hd + g * hd
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: block * max(longest, 1))
            defer { scores.deallocate() }
            GEMM.forward(m: n, n: context, k: hd, a: q, lda: qkvDim, b: k, ldb: qkvDim, transB: true, c: scores,
                         ldc: context, alpha: scale)
            Softmax.forwardCausal(out: scores, input: scores, rows: n, cols: context, offset: r0)
            GEMM.forward(m: n, n: hd, k: context, a: scores, lda: context, b: v, ldb: qkvDim,
                         c: out + (seqStart[s] + r0) * qDim + h * hd, ldc: qDim)
        }
    }

    /// dQKV[rows, qkvDim] (every element written) from dOut[rows, heads * headDim]. One work item per
    /// (sequence, key/value head) runs that group's query heads serially, so dK and dV accumulate without races.
    static func backward(dQKV: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                         seqStart: [Int], heads: Int, kvHeads: Int, headDim hd: Int, scale: Float) {
        let qkvDim = (heads + 2 * kvHeads) * hd, qDim = heads * hd, group = heads / kvHeads
        let sequences = seqStart.count - 1, isa = CPU.isa.c
        var longest = 0
        for s in 0..<sequences { longest = max(longest, seqStart[s + 1] - seqStart[s]) }
        ThreadPool.shared.parallelFor(sequences * kvHeads) { index in
            let s = index / kvHeads, g = index % kvHeads
            let length = seqStart[s + 1] - seqStart[s]
            let base = qkv + seqStart[s] * qkvDim, dBase = dQKV + seqStart[s] * qkvDim
            let k = base + qDim + g * hd, v = base + qDim + kvHeads * hd + g * hd
            let dK = dBase + qDim + g * hd, dV = dBase + qDim + kvHeads * hd + g * hd
            for r in 0..<length {
                (dK + r * qkvDim).update(repeating: 0, count: hd)
                (dV + r * qkvDim).update(repeating: 0, count: hd)
            }
            let p = UnsafeMutablePointer<Float>.allocate(capacity: block * max(longest, 1))
            let dP = UnsafeMutablePointer<Float>.allocate(capacity: block * max(longest, 1))
            defer { p.deallocate(); dP.deallocate() }
            for h in (g * group)..<((g + 1) * group) {
                for r0 in stride(from: 0, to: length, by: block) {
                    let n = min(block, length - r0), context = r0 + n
                    let q = base + r0 * qkvDim + h * hd, dQ = dBase + r0 * qkvDim + h * hd
                    let dO = dOut + (seqStart[s] + r0) * qDim + h * hd
                    GEMM.forward(m: n, n: context, k: hd, a: q, lda: qkvDim, b: k, ldb: qkvDim, transB: true, c: p,
                                 ldc: context, alpha: scale)
                    Softmax.forwardCausal(out: p, input: p, rows: n, cols: context, offset: r0)
                    // dV += P^T dO; dP = dO V^T.
                    GEMM.forward(m: context, n: hd, k: n, a: p, lda: context, transA: true, b: dO, ldb: qDim,
                                 c: dV, ldc: qkvDim, beta: 1)
                    GEMM.forward(m: n, n: context, k: hd, a: dO, lda: qDim, b: v, ldb: qkvDim, transB: true, c: dP,
                                 ldc: context)
                    // dS = P * (dP - rowsum(P * dP)), over each row's visible keys (P is 0 beyond them).
                    r2ec_softmax_backward(isa, dP, p, Int32(n), Int32(context), Int32(r0 + 1), 1)
                    // dQ = scale dS K; dK += scale dS^T Q.
                    GEMM.forward(m: n, n: hd, k: context, a: dP, lda: context, b: k, ldb: qkvDim, c: dQ, ldc: qkvDim,
                                 alpha: scale)
                    GEMM.forward(m: context, n: hd, k: n, a: dP, lda: context, transA: true, b: q, ldb: qkvDim,
                                 c: dK, ldc: qkvDim, alpha: scale, beta: 1)
                }
            }
        }
    }
}
