// The int4 screening copy of an int8 table (Sources/CKernels/include/int4_screen.h): each dequantised int8 row less the
// table's mean row, at 4 bits per value with one scale per row and a per-row error bound, 72 bytes per item at k = 128
// against the int8 row's 136. The ranking pass (Int8Matrix.multiplyForRanking) reads it instead of the int8 table and
// writes, per item, an upper bound of its exact score; it re-scores exactly the items whose bound reaches the
// depth-th best exact score among the first re-scored, which are all that can rank. Made only on request (`bench scale
// --int4-screen`): on the default model's vectors at 10^6 items the bound leaves 9-35% of the items to re-score, and
// the pass is ~7x slower than the int8 VNNI pass it would replace (docs/scale.md, "int4 screening").
import CKernels
import Foundation

public final class Int4Screen: @unchecked Sendable {
    public let n: Int
    public let k: Int
    let panels: Int
    let blocks: Int
    let nibbles: UnsafeMutablePointer<UInt8>
    let scales: UnsafeMutablePointer<Float>
    let errors: UnsafeMutablePointer<Float>
    /// The int8 table's mean dequantised row (float64 sums rounded to float), which the screen's rows are centred on.
    public let mean: [Float]
    /// ||mean||_2, and the largest ||s4 q4||_2 of a screen row: bound what quantising a query and float rounding move
    /// a screen score by.
    let meanNorm: Double
    public let largestRowNorm: Float

    /// The screening copy of `table`: its dequantised rows s8 · q8 less their mean, each as round(d / s4) in -7...7
    /// with s4 = max|d| / 7, and e = ||d - s4 q4||_2.
    init(table: Int8Matrix) {
        n = table.n
        k = table.k
        panels = table.panels
        blocks = Int(r2ec_int4_blocks(Int32(k)))
        let width = Int(R2EC_INT8_PANEL)
        let bytes = panels * blocks * Int(R2EC_INT4_BLOCK)
        nibbles = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64).bindMemory(to: UInt8.self, capacity: bytes)
        scales = .allocate(capacity: panels * width)
        errors = .allocate(capacity: panels * width)
        let (n, k, panels) = (n, k, panels)
        let (values, scales8) = (table.values, table.scales)
        let parallel = n * k >= 1 << 16
        let lock = NSLock()
        var sum = [Double](repeating: 0, count: k)
        func slices(_ body: (Range<Int>) -> Void) {
            if parallel { ThreadPool.shared.parallelSlices(panels) { body($0) } } else { body(0..<panels) }
        }
        slices { r in
            var part = [Double](repeating: 0, count: k)
            r2ec_int4_row_sum(Int32(k), Int32(n), values, scales8, Int32(r.lowerBound), Int32(r.upperBound), &part)
            lock.lock(); for j in 0..<k { sum[j] += part[j] }; lock.unlock()
        }
        let mean = sum.map { Float($0 / Double(n)) }
        self.mean = mean
        meanNorm = mean.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        var largest: Float = 0
        let (nibbles, scales4, errors) = (nibbles, scales, errors)
        mean.withUnsafeBufferPointer { m in
            slices { r in
                let norm = r2ec_int4_pack(Int32(k), Int32(n), values, scales8, m.baseAddress!, Int32(r.lowerBound),
                                          Int32(r.upperBound), nibbles, scales4, errors)
                lock.lock(); largest = max(largest, norm); lock.unlock()
            }
        }
        largestRowNorm = largest
    }

    deinit {
        nibbles.deallocate()
        scales.deallocate()
        errors.deallocate()
    }

    /// Bytes held: the nibbles, scales and error bounds, padding included.
    public var byteCount: Int { panels * blocks * Int(R2EC_INT4_BLOCK) + panels * Int(R2EC_INT8_PANEL) * 8 }

    /// Row i's scale s4.
    public func scale(_ i: Int) -> Float { scales[i] }

    /// Row i's error bound e >= ||d - s4 q4||_2.
    public func errorBound(_ i: Int) -> Float { errors[i] }

    /// Row i's 4-bit value q4 at column j (-7...7).
    public func value(_ i: Int, _ j: Int) -> Int {
        let width = Int(R2EC_INT8_PANEL)
        let byte = nibbles[(i / width) * blocks * Int(R2EC_INT4_BLOCK) + (j / 8) * Int(R2EC_INT4_BLOCK) + (i % width) * 4 + j % 4]
        return Int(j % 8 < 4 ? byte & 0x0f : byte >> 4) - 8
    }

    /// The screen alone: out[i, j] = offsets[i] + s4_j · (factors[2i] · xq1_i·q4_j + factors[2i+1] · xq2_i·q4_j) +
    /// radii[i] · e_j, from queries quantised by r2ec_int8_quantize_queries (`quantised`). `vnni`: the AVX512_VNNI kernel
    /// (Int8Matrix.vnniAvailable), else plain loops.
    func screen(rows m: Int, quantised: UnsafePointer<UInt8>, factors: UnsafePointer<Float>, offsets: UnsafePointer<Float>,
                radii: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, ldo: Int, vnni: Bool, serial: Bool) {
        precondition(!vnni || Int8Matrix.vnniAvailable, "the VNNI screen needs AVX512_VNNI and CPU.isa avx512")
        let (n32, k32, nibbles, scales, errors) = (Int32(n), Int32(k), nibbles, scales, errors)
        let body = { (r: Range<Int>) in
            r2ec_int4_screen(vnni ? 1 : 0, Int32(m), n32, k32, quantised, factors, offsets, radii, nibbles, scales, errors,
                             Int32(r.lowerBound), Int32(r.upperBound), out, Int32(ldo))
        }
        if serial || m * n * k < GEMM.parallelThreshold || ThreadPool.shared.threadCount == 1 {
            body(0..<panels)
        } else {
            ThreadPool.shared.parallelSlices(panels) { body($0) }
        }
    }

    /// out[i, j] = an upper bound of alpha · x_i · (s8 q8)_j, the exact score `Int8Matrix.multiply` computes (within
    /// float rounding, which the bound covers): the screen with offsets alpha · x·m plus the query quantisation's and the
    /// float rounding's share, radii |alpha| · ||x||.
    func upperBounds(rows m: Int, x: UnsafePointer<Float>, ldx: Int, out: UnsafeMutablePointer<Float>, ldo: Int,
                     alpha: Float, largestInt8RowNorm: Float, vnni: Bool, serial: Bool) {
        let groups = Int(r2ec_int8_groups(Int32(k)))
        var quantised = [UInt8](repeating: 0, count: m * 2 * groups * 4)
        var steps = [Float](repeating: 0, count: 2 * m), queryErrors = [Float](repeating: 0, count: m)
        var residual = [Float](repeating: 0, count: k)
        r2ec_int8_quantize_queries(Int32(m), Int32(k), x, Int32(ldx), &quantised, &steps, &queryErrors, &residual)
        let factors = steps.map { alpha * $0 }
        var offsets = [Float](repeating: 0, count: m), radii = [Float](repeating: 0, count: m)
        let a = Double(abs(alpha))
        for i in 0..<m {
            let row = x + i * ldx
            var dot = 0.0, squares = 0.0
            for j in 0..<k {
                dot += Double(row[j]) * Double(mean[j])
                squares += Double(row[j]) * Double(row[j])
            }
            let norm = squares.squareRoot()
            // |(x - x~)·s4 q4| <= ||x - x~|| · largestRowNorm; the float products and sums of the screen and of the
            // exact score's rounding stay below 2e-6 of the magnitudes they add.
            let slack = a * (Double(queryErrors[i]) * Double(largestRowNorm) * 1.001
                + 2e-6 * norm * (2 * meanNorm + Double(largestRowNorm) + 2 * Double(largestInt8RowNorm)))
            offsets[i] = Float(Double(alpha) * dot + slack)
            radii[i] = Float(a * norm * 1.0001)
        }
        quantised.withUnsafeBufferPointer { u in
            factors.withUnsafeBufferPointer { f in
                offsets.withUnsafeBufferPointer { o in
                    radii.withUnsafeBufferPointer { r in
                        screen(rows: m, quantised: u.baseAddress!, factors: f.baseAddress!, offsets: o.baseAddress!,
                               radii: r.baseAddress!, out: out, ldo: ldo, vnni: vnni, serial: serial)
                    }
                }
            }
        }
    }
}
