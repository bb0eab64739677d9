// The packed-weight GEMM against GEMM's naive twin (double-checked by the packed layout's own naive twin), under
// every instruction set with a packed kernel (AVX2, AVX-512): shapes that leave partial panels (n % 32), partial
// register tiles (m % 12, m % 6) and several row chunks, k longer than one k block, strided inputs and outputs whose
// padding must stay untouched, alpha, beta 0 (C never read) and beta != 0, serial and split over the pool, re-packed
// weights. The bfloat16 kernel (AVX512_BF16) against its naive twin over the same rounded values, and against float64
// products of the bfloat16-rounded operands.
import XCTest
@testable import Tensor

final class PackedMatrixTests: XCTestCase {
    let shapes = [(1, 1, 1), (1, 37, 19), (3, 32, 8), (12, 64, 16), (13, 33, 40), (31, 100, 64), (97, 65, 23),
                  (200, 130, 70), (1, 8195, 24), (50, 40, 1030), (7, 45, 1)]

    func testPackedMatchesNaiveTwinUnderEveryISA() throws {
        try XCTSkipUnless(PackedMatrix.isSupported, "this CPU has no packed kernel: the engine uses OpenBLAS instead")
        var ran: [KernelISA] = []
        CPU.forEachAvailable { isa in
            guard PackedMatrix.isSupported else { return }
            ran.append(isa)
            for (m, n, k) in shapes {
                for (alpha, beta): (Float, Float) in [(1, 0), (1, 0.5), (-0.7, 0.25)] {
                    for serial in [true, false] {
                        check(m: m, n: n, k: k, alpha: alpha, beta: beta, serial: serial, "\(isa)")
                    }
                }
            }
        }
        print("packed kernels checked: \(ran)")
    }

    func testRepackSeesNewWeights() throws {
        try XCTSkipUnless(PackedMatrix.isSupported)
        let (m, n, k) = (20, 70, 33)
        let (x, w, ldx, ldo) = inputs(m: m, n: n, k: k)
        let packed = PackedMatrix(weights: w.pointer, n: n, k: k)
        for i in 0..<w.count { w.data[i] = -2 * w.data[i] + 0.1 }
        packed.repack(weights: w.pointer)
        let out = FloatBuffer(shape: [m, ldo]), expected = FloatBuffer(shape: [m, ldo])
        packed.multiply(rows: m, x: x.pointer, ldx: ldx, out: out.data, ldo: ldo, beta: 0, serial: true)
        GEMM.forwardNaive(m: m, n: n, k: k, a: x.pointer, lda: ldx, b: w.pointer, ldb: k, transB: true,
                          c: expected.data, ldc: ldo)
        assertClose(out, expected, tolerance: 1e-4, "repacked")
    }

    /// The packed layout's own naive twin runs on every CPU: it pins the layout against GEMM's naive twin.
    func testPackedLayoutReferenceMatchesNaive() {
        for (m, n, k) in shapes {
            let (x, w, ldx, ldo) = inputs(m: m, n: n, k: k)
            let packed = PackedMatrix(weights: w.pointer, n: n, k: k)
            let out = randomBuffer([m, ldo], seed: 3), expected = randomBuffer([m, ldo], seed: 3)
            packed.multiplyReference(rows: m, x: x.pointer, ldx: ldx, out: out.data, ldo: ldo, alpha: 2, beta: 0.25)
            GEMM.forwardNaive(m: m, n: n, k: k, a: x.pointer, lda: ldx, b: w.pointer, ldb: k, transB: true,
                              c: expected.data, ldc: ldo, alpha: 2, beta: 0.25)
            assertClose(out, expected, tolerance: 1e-5 * Float(k), "reference \(m)x\(n)x\(k)")
        }
    }

    func testBFloat16KernelMatchesTwinAndFloat64() throws {
        for (m, n, k) in shapes {
            let (x, w, ldx, ldo) = inputs(m: m, n: n, k: k)
            let packed = PackedMatrix(weights: w.pointer, n: n, k: k, precision: .bfloat16)
            // float64 sums of the bfloat16-rounded operands: the twin and the kernel differ from them only by
            // float32 accumulation.
            let expected = randomBuffer([m, ldo], seed: 3)
            for i in 0..<m {
                for j in 0..<n {
                    var sum = 0.0
                    for p in 0..<k { sum += Double(bf16(x.data[i * ldx + p])) * Double(bf16(w.data[j * k + p])) }
                    expected.data[i * ldo + j] = Float(0.5 * sum + 0.25 * Double(expected.data[i * ldo + j]))
                }
            }
            let twin = randomBuffer([m, ldo], seed: 3)
            packed.multiplyReference(rows: m, x: x.pointer, ldx: ldx, out: twin.data, ldo: ldo, alpha: 0.5, beta: 0.25)
            assertClose(twin, expected, tolerance: 2e-6 * Float(k), "bf16 twin \(m)x\(n)x\(k)")
            guard CPU.hasBF16 else { continue }
            for serial in [true, false] {
                let out = randomBuffer([m, ldo], seed: 3)
                packed.multiply(rows: m, x: x.pointer, ldx: ldx, out: out.data, ldo: ldo, alpha: 0.5, beta: 0.25,
                                serial: serial)
                assertClose(out, expected, tolerance: 2e-6 * Float(k), "bf16 kernel \(m)x\(n)x\(k) serial \(serial)")
            }
        }
        if !CPU.hasBF16 { throw XCTSkip("this CPU lacks AVX512_BF16: only the bfloat16 twin ran") }
    }

    /// Round to nearest even into bfloat16, widened back (Swift's own arithmetic, independent of the C code).
    func bf16(_ f: Float) -> Float {
        let bits = f.bitPattern
        let rounded = (bits &+ 0x7fff &+ ((bits >> 16) & 1)) & 0xffff_0000
        return Float(bitPattern: rounded)
    }

    func inputs(m: Int, n: Int, k: Int) -> (x: FloatBuffer, w: FloatBuffer, ldx: Int, ldo: Int) {
        let ldx = k + 3, ldo = n + 5
        return (randomBuffer([m, ldx], seed: UInt64(m * 7 + k)), randomBuffer([n, k], seed: UInt64(n * 11 + k)), ldx, ldo)
    }

    func check(m: Int, n: Int, k: Int, alpha: Float, beta: Float, serial: Bool, _ isa: String) {
        let (x, w, ldx, ldo) = inputs(m: m, n: n, k: k)
        let packed = PackedMatrix(weights: w.pointer, n: n, k: k)
        let out = randomBuffer([m, ldo], seed: 3), expected = randomBuffer([m, ldo], seed: 3)
        if beta == 0 {   // beta 0 must not read the output: poison it (the padding keeps its values)
            for i in 0..<m { for j in 0..<n { out.data[i * ldo + j] = .nan } }
        }
        packed.multiply(rows: m, x: x.pointer, ldx: ldx, out: out.data, ldo: ldo, alpha: alpha, beta: beta, serial: serial)
        GEMM.forwardNaive(m: m, n: n, k: k, a: x.pointer, lda: ldx, b: w.pointer, ldb: k, transB: true,
                          c: expected.data, ldc: ldo, alpha: alpha, beta: beta)
        assertClose(out, expected, tolerance: 1e-5 * Float(k),
                    "\(isa) packed \(m)x\(n)x\(k) alpha \(alpha) beta \(beta) serial \(serial)")
    }
}
