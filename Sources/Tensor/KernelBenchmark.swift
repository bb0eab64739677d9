// KernelBenchmark: times each SIMD kernel against its naive twin on the benchmark model's shapes.
// A measurement for `r2ec bench`, not a test; the twins' equality is what TensorTests check.

public enum KernelBenchmark {
    public struct Timing: Sendable {
        public var kernel: String
        public var shape: String
        public var fastSeconds: Double
        public var naiveSeconds: Double
        public var speedup: Double { naiveSeconds / fastSeconds }
    }

    /// Fast and naive time per call for every elementwise kernel at `tokens` rows of the benchmark model
    /// (d_model 256, q+k heads 4+2 of 64 inside a 512-wide QKV row, SwiGLU 704, attention 128x128 per head).
    public static func run(tokens t: Int, seconds: Double = 0.2) -> [Timing] {
        let d = 256, ffn = 704, qkv = 512, context = 128
        let x = FloatBuffer(shape: [t, d]) { Float($0 % 97) / 97 - 0.5 }
        let y = FloatBuffer(shape: [t, d]) { Float($0 % 89) / 89 - 0.5 }
        let weight = FloatBuffer(shape: [d]) { _ in 1.1 }
        let out = FloatBuffer(shape: [t, d])
        let rstd = FloatBuffer(shape: [t])
        let fused = FloatBuffer(shape: [t, 2 * ffn]) { Float($0 % 31) / 5 - 3 }
        let activated = FloatBuffer(shape: [t, ffn])
        let qkvBuffer = FloatBuffer(shape: [t, qkv]) { Float($0 % 13) / 13 }
        let positions = (0..<t).map { Int32($0 % context) }
        let table = RoPETable(headDim: 64, maxPositions: context)
        let scores = FloatBuffer(shape: [context, context]) { Float($0 % 41) / 8 }
        let probabilities = FloatBuffer(shape: [context, context])
        var timings: [Timing] = []
        func time(_ kernel: String, _ shape: String, fast: () -> Void, naive: () -> Void) {
            timings.append(Timing(kernel: kernel, shape: shape,
                                  fastSeconds: GEMMBenchmark.bestSecondsPerCall(seconds: seconds, fast),
                                  naiveSeconds: GEMMBenchmark.bestSecondsPerCall(seconds: seconds, naive)))
        }
        time("RMSNorm", "[\(t), \(d)]",
             fast: { RMSNorm.forward(out: out.data, input: x.pointer, weight: weight.pointer, rows: t, dim: d,
                                     rstd: rstd.data) },
             naive: { RMSNorm.forwardNaive(out: out.data, input: x.pointer, weight: weight.pointer, rows: t, dim: d,
                                           rstd: rstd.data) })
        positions.withUnsafeBufferPointer { p in
            time("RoPE", "[\(t), 6 heads, 64] stride \(qkv)",
                 fast: { RoPE.forward(x: qkvBuffer.data, positions: p.baseAddress!, rows: t, heads: 6, headDim: 64,
                                      rowStride: qkv, table: table) },
                 naive: { RoPE.forwardNaive(x: qkvBuffer.data, positions: p.baseAddress!, rows: t, heads: 6,
                                            headDim: 64, rowStride: qkv) })
        }
        time("Softmax causal", "[\(context), \(context)] x \(t / context * 4) heads",
             fast: { for _ in 0..<(t / context * 4) {
                 Softmax.forwardCausal(out: probabilities.data, input: scores.pointer, rows: context, cols: context,
                                       offset: 0, scale: 0.125) } },
             naive: { for _ in 0..<(t / context * 4) {
                 Softmax.forwardCausalNaive(out: probabilities.data, input: scores.pointer, rows: context,
                                            cols: context, offset: 0, scale: 0.125) } })
        time("SwiGLU fused", "[\(t), 2x\(ffn)]",
             fast: { SwiGLU.forwardFused(out: activated.data, gateUp: fused.pointer, rows: t, ffn: ffn) },
             naive: { SwiGLU.forwardFusedNaive(out: activated.data, gateUp: fused.pointer, rows: t, ffn: ffn) })
        time("SiLU", "[\(t * ffn)]",
             fast: { SiLU.forward(out: activated.data, input: fused.pointer, count: t * ffn) },
             naive: { SiLU.forwardNaive(out: activated.data, input: fused.pointer, count: t * ffn) })
        time("Residual", "[\(t * d)]",
             fast: { Residual.forward(out: out.data, a: x.pointer, b: y.pointer, count: t * d) },
             naive: { Residual.forwardNaive(out: out.data, a: x.pointer, b: y.pointer, count: t * d) })
        time("Scale", "[\(t * d)]",
             fast: { Scale.forward(out: out.data, input: x.pointer, scale: 0.5, count: t * d) },
             naive: { Scale.forwardNaive(out: out.data, input: x.pointer, scale: 0.5, count: t * d) })
        time("L2Normalize", "[\(t), \(d)]",
             fast: { L2Normalize.forward(out: out.data, input: x.pointer, rows: t, dim: d) },
             naive: { L2Normalize.forwardNaive(out: out.data, input: x.pointer, rows: t, dim: d) })
        return timings
    }
}
