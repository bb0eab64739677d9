// The int8 item table: the quantiser against Swift's own rounding of every row (scale = max|w| / 127, values
// round-to-nearest-even of w / scale, a zero row all zeros) and its round-trip bound |w - s q| <= s / 2; the scoring
// kernel under every instruction set (portable, AVX2, AVX-512) against float64 sums over the dequantised rows
// computed here, for shapes that leave partial panels (n % 32), partial half panels (n % 16), partial row tiles
// (m % 12, m % 6), odd k (the kernels' two-accumulator k loop leaves a tail), k = 1, padded output rows that must stay
// untouched, serial and split over the pool.
import XCTest
@testable import Tensor

final class Int8MatrixTests: XCTestCase {
    let shapes = [(1, 1, 1), (1, 37, 19), (2, 32, 8), (3, 33, 7), (5, 47, 128), (12, 64, 16), (13, 33, 40),
                  (31, 100, 64), (7, 45, 1), (1, 8195, 24), (6, 17, 129), (25, 300, 128)]

    /// Rows with varied magnitudes: uniform, one spike, all negative, tiny, zero.
    func weights(n: Int, k: Int, seed: UInt64) -> FloatBuffer {
        let w = randomBuffer([n, k], seed: seed)
        for i in 0..<n {
            let row = w.data + i * k
            switch i % 5 {
            case 1: row[i % k] = 40
            case 2: for j in 0..<k { row[j] = -abs(row[j]) * 3 }
            case 3: for j in 0..<k { row[j] *= 1e-6 }
            case 4 where i % 10 == 9: for j in 0..<k { row[j] = 0 }
            default: break
            }
        }
        return w
    }

    /// Swift's quantisation of one row: (scale, values).
    func quantised(_ row: UnsafePointer<Float>, k: Int) -> (Float, [Int8]) {
        var largest: Float = 0
        for j in 0..<k { largest = max(largest, abs(row[j])) }
        let scale = largest / 127
        let values = (0..<k).map { j -> Int8 in
            guard scale > 0 else { return 0 }
            return Int8(max(-127, min(127, (row[j] / scale).rounded(.toNearestOrEven))))
        }
        return (scale, values)
    }

    func testQuantiserMatchesRoundingAndBound() {
        for (_, n, k) in shapes {
            let w = weights(n: n, k: k, seed: UInt64(n * 31 + k))
            let table = Int8Matrix(weights: w.pointer, n: n, k: k)
            for i in 0..<n {
                let row = w.pointer + i * k
                let (scale, values) = quantised(row, k: k)
                XCTAssertEqual(table.scale(i), scale, "scale of row \(i) of \(n)x\(k)")
                var reachesEnd = scale == 0
                for j in 0..<k {
                    let q = table.value(i, j)
                    XCTAssertEqual(q, values[j], "value (\(i), \(j)) of \(n)x\(k)")
                    XCTAssert(q != -128, "value (\(i), \(j)) is -128")
                    reachesEnd = reachesEnd || abs(Int(q)) == 127
                    // Round trip: within half a step (plus the float rounding of w / s).
                    let error = abs(Double(row[j]) - Double(scale) * Double(q))
                    XCTAssertLessThanOrEqual(error, Double(scale) * (0.5 + 1e-5), "round trip (\(i), \(j)) of \(n)x\(k)")
                }
                XCTAssert(reachesEnd, "row \(i) of \(n)x\(k): its largest value should map to +-127")
            }
        }
    }

    func testKernelMatchesFloat64OfDequantisedRowsUnderEveryISA() {
        var ran: [KernelISA] = []
        CPU.forEachAvailable { isa in
            ran.append(isa)
            for (m, n, k) in shapes {
                for serial in [true, false] { check(m: m, n: n, k: k, alpha: serial ? 1 : -2.5, serial: serial, "\(isa)") }
            }
        }
        print("int8 kernels checked: \(ran)")
    }

    /// A product big enough to split over the pool (batch 1, hidden 128: the serving shape).
    func testLargeBatchOneSplitOverPool() {
        CPU.forEachAvailable { isa in check(m: 1, n: 20_003, k: 128, alpha: 20, serial: false, "\(isa) large") }
    }

    func check(m: Int, n: Int, k: Int, alpha: Float, serial: Bool, _ what: String,
               file: StaticString = #filePath, line: UInt = #line) {
        let w = weights(n: n, k: k, seed: UInt64(n &* 7 &+ k))
        let ldx = k + 3, ldo = n + 5
        let x = randomBuffer([m, ldx], seed: UInt64(m * 13 + k))
        let table = Int8Matrix(weights: w.pointer, n: n, k: k)
        let sentinel: Float = 12345
        let out = FloatBuffer(shape: [m, ldo]) { _ in sentinel }
        table.multiply(rows: m, x: x.pointer, ldx: ldx, out: out.data, ldo: ldo, alpha: alpha, serial: serial)
        var worst = 0.0
        for j in 0..<n {
            let (scale, values) = quantised(w.pointer + j * k, k: k)
            for i in 0..<m {
                var sum = 0.0, magnitude = 0.0
                for kk in 0..<k {
                    let term = Double(x.data[i * ldx + kk]) * (Double(scale) * Double(values[kk]))
                    sum += term
                    magnitude += abs(term)
                }
                let expected = Double(alpha) * sum
                // float32 accumulation: error below k float32 roundings of the magnitudes summed.
                let bound = Double(abs(alpha)) * magnitude * Double(k + 2) * 6e-8 + 1e-30
                let error = abs(Double(out.data[i * ldo + j]) - expected)
                worst = max(worst, error / bound)
                if error > bound {
                    XCTFail("\(what) \(m)x\(n)x\(k) (\(i), \(j)): \(out.data[i * ldo + j]) vs \(expected)", file: file, line: line)
                    return
                }
            }
        }
        for i in 0..<m {
            for j in n..<ldo where out.data[i * ldo + j] != sentinel {
                XCTFail("\(what) \(m)x\(n)x\(k): padding (\(i), \(j)) written", file: file, line: line)
                return
            }
        }
    }
}
