// GEMM and Linear against their naive twins: every transpose combination, leading dimensions wider than the
// matrices, alpha/beta, shapes that are split across the pool (by panels and by rows), k longer than one k block,
// and the batched variants; under every instruction set (the project's kernels, or OpenBLAS for the portable path).
import XCTest
@testable import Tensor

final class GEMMTests: XCTestCase {
    func testForwardMatchesNaiveForAllTransposes() {
        forEachISA("testForwardMatchesNaiveForAllTransposes") {
            for threading in GEMMThreading.allCases {
                GEMM.threading = threading
                defer { GEMM.threading = .pool }
                for (m, n, k) in [(1, 1, 1), (3, 5, 7), (17, 33, 9), (130, 70, 65), (70, 300, 40), (40, 50, 1100), (300, 33, 20)] {
                    for transA in [false, true] {
                        for transB in [false, true] {
                            check(m: m, n: n, k: k, transA: transA, transB: transB, pad: 3, alpha: 0.5, beta: 0.25,
                                  "\(threading) \(m)x\(n)x\(k) tA \(transA) tB \(transB)")
                        }
                    }
                }
            }
        }
    }

    func testMatrixVectorShapesMatchNaive() {
        forEachISA("testMatrixVectorShapesMatchNaive") {
            // m == 1 and n == 1 go through sgemv; long ones are split over the pool.
            for (m, n, k) in [(1, 1, 1), (1, 37, 19), (1, 8195, 64), (41, 1, 23), (4099, 1, 80)] {
                for transA in [false, true] {
                    for transB in [false, true] {
                        check(m: m, n: n, k: k, transA: transA, transB: transB, pad: 2, alpha: 1.5, beta: 0.5,
                              "gemv \(m)x\(n)x\(k) tA \(transA) tB \(transB)")
                        check(m: m, n: n, k: k, transA: transA, transB: transB, pad: 2, alpha: 1, beta: 0,
                              "gemv beta 0 \(m)x\(n)x\(k) tA \(transA) tB \(transB)", nanC: true)
                    }
                }
            }
        }
    }

    func testSerialMatchesNaive() {
        forEachISA("testSerialMatchesNaive") {
            for (m, n, k) in [(1, 300, 17), (5, 1, 9), (33, 65, 40)] {
                let a = randomBuffer([m, k], seed: 30), b = randomBuffer([n, k], seed: 31)
                let c = FloatBuffer(shape: [m, n]), expected = FloatBuffer(shape: [m, n])
                GEMM.forwardSerial(m: m, n: n, k: k, a: a.pointer, b: b.pointer, transB: true, c: c.data, alpha: 2)
                GEMM.forwardNaive(m: m, n: n, k: k, a: a.pointer, b: b.pointer, transB: true, c: expected.data, alpha: 2)
                assertClose(c, expected, tolerance: 1e-4, "serial \(m)x\(n)x\(k)")
            }
        }
    }

    func testBetaZeroIgnoresGarbageInC() {
        forEachISA("testBetaZeroIgnoresGarbageInC") {
            let a = randomBuffer([4, 3], seed: 1), b = randomBuffer([3, 5], seed: 2)
            let c = FloatBuffer(shape: [4, 5]), expected = FloatBuffer(shape: [4, 5])
            c.fill(.nan)
            GEMM.forward(m: 4, n: 5, k: 3, a: a.pointer, b: b.pointer, c: c.data)
            GEMM.forwardNaive(m: 4, n: 5, k: 3, a: a.pointer, b: b.pointer, c: expected.data)
            assertClose(c, expected, tolerance: 1e-6, "beta 0 with NaN C")
        }
    }

    func testLargeSplitGEMMMatchesUnsplit() {
        forEachISA("testLargeSplitGEMMMatchesUnsplit") {
            // Big enough to be sliced over the pool both ways (m >= n and m < n).
            for (m, n, k) in [(515, 130, 256), (40, 8195, 64)] {
                let a = randomBuffer([m, k], seed: 3), b = randomBuffer([n, k], seed: 4)
                let split = FloatBuffer(shape: [m, n]), whole = FloatBuffer(shape: [m, n])
                GEMM.forward(m: m, n: n, k: k, a: a.pointer, b: b.pointer, transB: true, c: split.data)
                GEMM.threading = .single
                GEMM.forward(m: m, n: n, k: k, a: a.pointer, b: b.pointer, transB: true, c: whole.data)
                GEMM.threading = .pool
                assertClose(split, whole, tolerance: 1e-4, "split \(m)x\(n)x\(k)")
            }
        }
    }

    func testBatchedMatchesLoopOfNaive() {
        forEachISA("testBatchedMatchesLoopOfNaive") {
            let batch = 5, m = 9, n = 7, k = 13
            let a = randomBuffer([batch, m, k], seed: 5), b = randomBuffer([batch, n, k], seed: 6)
            let c = FloatBuffer(shape: [batch, m, n]), expected = FloatBuffer(shape: [batch, m, n])
            GEMM.forwardBatched(batch: batch, m: m, n: n, k: k, a: a.pointer, strideA: m * k, b: b.pointer,
                                strideB: n * k, transB: true, c: c.data, strideC: m * n, alpha: 0.3)
            for i in 0..<batch {
                GEMM.forwardNaive(m: m, n: n, k: k, a: a.pointer + i * m * k, b: b.pointer + i * n * k, transB: true,
                                  c: expected.data + i * m * n, alpha: 0.3)
            }
            assertClose(c, expected, tolerance: 1e-5, "strided batch")

            // Grouped-query layout: 4 query heads share 2 key heads inside [T, heads*headDim] rows.
            let tokens = 6, headDim = 8, qHeads = 4, kvHeads = 2
            let q = randomBuffer([tokens, qHeads * headDim], seed: 7), keys = randomBuffer([tokens, kvHeads * headDim], seed: 8)
            let scores = FloatBuffer(shape: [qHeads, tokens, tokens]), scoresNaive = FloatBuffer(shape: [qHeads, tokens, tokens])
            GEMM.forwardBatched(batch: qHeads, m: tokens, n: tokens, k: headDim, lda: qHeads * headDim,
                                ldb: kvHeads * headDim, transB: true) { h in
                (q.pointer + h * headDim, keys.pointer + (h / 2) * headDim, scores.data + h * tokens * tokens)
            }
            for h in 0..<qHeads {
                GEMM.forwardNaive(m: tokens, n: tokens, k: headDim, a: q.pointer + h * headDim, lda: qHeads * headDim,
                                  b: keys.pointer + (h / 2) * headDim, ldb: kvHeads * headDim, transB: true,
                                  c: scoresNaive.data + h * tokens * tokens)
            }
            assertClose(scores, scoresNaive, tolerance: 1e-5, "grouped batch")
        }
    }

    func testLinearMatchesNaive() {
        forEachISA("testLinearMatchesNaive") {
            for (rows, inDim, outDim) in [(1, 5, 3), (7, 33, 17), (130, 256, 512)] {
                let x = randomBuffer([rows, inDim], seed: 9), w = randomBuffer([outDim, inDim], seed: 10)
                let bias = randomBuffer([outDim], seed: 11)
                let fast = FloatBuffer(shape: [rows, outDim]), slow = FloatBuffer(shape: [rows, outDim])
                for withBias in [false, true] {
                    Linear.forward(out: fast.data, input: x.pointer, weight: w.pointer,
                                   bias: withBias ? bias.pointer : nil, rows: rows, inDim: inDim, outDim: outDim)
                    Linear.forwardNaive(out: slow.data, input: x.pointer, weight: w.pointer,
                                        bias: withBias ? bias.pointer : nil, rows: rows, inDim: inDim, outDim: outDim)
                    assertClose(fast, slow, tolerance: 1e-4, "Linear [\(rows), \(inDim)] -> \(outDim) bias \(withBias)")
                }
            }
        }
    }

    private func check(m: Int, n: Int, k: Int, transA: Bool, transB: Bool, pad: Int, alpha: Float, beta: Float,
                       _ what: String, nanC: Bool = false) {
        let rowsA = transA ? k : m, colsA = transA ? m : k
        let rowsB = transB ? n : k, colsB = transB ? k : n
        let lda = colsA + pad, ldb = colsB + pad, ldc = n + pad
        let a = randomBuffer([rowsA, lda], seed: 20), b = randomBuffer([rowsB, ldb], seed: 21)
        let c = randomBuffer([m, ldc], seed: 22), expected = randomBuffer([m, ldc], seed: 22)
        if nanC {   // beta == 0 must not read C: poison the output area (padding keeps its values)
            for i in 0..<m { for j in 0..<n { c.data[i * ldc + j] = .nan } }
        }
        GEMM.forward(m: m, n: n, k: k, a: a.pointer, lda: lda, transA: transA, b: b.pointer, ldb: ldb,
                     transB: transB, c: c.data, ldc: ldc, alpha: alpha, beta: beta)
        GEMM.forwardNaive(m: m, n: n, k: k, a: a.pointer, lda: lda, transA: transA, b: b.pointer, ldb: ldb,
                          transB: transB, c: expected.data, ldc: ldc, alpha: alpha, beta: beta)
        // The padding columns of C must be untouched too: comparing whole buffers covers them.
        assertClose(c, expected, tolerance: 1e-5 * Float(k), what)
    }
}
