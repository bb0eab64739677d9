// A matrix stored as int8 with one float32 scale per row (Sources/CKernels/include/int8_table.h): the compact form of
// the item table, a quarter of the float32 bytes plus 8 per row. The scoring product out = alpha · x · dequant(W)^T
// reads the table once per call, so at one query row it runs at the speed the table's bytes arrive. `multiply` keeps
// the queries float32: the scores are those of the dequantised table up to float rounding. `multiplyForRanking`
// (AVX512_VNNI) quantises the queries too (two int8 levels), for integer dot products without widening, then
// re-scores exactly every item the quantisation error could move into a row's best `depth`: the rows rank their best
// items as `multiply`'s do. With an int4 screening copy (`screen`, Int4Screen.swift; made on request, for `bench scale
// --int4-screen`) the ranking pass reads that instead, half the bytes, and re-scores the items its per-row error bound
// cannot rule out: on the default model's item vectors far too many to pay (docs/scale.md).
import CKernels
import Foundation

public final class Int8Matrix: @unchecked Sendable {
    /// Rows (items) and columns (the summed dimension).
    public let n: Int
    public let k: Int
    let panels: Int
    /// Groups of 4 values per row (k rounded up to 4).
    let groups: Int
    let values: UnsafeMutablePointer<Int8>
    let scales: UnsafeMutablePointer<Float>
    private let sums: UnsafeMutablePointer<Int32>
    /// The largest norm of a dequantised row, ||s q||_2: bounds what quantising a query changes a score by.
    public let largestRowNorm: Float
    /// The int4 screening copy `multiplyForRanking` reads first on VNNI CPUs when made (`screening`) and `screened`.
    public private(set) var screen: Int4Screen?

    /// Whether the kernels `multiplyForRanking` needs can run: AVX512_VNNI on this CPU and `CPU.isa` AVX-512.
    public static var vnniAvailable: Bool { CPU.isa == .avx512 && detectedVNNI }
    static let detectedVNNI = r2ec_int8_has_vnni() != 0

    /// Quantises W [n, k] (row stride `ldw`, default k): row i becomes round(W[i] / s_i) with s_i = max|W[i]| / 127.
    /// `screening`: also make the int4 screening copy of the quantised rows (`screen`).
    public init(weights: UnsafePointer<Float>, n: Int, k: Int, ldw: Int? = nil, screening: Bool = false) {
        precondition(n > 0 && k > 0)
        self.n = n
        self.k = k
        panels = Int(r2ec_int8_panels(Int32(n)))
        groups = Int(r2ec_int8_groups(Int32(k)))
        let width = Int(R2EC_INT8_PANEL)
        let bytes = panels * groups * Int(R2EC_INT8_GROUP)
        values = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64).bindMemory(to: Int8.self, capacity: bytes)
        scales = .allocate(capacity: panels * width)
        sums = .allocate(capacity: panels * width)
        let ldw = Int32(ldw ?? k)
        let (values, scales, sums, panels) = (values, scales, sums, panels)
        if n * k >= 1 << 16 {
            let lock = NSLock()
            var largest: Float = 0
            ThreadPool.shared.parallelSlices(panels) { r in
                let norm = r2ec_int8_pack(Int32(k), Int32(n), weights, ldw, Int32(r.lowerBound), Int32(r.upperBound),
                                          values, scales, sums)
                lock.lock(); largest = max(largest, norm); lock.unlock()
            }
            largestRowNorm = largest
        } else {
            largestRowNorm = r2ec_int8_pack(Int32(k), Int32(n), weights, ldw, 0, Int32(panels), values, scales, sums)
        }
        if screening { screen = Int4Screen(table: self) }
    }

    deinit {
        values.deallocate()
        scales.deallocate()
        sums.deallocate()
    }

    /// Bytes held: the int8 values, the scales and the sums, padding included.
    public var byteCount: Int { panels * groups * Int(R2EC_INT8_GROUP) + panels * Int(R2EC_INT8_PANEL) * 8 }

    /// Row i's scale s_i.
    public func scale(_ i: Int) -> Float { scales[i] }

    /// Row i's sum of its int8 values.
    public func sum(_ i: Int) -> Int32 { sums[i] }

    /// Row i's int8 value at column j.
    public func value(_ i: Int, _ j: Int) -> Int8 {
        let width = Int(R2EC_INT8_PANEL)
        return values[(i / width) * groups * Int(R2EC_INT8_GROUP) + (j / 4) * Int(R2EC_INT8_GROUP) + (i % width) * 4 + j % 4]
    }

    /// Splits `body` over the pool by panels unless `serial` or the product of m rows is small.
    private func overPanels(rows m: Int, serial: Bool, _ body: (Range<Int>) -> Void) {
        if serial || m * n * k < GEMM.parallelThreshold || ThreadPool.shared.threadCount == 1 {
            body(0..<panels)
        } else {
            ThreadPool.shared.parallelSlices(panels) { body($0) }
        }
    }

    /// out[m, n] = alpha · x[m, k] · dequant(W)^T (row strides ldx, ldo; out is only written), under CPU.isa.
    /// Single-threaded when `serial` or the product is small; otherwise split over the pool by panels.
    public func multiply(rows m: Int, x: UnsafePointer<Float>, ldx: Int, out: UnsafeMutablePointer<Float>, ldo: Int,
                         alpha: Float = 1, serial: Bool = false) {
        if m == 0 { return }
        let isa = CPU.isa.c
        let (values, scales, n32, k32) = (values, scales, Int32(n), Int32(k))
        overPanels(rows: m, serial: serial) { range in
            r2ec_int8_gemm(isa, Int32(m), n32, k32, x, Int32(ldx), values, scales, Int32(range.lowerBound),
                           Int32(range.upperBound), out, Int32(ldo), alpha)
        }
    }

    /// The VNNI pass alone: out[i, j] = alpha · s_j · (t1_i · sum_k xq1[i, k] q[j, k] + t2_i · sum_k xq2[i, k] q[j, k])
    /// with each query row quantised in two levels (x ~ t1 xq1 + t2 xq2: xq1 = round(x / t1) in -127...127, t1 =
    /// max|x| / 127; the remainder x - t1 xq1 likewise). Returns ||x_i - t1_i xq1_i - t2_i xq2_i||_2 per row. Needs
    /// `vnniAvailable`.
    func multiplyQuantised(rows m: Int, x: UnsafePointer<Float>, ldx: Int, out: UnsafeMutablePointer<Float>, ldo: Int,
                           alpha: Float, serial: Bool = false) -> [Float] {
        precondition(Self.vnniAvailable, "the VNNI pass needs AVX512_VNNI and CPU.isa avx512")
        var quantised = [UInt8](repeating: 0, count: m * 2 * groups * 4)
        var steps = [Float](repeating: 0, count: 2 * m), errors = [Float](repeating: 0, count: m)
        var residual = [Float](repeating: 0, count: k)
        r2ec_int8_quantize_queries(Int32(m), Int32(k), x, Int32(ldx), &quantised, &steps, &errors, &residual)
        let factors = steps.map { alpha * $0 }
        let (values, scales, sums, n32, k32) = (values, scales, sums, Int32(n), Int32(k))
        quantised.withUnsafeBufferPointer { u in
            factors.withUnsafeBufferPointer { f in
                overPanels(rows: m, serial: serial) { range in
                    r2ec_int8_gemm_vnni(Int32(m), n32, k32, u.baseAddress!, f.baseAddress!, values, scales, sums,
                                        Int32(range.lowerBound), Int32(range.upperBound), out, Int32(ldo))
                }
            }
        }
        return errors
    }

    /// out[m, n] as `multiply` writes it where a ranking looks, for less work: row i's values equal `multiply`'s (to
    /// float rounding: they are re-scored in float64) on a set of items that holds the row's best depths[i] items and
    /// every item of exact[i], and every other value is below all of the best depths[i] items' values. So for any
    /// masked set M and kk with kk + |M| <= depths[i], the row's best kk items outside M are `multiply`'s, and a top-kk
    /// among exact[i] is too. Without VNNI (`vnniAvailable`) this is `multiply`. Returns the items re-scored per row.
    ///
    /// How, with the int4 screen (`screen` made and `screened`): the screen writes an upper bound of every item's
    /// exact score (Int4Screen.upperBounds); the best 2 depth items by bound are re-scored, T is the depth-th best of
    /// their exact scores (at most the row's depth-th best exact score), and every item whose bound reaches T is
    /// re-scored: one left out scores, exactly and as written, below T.
    /// Without it: the queries are quantised in two int8 levels, the VNNI pass scores every item, and the scores move
    /// by at most b_i = |alpha| · largestRowNorm · ||x_i - t1_i xq1_i - t2_i xq2_i||; the depth-th best approximate
    /// score minus 2 b_i is the threshold at and above which items are re-scored (an item below it scores, exactly,
    /// under every item at or above the depth-th).
    @discardableResult
    public func multiplyForRanking(rows m: Int, x: UnsafePointer<Float>, ldx: Int, out: UnsafeMutablePointer<Float>,
                                   ldo: Int, alpha: Float = 1, depths: [Int], exact: [[Int]?], screened: Bool = true,
                                   serial: Bool = false) -> [Int] {
        precondition(depths.count == m && exact.count == m, "one depth and one exact list per row")
        guard m > 0 else { return [] }
        guard Self.vnniAvailable else {
            multiply(rows: m, x: x, ldx: ldx, out: out, ldo: ldo, alpha: alpha, serial: serial)
            return Array(repeating: n, count: m)
        }
        let isa = CPU.isa.c
        func extra(_ i: Int) -> [Int32] { (exact[i] ?? []).filter { $0 >= 0 && $0 < n }.map { Int32($0) } }
        if screened, let screen {
            screen.upperBounds(rows: m, x: x, ldx: ldx, out: out, ldo: ldo, alpha: alpha,
                               largestInt8RowNorm: largestRowNorm, vnni: true, serial: serial)
            var rescored: [Int] = []
            for i in 0..<m {
                let row = out + i * ldo, query = x + i * ldx
                let depth = min(max(depths[i], 1), n), first = min(2 * depth, n)
                var heap = [Float](repeating: 0, count: first)
                let best = atLeast(r2ec_kth_largest(isa, row, n, Int32(first), &heap), in: row, isa: isa)
                rescore(best, query: query, alpha: alpha, row: row)
                let exactBest = best.map { row[Int($0)] }.filter { !$0.isNaN }.sorted(by: >)
                guard exactBest.count >= depth else {   // NaN bounds (a NaN query): score every item exactly.
                    multiply(rows: 1, x: query, ldx: ldx, out: row, ldo: ldo, alpha: alpha, serial: serial)
                    rescored.append(n)
                    continue
                }
                let items = atLeast(exactBest[depth - 1], in: row, isa: isa) + extra(i)
                rescore(items, query: query, alpha: alpha, row: row)
                rescored.append(best.count + items.count)
            }
            return rescored
        }
        let errors = multiplyQuantised(rows: m, x: x, ldx: ldx, out: out, ldo: ldo, alpha: alpha, serial: serial)
        var rescored: [Int] = []
        for i in 0..<m {
            let row = out + i * ldo, query = x + i * ldx
            let depth = min(max(depths[i], 1), n)
            var heap = [Float](repeating: 0, count: depth)
            let kth = r2ec_kth_largest(isa, row, n, Int32(depth), &heap)
            var norm: Float = 0
            for j in 0..<k { norm += query[j] * query[j] }
            // Float slack: the approximate scores' own rounding (a few float32 roundings), relative to the largest
            // score possible.
            let bound = abs(alpha) * largestRowNorm * (errors[i] * 1.001 + 2e-6 * norm.squareRoot())
            let items = atLeast(kth - 2 * bound, in: row, isa: isa) + extra(i)
            rescore(items, query: query, alpha: alpha, row: row)
            rescored.append(items.count)
        }
        return rescored
    }

    /// The items j (rising) with row[j] >= threshold.
    private func atLeast(_ threshold: Float, in row: UnsafePointer<Float>, isa: r2ec_isa) -> [Int32] {
        var items = [Int32](repeating: 0, count: 4096)
        var count = r2ec_collect_at_least(isa, row, n, threshold, &items, items.count)
        if count > items.count {
            items = [Int32](repeating: 0, count: count)
            count = r2ec_collect_at_least(isa, row, n, threshold, &items, items.count)
        }
        items.removeLast(items.count - count)
        return items
    }

    /// row[j] = alpha · x · (s q)_j for each item j, summed in float64 and rounded once.
    private func rescore(_ items: [Int32], query: UnsafePointer<Float>, alpha: Float, row: UnsafeMutablePointer<Float>) {
        r2ec_int8_rescore(Int32(k), query, values, scales, items, Int32(items.count), alpha, row)
    }
}
