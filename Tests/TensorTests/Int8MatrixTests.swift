// The int8 item table: the quantiser against Swift's own rounding of every row (scale = max|w| / 127, values
// round-to-nearest-even of w / scale, a zero row all zeros) and its round-trip bound |w - s q| <= s / 2; the scoring
// kernel under every instruction set (portable, AVX2, AVX-512) against float64 sums over the dequantised rows
// computed here, for shapes that leave partial panels (n % 32), partial half panels (n % 16), partial row tiles
// (m % 12, m % 6), odd k (the kernels' two-accumulator k loop leaves a tail), k = 1, padded output rows that must stay
// untouched, serial and split over the pool. The VNNI pass (quantised queries) against float64 sums of Swift's own
// quantisation of the queries, with its error bound; the exact re-score against float64; and the ranking path: its
// rows' top-k (masked, and among a candidate list) equal the top-k of float64 scores over the dequantised table.
import XCTest
import Data
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
                XCTAssertEqual(table.sum(i), values.reduce(Int32(0)) { $0 + Int32($1) }, "sum of row \(i) of \(n)x\(k)")
            }
            var largest = 0.0
            for i in 0..<n {
                let (scale, values) = quantised(w.pointer + i * k, k: k)
                largest = max(largest, Double(scale) * values.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot())
            }
            XCTAssertEqual(Double(table.largestRowNorm), largest, accuracy: largest * 1e-6, "largest row norm of \(n)x\(k)")
        }
    }

    /// The VNNI pass: every score is alpha · s · (t1 · sum(xq1 q) + t2 · sum(xq2 q)) with xq1 Swift's quantisation of
    /// the query row and xq2 that of its remainder (float64 here; the kernel's integer sums are exact, so only the
    /// final float products round), and the returned error is ||x - t1 xq1 - t2 xq2||; the scores then lie within the
    /// bound multiplyForRanking uses of the exact ones.
    func testVNNIPassMatchesFloat64OfQuantisedQueries() throws {
        try XCTSkipUnless(Int8Matrix.detectedVNNI && CPU.detected == .avx512, "no AVX512_VNNI on this CPU")
        CPU.withISA(.avx512) {
            for (m, n, k) in shapes + [(9, 70, 128), (17, 1000, 130), (1, 20_003, 128)] {
                for serial in [true, false] { checkVNNI(m: m, n: n, k: k, alpha: serial ? 20 : -0.5, serial: serial) }
            }
        }
    }

    func checkVNNI(m: Int, n: Int, k: Int, alpha: Float, serial: Bool, file: StaticString = #filePath, line: UInt = #line) {
        let w = weights(n: n, k: k, seed: UInt64(n &* 5 &+ k))
        let ldx = k + 1, ldo = n + 3
        let x = randomBuffer([m, ldx], seed: UInt64(m * 11 + k))
        if m > 2 { for j in 0..<ldx { x.data[2 * ldx + j] = 0 } }   // a zero query row
        let table = Int8Matrix(weights: w.pointer, n: n, k: k)
        let sentinel: Float = 54321
        let out = FloatBuffer(shape: [m, ldo]) { _ in sentinel }
        let errors = table.multiplyQuantised(rows: m, x: x.pointer, ldx: ldx, out: out.data, ldo: ldo, alpha: alpha, serial: serial)
        let dequantised = (0..<n).map { j in quantised(w.pointer + j * k, k: k) }
        for i in 0..<m {
            let query = x.pointer + i * ldx
            let (step, xq) = quantised(query, k: k)
            let remainder = (0..<k).map { Float(Double(query[$0]) - Double(step) * Double(xq[$0])) }
            let (fine, xq2) = remainder.withUnsafeBufferPointer { quantised($0.baseAddress!, k: k) }
            var error = 0.0
            for kk in 0..<k {
                let e = Double(query[kk]) - Double(step) * Double(xq[kk]) - Double(fine) * Double(xq2[kk])
                error += e * e
            }
            XCTAssertEqual(Double(errors[i]), error.squareRoot(), accuracy: 1e-6 * (1 + error.squareRoot()),
                           "query error of row \(i), \(m)x\(n)x\(k)", file: file, line: line)
            for j in 0..<n {
                let (scale, values) = dequantised[j]
                var coarse = 0.0, remaining = 0.0, exact = 0.0
                for kk in 0..<k {
                    coarse += Double(xq[kk]) * Double(values[kk])
                    remaining += Double(xq2[kk]) * Double(values[kk])
                    exact += Double(query[kk]) * Double(scale) * Double(values[kk])
                }
                let factor = Double(alpha) * Double(scale)
                let terms = (factor * Double(step) * coarse, factor * Double(fine) * remaining)
                let expected = terms.0 + terms.1
                let got = Double(out.data[i * ldo + j])
                // The products alpha · t, · s, the conversions and the sum round: a few float32 roundings of the terms.
                if abs(got - expected) > (abs(terms.0) + abs(terms.1)) * 5e-7 + 1e-30 {
                    XCTFail("VNNI \(m)x\(n)x\(k) (\(i), \(j)): \(got) vs \(expected)", file: file, line: line)
                    return
                }
                let bound = Double(abs(alpha)) * Double(table.largestRowNorm) * Double(errors[i]) * 1.0001
                    + (abs(terms.0) + abs(terms.1)) * 1e-6
                if abs(got - Double(alpha) * exact) > bound {
                    XCTFail("VNNI \(m)x\(n)x\(k) (\(i), \(j)): \(got) is off the exact \(Double(alpha) * exact) by more than \(bound)",
                            file: file, line: line)
                    return
                }
            }
            for j in n..<ldo where out.data[i * ldo + j] != sentinel {
                XCTFail("VNNI \(m)x\(n)x\(k): padding (\(i), \(j)) written", file: file, line: line)
                return
            }
        }
    }

    /// The ranking path under every instruction set (VNNI where the CPU has it, else `multiply`): for seeded tables
    /// and queries, each row's top-k outside a masked set (k + masked <= depth), and its top-k among a candidate list,
    /// equal the top-k of float64 scores over the dequantised table; the re-scored values equal float64's rounded.
    func testRankingTopKEqualsExactTopKOfTheInt8Table() {
        CPU.forEachAvailable { isa in
            for (m, n, k) in [(5, 20_003, 128), (3, 4_000, 37), (2, 33, 8)] {
                let w = weights(n: n, k: k, seed: UInt64(n + k))
                let x = randomBuffer([m, k], seed: UInt64(m * 3 + k))
                let table = Int8Matrix(weights: w.pointer, n: n, k: k)
                let alpha: Float = 20
                var generator = SplitMix64(seed: UInt64(n))
                let depths = (0..<m).map { i in i == 1 ? n : [30, 12, 200][i % 3] }
                let masks = depths.map { depth in Set((0..<(depth >= n ? 5 : depth / 2)).map { _ in Int(generator.next() % UInt64(n)) }) }
                let candidates: [[Int]?] = (0..<m).map { i in i % 2 == 0 ? (0..<50).map { _ in Int(generator.next() % UInt64(n)) } : nil }
                let out = FloatBuffer(shape: [m, n])
                let rescored = table.multiplyForRanking(rows: m, x: x.pointer, ldx: k, out: out.data, ldo: n, alpha: alpha,
                                                        depths: depths, exact: candidates)
                let dequantised = (0..<n).map { j -> [Double] in
                    let (scale, values) = quantised(w.pointer + j * k, k: k)
                    return values.map { Double(scale) * Double($0) }
                }
                for i in 0..<m {
                    let exact = dequantised.map { row in
                        var sum = 0.0
                        for kk in 0..<k { sum += Double(x.data[i * k + kk]) * row[kk] }
                        return Double(alpha) * sum
                    }
                    func exactTop(_ kk: Int, masked: Set<Int>, among: [Int]? = nil) -> [Int] {
                        Array((among.map { Array(Set($0)) } ?? Array(0..<n)).filter { !masked.contains($0) }
                            .sorted { exact[$0] != exact[$1] ? exact[$0] > exact[$1] : $0 < $1 }.prefix(kk))
                    }
                    let row = UnsafeBufferPointer(start: out.data + i * n, count: n)
                    let kk = min(10, depths[i] - masks[i].count)
                    let got = Ranking.topK(row, k: kk, masked: masks[i]).map(\.index)
                    XCTAssertEqual(got, exactTop(kk, masked: masks[i]), "\(isa) \(m)x\(n)x\(k) row \(i): masked top-\(kk)")
                    for item in got {
                        XCTAssertEqual(Double(row[item]), exact[item], accuracy: abs(exact[item]) * 1e-6 + 1e-6,
                                       "\(isa) row \(i) item \(item)")
                    }
                    if let among = candidates[i] {
                        let gotAmong = Ranking.topK(row, k: 5, masked: [], allowed: among).map(\.index)
                        XCTAssertEqual(gotAmong, exactTop(5, masked: [], among: among), "\(isa) \(m)x\(n)x\(k) row \(i): candidates")
                    }
                    if Int8Matrix.vnniAvailable && depths[i] < n / 10 {
                        XCTAssertLessThan(rescored[i], n / 4, "\(isa) \(m)x\(n)x\(k) row \(i): re-scored \(rescored[i]) of \(n)")
                    }
                }
                print("\(isa) \(m)x\(n)x\(k): re-scored \(rescored) (depths \(depths))")
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
