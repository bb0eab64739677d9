// The packed-weight GEMM against GEMM's naive twin (double-checked by the packed layout's own naive twin): shapes
// that leave partial panels (n % 32), partial register tiles (m % 12) and several row chunks (m > 96), strided
// inputs and outputs whose padding must stay untouched, beta 0 (C never read) and beta != 0, serial and split
// over the pool.
import XCTest
@testable import Tensor

final class PackedMatrixTests: XCTestCase {
    let shapes = [(1, 1, 1), (1, 37, 19), (3, 32, 8), (12, 64, 16), (13, 33, 40), (31, 100, 64), (97, 65, 23),
                  (200, 130, 70), (1, 8195, 24)]

    func testPackedMatchesNaiveTwin() throws {
        try XCTSkipUnless(PackedMatrix.isSupported, "this CPU lacks AVX-512F: the engine uses OpenBLAS instead")
        for (m, n, k) in shapes {
            for beta: Float in [0, 0.5] {
                for serial in [true, false] {
                    check(m: m, n: n, k: k, beta: beta, serial: serial)
                }
            }
        }
    }

    /// The packed layout's own naive twin runs on every CPU: it pins the layout against GEMM's naive twin.
    func testPackedLayoutReferenceMatchesNaive() {
        for (m, n, k) in shapes {
            let (x, w, ldx, ldo) = inputs(m: m, n: n, k: k)
            let packed = PackedMatrix(weights: w.pointer, n: n, k: k)
            let out = randomBuffer([m, ldo], seed: 3), expected = randomBuffer([m, ldo], seed: 3)
            packed.multiplyReference(rows: m, x: x.pointer, ldx: ldx, out: out.data, ldo: ldo, beta: 0.25)
            GEMM.forwardNaive(m: m, n: n, k: k, a: x.pointer, lda: ldx, b: w.pointer, ldb: k, transB: true,
                              c: expected.data, ldc: ldo, beta: 0.25)
            assertClose(out, expected, tolerance: 1e-5 * Float(k), "reference \(m)x\(n)x\(k)")
        }
    }

    func inputs(m: Int, n: Int, k: Int) -> (x: FloatBuffer, w: FloatBuffer, ldx: Int, ldo: Int) {
        let ldx = k + 3, ldo = n + 5
        return (randomBuffer([m, ldx], seed: UInt64(m * 7 + k)), randomBuffer([n, k], seed: UInt64(n * 11 + k)), ldx, ldo)
    }

    func check(m: Int, n: Int, k: Int, beta: Float, serial: Bool) {
        let (x, w, ldx, ldo) = inputs(m: m, n: n, k: k)
        let packed = PackedMatrix(weights: w.pointer, n: n, k: k)
        let out = randomBuffer([m, ldo], seed: 3), expected = randomBuffer([m, ldo], seed: 3)
        if beta == 0 {   // beta 0 must not read the output: poison it (the padding keeps its values)
            for i in 0..<m { for j in 0..<n { out.data[i * ldo + j] = .nan } }
        }
        packed.multiply(rows: m, x: x.pointer, ldx: ldx, out: out.data, ldo: ldo, beta: beta, serial: serial)
        GEMM.forwardNaive(m: m, n: n, k: k, a: x.pointer, lda: ldx, b: w.pointer, ldb: k, transB: true,
                          c: expected.data, ldc: ldo, beta: beta)
        assertClose(out, expected, tolerance: 1e-5 * Float(k), "packed \(m)x\(n)x\(k) beta \(beta) serial \(serial)")
    }
}
