// Every optimised kernel against its naive twin, on sizes whose tails are not a multiple of the SIMD width
// and on sizes large enough to be split across the thread pool.
import Data
import XCTest
@testable import Tensor

final class KernelTwinTests: XCTestCase {
    let oddDims = [1, 7, 15, 16, 17, 33, 64, 100, 257]

    func testRMSNormMatchesNaive() {
        for (rows, dim) in [(1, 1), (3, 7), (5, 17), (9, 64), (2, 257), (300, 256)] {
            let x = randomBuffer([rows, dim], seed: 1), w = randomBuffer([dim], seed: 2)
            let fast = FloatBuffer(shape: [rows, dim]), slow = FloatBuffer(shape: [rows, dim])
            let rstdFast = FloatBuffer(shape: [rows]), rstdSlow = FloatBuffer(shape: [rows])
            RMSNorm.forward(out: fast.data, input: x.pointer, weight: w.pointer, rows: rows, dim: dim, eps: 1e-6,
                            rstd: rstdFast.data)
            RMSNorm.forwardNaive(out: slow.data, input: x.pointer, weight: w.pointer, rows: rows, dim: dim,
                                 eps: 1e-6, rstd: rstdSlow.data)
            assertClose(fast, slow, tolerance: 1e-5, "RMSNorm [\(rows), \(dim)]")
            assertClose(rstdFast, rstdSlow, tolerance: 1e-4, "RMSNorm rstd [\(rows), \(dim)]")
        }
    }

    func testRMSNormInPlace() {
        let x = randomBuffer([3, 33], seed: 3), w = randomBuffer([33], seed: 4)
        let expected = FloatBuffer(shape: [3, 33])
        RMSNorm.forwardNaive(out: expected.data, input: x.pointer, weight: w.pointer, rows: 3, dim: 33)
        RMSNorm.forward(out: x.data, input: x.pointer, weight: w.pointer, rows: 3, dim: 33)
        assertClose(x, expected, tolerance: 1e-5, "RMSNorm in place")
    }

    func testRoPEMatchesNaive() {
        for (rows, heads, headDim, stride) in [(5, 3, 2, 6), (7, 2, 34, 100), (4, 4, 64, 512), (200, 2, 64, 128)] {
            var generator = SplitMix64(seed: 5)
            let positions = (0..<rows).map { _ in Int32.random(in: 0..<500, using: &generator) }
            let fast = randomBuffer([rows, stride], seed: 6), slow = FloatBuffer(shape: [rows, stride])
            slow.copy(from: fast)
            let table = RoPETable(headDim: headDim, maxPositions: 500, theta: 1_000_000)
            positions.withUnsafeBufferPointer { p in
                RoPE.forward(x: fast.data, positions: p.baseAddress!, rows: rows, heads: heads, headDim: headDim,
                             rowStride: stride, table: table)
                RoPE.forwardNaive(x: slow.data, positions: p.baseAddress!, rows: rows, heads: heads,
                                  headDim: headDim, rowStride: stride, theta: 1_000_000)
            }
            assertClose(fast, slow, tolerance: 1e-5, "RoPE rows \(rows) heads \(heads) headDim \(headDim)")
            // Floats past the heads in each row are untouched.
            let untouched = randomBuffer([rows, stride], seed: 6)
            for r in 0..<rows {
                for j in (heads * headDim)..<stride { XCTAssertEqual(fast.data[r * stride + j], untouched.data[r * stride + j]) }
            }
        }
    }

    func testSoftmaxMatchesNaive() {
        for cols in oddDims {
            for scale: Float in [1, 0.125, -2] {
                let rows = 5
                let x = randomBuffer([rows, cols], seed: 7, range: -20...20)
                let fast = FloatBuffer(shape: [rows, cols]), slow = FloatBuffer(shape: [rows, cols])
                Softmax.forward(out: fast.data, input: x.pointer, rows: rows, cols: cols, scale: scale)
                Softmax.forwardNaive(out: slow.data, input: x.pointer, rows: rows, cols: cols, scale: scale)
                assertClose(fast, slow, tolerance: 2e-6, "Softmax cols \(cols) scale \(scale)")
            }
        }
    }

    func testMaskedAndCausalSoftmaxMatchNaive() {
        let rows = 6, cols = 37
        let x = randomBuffer([rows, cols], seed: 8, range: -5...5)
        let lengths: [Int32] = [0, 1, 16, 17, 36, 37]
        let fast = FloatBuffer(shape: [rows, cols]), slow = FloatBuffer(shape: [rows, cols])
        lengths.withUnsafeBufferPointer { l in
            Softmax.forwardMasked(out: fast.data, input: x.pointer, lengths: l.baseAddress!, rows: rows, cols: cols,
                                  scale: 0.5)
            Softmax.forwardMaskedNaive(out: slow.data, input: x.pointer, lengths: l.baseAddress!, rows: rows,
                                       cols: cols, scale: 0.5)
        }
        assertClose(fast, slow, tolerance: 2e-6, "masked softmax")
        for r in 0..<rows {
            for j in Int(lengths[r])..<cols { XCTAssertEqual(fast.data[r * cols + j], 0, "masked lane is 0") }
        }
        for offset in [0, 5, 31] {
            Softmax.forwardCausal(out: fast.data, input: x.pointer, rows: rows, cols: cols, offset: offset)
            Softmax.forwardCausalNaive(out: slow.data, input: x.pointer, rows: rows, cols: cols, offset: offset)
            assertClose(fast, slow, tolerance: 2e-6, "causal softmax offset \(offset)")
        }
    }

    func testSoftmaxIsStableForHugeInputs() {
        let x = FloatBuffer(shape: [1, 3], values: [1e30, 1e30, -1e30])
        let y = FloatBuffer(shape: [1, 3])
        Softmax.forward(out: y.data, input: x.pointer, rows: 1, cols: 3)
        XCTAssertEqual(y.toArray(), [0.5, 0.5, 0])
    }

    func testSiLUAndSwiGLUMatchNaive() {
        for count in oddDims + [100_003] {
            let x = randomBuffer([count], seed: 9, range: -30...30)
            let fast = FloatBuffer(shape: [count]), slow = FloatBuffer(shape: [count])
            SiLU.forward(out: fast.data, input: x.pointer, count: count)
            SiLU.forwardNaive(out: slow.data, input: x.pointer, count: count)
            assertClose(fast, slow, tolerance: 1e-5, "SiLU \(count)")
        }
        for (rows, ffn) in [(1, 1), (3, 17), (4, 704), (70, 705)] {
            let gateUp = randomBuffer([rows, 2 * ffn], seed: 10, range: -6...6)
            let fast = FloatBuffer(shape: [rows, ffn]), slow = FloatBuffer(shape: [rows, ffn])
            SwiGLU.forwardFused(out: fast.data, gateUp: gateUp.pointer, rows: rows, ffn: ffn)
            SwiGLU.forwardFusedNaive(out: slow.data, gateUp: gateUp.pointer, rows: rows, ffn: ffn)
            assertClose(fast, slow, tolerance: 1e-5, "SwiGLU fused [\(rows), \(ffn)]")
            let gate = randomBuffer([rows, ffn], seed: 11), up = randomBuffer([rows, ffn], seed: 12)
            SwiGLU.forward(out: fast.data, gate: gate.pointer, up: up.pointer, rows: rows, ffn: ffn)
            SwiGLU.forwardNaive(out: slow.data, gate: gate.pointer, up: up.pointer, rows: rows, ffn: ffn)
            assertClose(fast, slow, tolerance: 1e-6, "SwiGLU [\(rows), \(ffn)]")
        }
    }

    func testResidualAndScaleMatchNaive() {
        for count in oddDims + [70_001, 300_017] {
            let a = randomBuffer([count], seed: 13), b = randomBuffer([count], seed: 14)
            let fast = FloatBuffer(shape: [count]), slow = FloatBuffer(shape: [count])
            Residual.forward(out: fast.data, a: a.pointer, b: b.pointer, count: count)
            Residual.forwardNaive(out: slow.data, a: a.pointer, b: b.pointer, count: count)
            XCTAssertEqual(fast.toArray(), slow.toArray(), "Residual \(count)")
            Scale.forward(out: fast.data, input: a.pointer, scale: 0.37, count: count)
            Scale.forwardNaive(out: slow.data, input: a.pointer, scale: 0.37, count: count)
            XCTAssertEqual(fast.toArray(), slow.toArray(), "Scale \(count)")
        }
    }

    func testL2NormalizeMatchesNaive() {
        for (rows, dim) in [(1, 1), (4, 15), (3, 17), (300, 256)] {
            let x = randomBuffer([rows, dim], seed: 15)
            let fast = FloatBuffer(shape: [rows, dim]), slow = FloatBuffer(shape: [rows, dim])
            L2Normalize.forward(out: fast.data, input: x.pointer, rows: rows, dim: dim)
            L2Normalize.forwardNaive(out: slow.data, input: x.pointer, rows: rows, dim: dim)
            assertClose(fast, slow, tolerance: 1e-6, "L2Normalize [\(rows), \(dim)]")
        }
        let zeros = FloatBuffer(shape: [1, 5]), out = FloatBuffer(shape: [1, 5])
        L2Normalize.forward(out: out.data, input: zeros.pointer, rows: 1, dim: 5)
        XCTAssertEqual(out.toArray(), [0, 0, 0, 0, 0], "a zero row stays zero, not NaN")
    }

    func testEmbeddingMatchesNaive() {
        let table = randomBuffer([11, 19], seed: 16)
        let ids: [Int32] = [3, 0, 10, 3, 7]
        let fast = FloatBuffer(shape: [5, 19]), slow = FloatBuffer(shape: [5, 19])
        ids.withUnsafeBufferPointer { p in
            Embedding.forward(out: fast.data, table: table.pointer, ids: p.baseAddress!, rows: 5, dim: 19, vocab: 11)
            Embedding.forwardNaive(out: slow.data, table: table.pointer, ids: p.baseAddress!, rows: 5, dim: 19,
                                   vocab: 11)
        }
        XCTAssertEqual(fast.toArray(), slow.toArray())
    }
}
