// The int4 screening copy of the int8 table (Int4Screen): its packing against this file's own quantisation of the
// dequantised int8 rows less their mean (scale max|d| / 7, values round-to-nearest-even of d / s4 in -7...7, the
// error bound at least ||d - s4 q4||); the screen under both of its paths (VNNI where the CPU has it, plain loops)
// against float64 sums over those int4 rows and this file's own two-level quantisation of the queries; the upper
// bounds it writes against float64 exact scores over the int8 rows (never below); and the screened ranking: its rows'
// top-k (masked, and among candidates) equal the top-k of float64 scores over the dequantised int8 table on seeded
// tables built to be hard for it: duplicated rows (ties), rows of zeros, scales of 1e6 and 1e-6, and items a hair
// apart around the ranking's threshold.
import XCTest
import CKernels
import Data
@testable import Tensor

final class Int4ScreenTests: XCTestCase {
    /// Rows: random, one spike, scaled by 1e6 or 1e-6, zero, and copies of row 0 (ties) or of it scaled by 1 + j 1e-4
    /// (near ties), as `kind` asks.
    func table(n: Int, k: Int, seed: UInt64, kind: String) -> FloatBuffer {
        let w = randomBuffer([n, k], seed: seed)
        // A shared direction, as a trained model's item vectors have (the screen centres on the mean).
        for i in 0..<n { for j in 0..<k { w.data[i * k + j] += j % 3 == 0 ? 1.5 : 0 } }
        for i in 0..<n {
            let row = w.data + i * k
            switch (kind, i % 7) {
            case ("mixed", 1): row[i % k] = 40
            case ("mixed", 2): for j in 0..<k { row[j] *= 1e6 }
            case ("mixed", 3): for j in 0..<k { row[j] *= 1e-6 }
            case ("mixed", 4): for j in 0..<k { row[j] = 0 }
            case ("ties", _) where i % 3 == 0: row.update(from: w.data, count: k)
            case ("near", _) where i % 2 == 0: for j in 0..<k { row[j] = w.data[j] * (1 + Float(i) * 1e-4) }
            default: break
            }
        }
        return w
    }

    /// This file's int8 quantisation of a float row: (scale, values).
    func int8(_ row: UnsafePointer<Float>, k: Int) -> (Float, [Int]) {
        var largest: Float = 0
        for j in 0..<k { largest = max(largest, abs(row[j])) }
        let scale = largest / 127
        return (scale, (0..<k).map { scale > 0 ? Int(max(-127, min(127, (row[$0] / scale).rounded(.toNearestOrEven)))) : 0 })
    }

    /// The dequantised int8 rows of the table, float64.
    func dequantised(_ table: Int8Matrix) -> [[Double]] {
        (0..<table.n).map { i in (0..<table.k).map { Double(table.scale(i)) * Double(table.value(i, $0)) } }
    }

    func testPackingMatchesOwnQuantisationOfTheCentredRows() {
        for (n, k, kind) in [(1, 1, "mixed"), (33, 7, "mixed"), (70, 128, "mixed"), (65, 12, "ties"), (40, 130, "near"),
                             (5, 3, "zero")] {
            let w = kind == "zero" ? FloatBuffer(shape: [n, k]) : table(n: n, k: k, seed: UInt64(n * 7 + k), kind: kind)
            let matrix = Int8Matrix(weights: w.pointer, n: n, k: k, screening: true)
            let screen = matrix.screen!
            let rows = dequantised(matrix)
            for j in 0..<k {
                let mean = rows.reduce(0.0) { $0 + $1[j] } / Double(n)
                XCTAssertEqual(Double(screen.mean[j]), mean, accuracy: abs(mean) * 1e-6 + 1e-12, "\(kind) \(n)x\(k) mean \(j)")
            }
            var largestNorm = 0.0
            for i in 0..<n {
                let d = (0..<k).map { rows[i][$0] - Double(screen.mean[$0]) }
                let scale = Float(d.map(abs).max()! / 7)
                XCTAssertEqual(screen.scale(i), scale, "\(kind) \(n)x\(k) scale of row \(i)")
                var error = 0.0, squares = 0.0
                for j in 0..<k {
                    let q = scale > 0 ? Int(max(-7, min(7, (d[j] / Double(scale)).rounded(.toNearestOrEven)))) : 0
                    XCTAssertEqual(screen.value(i, j), q, "\(kind) \(n)x\(k) value (\(i), \(j))")
                    error += (d[j] - Double(scale) * Double(q)) * (d[j] - Double(scale) * Double(q))
                    squares += Double(q * q)
                }
                XCTAssertGreaterThanOrEqual(Double(screen.errorBound(i)), error.squareRoot(), "\(kind) \(n)x\(k) error of row \(i)")
                XCTAssertLessThanOrEqual(Double(screen.errorBound(i)), error.squareRoot() * (1 + 1e-6) + 1e-38,
                                         "\(kind) \(n)x\(k) error of row \(i)")
                largestNorm = max(largestNorm, Double(scale) * squares.squareRoot())
            }
            XCTAssertEqual(Double(screen.largestRowNorm), largestNorm, accuracy: largestNorm * 1e-6, "\(kind) \(n)x\(k) largest norm")
        }
    }

    /// The screen's arithmetic under each path: offsets + s4 (f1 xq1·q4 + f2 xq2·q4) + radii e, against float64 over
    /// this file's int4 values (read back through `value`, checked above) and its own quantisation of the queries.
    func testScreenMatchesFloat64UnderBothPaths() {
        let paths = Int8Matrix.vnniAvailable ? [false, true] : [false]
        for vnni in paths {
            for (m, n, k) in [(1, 1, 1), (3, 33, 7), (5, 100, 128), (2, 47, 12), (9, 70, 130), (1, 2_003, 128), (6, 40, 4)] {
                let w = table(n: n, k: k, seed: UInt64(n + k), kind: "mixed")
                let screen = Int8Matrix(weights: w.pointer, n: n, k: k, screening: true).screen!
                let ldo = n + 3
                let x = randomBuffer([m, k], seed: UInt64(m * 5 + k))
                let lda = 4 * ((k + 3) / 4)
                var u = [UInt8](repeating: 128, count: m * 2 * lda)
                var factors = [Float](), steps: [[(Float, [Int])]] = []
                for i in 0..<m {
                    let first = int8(x.pointer + i * k, k: k)
                    let remainder = (0..<k).map { Float(Double(x.data[i * k + $0]) - Double(first.0) * Double(first.1[$0])) }
                    let second = remainder.withUnsafeBufferPointer { int8($0.baseAddress!, k: k) }
                    for (level, (_, values)) in [first, second].enumerated() {
                        for j in 0..<k { u[(2 * i + level) * lda + j] = UInt8(values[j] + 128) }
                    }
                    factors += [first.0 * 3, second.0 * 3]
                    steps.append([first, second])
                }
                let offsets = (0..<m).map { Float($0) - 1.5 }, radii = (0..<m).map { Float($0) * 0.25 + 0.5 }
                let out = FloatBuffer(shape: [m, ldo]) { _ in 777 }
                screen.screen(rows: m, quantised: u, factors: factors, offsets: offsets, radii: radii, out: out.data, ldo: ldo,
                              vnni: vnni, serial: m % 2 == 0)
                for i in 0..<m {
                    for j in 0..<n {
                        var sums = [0.0, 0.0]
                        for level in 0..<2 { for c in 0..<k { sums[level] += Double(steps[i][level].1[c] * screen.value(j, c)) } }
                        let terms = [Double(factors[2 * i]) * sums[0], Double(factors[2 * i + 1]) * sums[1]]
                        let expected = Double(offsets[i]) + Double(screen.scale(j)) * (terms[0] + terms[1])
                            + Double(radii[i]) * Double(screen.errorBound(j))
                        let magnitude = abs(Double(offsets[i])) + Double(screen.scale(j)) * (abs(terms[0]) + abs(terms[1]))
                            + Double(radii[i]) * Double(screen.errorBound(j))
                        let got = Double(out.data[i * ldo + j])
                        if abs(got - expected) > magnitude * 4e-7 + 1e-30 {
                            XCTFail("screen (vnni \(vnni)) \(m)x\(n)x\(k) (\(i), \(j)): \(got) vs \(expected)")
                            return
                        }
                    }
                    for j in n..<ldo where out.data[i * ldo + j] != 777 {
                        XCTFail("screen (vnni \(vnni)) \(m)x\(n)x\(k): padding (\(i), \(j)) written")
                        return
                    }
                }
            }
        }
    }

    /// The upper bounds the ranking pass writes are never below alpha · x·y_j (float64 over the dequantised int8 rows),
    /// under both paths, on every kind of table.
    func testUpperBoundsAreNeverBelowTheExactScores() {
        let paths = Int8Matrix.vnniAvailable ? [false, true] : [false]
        for vnni in paths {
            for (m, n, k, kind) in [(4, 3_000, 128, "mixed"), (3, 500, 37, "ties"), (2, 700, 128, "near"), (5, 64, 1, "mixed")] {
                let w = table(n: n, k: k, seed: UInt64(n * 3 + k), kind: kind)
                let matrix = Int8Matrix(weights: w.pointer, n: n, k: k, screening: true)
                let x = randomBuffer([m, k], seed: UInt64(m + n))
                if m > 2 { for j in 0..<k { x.data[2 * k + j] *= 1e-5 } }   // a small query
                let rows = dequantised(matrix)
                for alpha: Float in [20, -0.5] {
                    let out = FloatBuffer(shape: [m, n])
                    matrix.screen!.upperBounds(rows: m, x: x.pointer, ldx: k, out: out.data, ldo: n, alpha: alpha,
                                               largestInt8RowNorm: matrix.largestRowNorm, vnni: vnni, serial: false)
                    var tightest = Double.infinity
                    for i in 0..<m {
                        for j in 0..<n {
                            var sum = 0.0
                            for c in 0..<k { sum += Double(x.data[i * k + c]) * rows[j][c] }
                            let exact = Double(Float(Double(alpha) * sum))   // as the re-score writes it
                            let upper = Double(out.data[i * n + j])
                            if upper < exact {
                                XCTFail("\(kind) (vnni \(vnni)) \(m)x\(n)x\(k) alpha \(alpha) (\(i), \(j)): bound \(upper) below \(exact)")
                                return
                            }
                            tightest = min(tightest, upper - exact)
                        }
                    }
                    print("\(kind) (vnni \(vnni)) \(m)x\(n)x\(k) alpha \(alpha): smallest margin \(tightest)")
                }
            }
        }
    }

    /// The screened ranking under every instruction set (the screen where the CPU has VNNI, else `multiply`): each
    /// row's top-k outside a masked set and among a candidate list equal float64's over the dequantised int8 table.
    func testScreenedRankingEqualsExactTopK() {
        CPU.forEachAvailable { isa in
            for (m, n, k, kind) in [(4, 20_003, 128, "mixed"), (3, 5_000, 128, "ties"), (3, 5_000, 128, "near"),
                                    (2, 4_000, 37, "mixed"), (2, 33, 8, "near"), (1, 64, 128, "ties")] {
                let w = table(n: n, k: k, seed: UInt64(n + k + kind.count), kind: kind)
                let matrix = Int8Matrix(weights: w.pointer, n: n, k: k, screening: true)
                // Queries near the table's rows: their best items are near ties of each other.
                let x = randomBuffer([m, k], seed: UInt64(m * 3 + k), range: -0.05...0.05)
                for i in 0..<m { for j in 0..<k { x.data[i * k + j] += w.data[(i * 2 % n) * k + j] / max(1, abs(w.data[(i * 2 % n) * k])) } }
                let alpha: Float = 20
                var generator = SplitMix64(seed: UInt64(n))
                let depths = (0..<m).map { i in i == 1 ? min(n, 2_500) : [30, 12, 200][i % 3] }
                let masks = depths.map { depth in Set((0..<(depth / 2)).map { _ in Int(generator.next() % UInt64(n)) }) }
                let candidates: [[Int]?] = (0..<m).map { i in i % 2 == 0 ? (0..<50).map { _ in Int(generator.next() % UInt64(n)) } : nil }
                let out = FloatBuffer(shape: [m, n])
                let rescored = matrix.multiplyForRanking(rows: m, x: x.pointer, ldx: k, out: out.data, ldo: n, alpha: alpha,
                                                         depths: depths, exact: candidates)
                let rows = dequantised(matrix)
                for i in 0..<m {
                    let exact = rows.map { row in
                        var sum = 0.0
                        for c in 0..<k { sum += Double(x.data[i * k + c]) * row[c] }
                        return Double(alpha) * sum
                    }
                    func exactTop(_ kk: Int, masked: Set<Int>, among: [Int]? = nil) -> [Int] {
                        Array((among.map { Array(Set($0)) } ?? Array(0..<n)).filter { !masked.contains($0) }
                            .sorted { exact[$0] != exact[$1] ? exact[$0] > exact[$1] : $0 < $1 }.prefix(kk))
                    }
                    let row = UnsafeBufferPointer(start: out.data + i * n, count: n)
                    let kk = min(10, depths[i] - masks[i].count)
                    let got = Ranking.topK(row, k: kk, masked: masks[i]).map(\.index)
                    XCTAssertEqual(got, exactTop(kk, masked: masks[i]), "\(isa) \(kind) \(m)x\(n)x\(k) row \(i): masked top-\(kk)")
                    for item in got {
                        XCTAssertEqual(Double(row[item]), exact[item], accuracy: abs(exact[item]) * 1e-6 + 1e-6, "\(isa) \(kind) row \(i) item \(item)")
                    }
                    if let among = candidates[i] {
                        let gotAmong = Ranking.topK(row, k: 5, masked: [], allowed: among).map(\.index)
                        XCTAssertEqual(gotAmong, exactTop(5, masked: [], among: among), "\(isa) \(kind) \(m)x\(n)x\(k) row \(i): candidates")
                    }
                }
                print("\(isa) \(kind) \(m)x\(n)x\(k): re-scored \(rescored) (depths \(depths))")
            }
        }
    }
}
