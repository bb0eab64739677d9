// A matrix stored as int8 with one float32 scale per row (Sources/CKernels/include/int8_table.h): the compact form of
// the item table, a quarter of the float32 bytes plus 4 per row. The scoring product out = alpha · x · dequant(W)^T
// reads the table once per call, so at one query row it runs at the speed the table's bytes arrive; the queries stay
// float32, so the scores are those of the dequantised table up to float rounding.
import CKernels
import Foundation

public final class Int8Matrix: @unchecked Sendable {
    /// Rows (items) and columns (the summed dimension).
    public let n: Int
    public let k: Int
    let panels: Int
    private let values: UnsafeMutablePointer<Int8>
    private let scales: UnsafeMutablePointer<Float>

    /// Quantises W [n, k] (row stride `ldw`, default k): row i becomes round(W[i] / s_i) with s_i = max|W[i]| / 127.
    public init(weights: UnsafePointer<Float>, n: Int, k: Int, ldw: Int? = nil) {
        precondition(n > 0 && k > 0)
        self.n = n
        self.k = k
        panels = Int(r2ec_int8_panels(Int32(n)))
        let width = Int(R2EC_INT8_PANEL)
        values = UnsafeMutableRawPointer.allocate(byteCount: panels * width * k, alignment: 64).bindMemory(to: Int8.self, capacity: panels * width * k)
        scales = .allocate(capacity: panels * width)
        let ldw = Int32(ldw ?? k)
        let (values, scales) = (values, scales)
        if n * k >= 1 << 16 {
            ThreadPool.shared.parallelSlices(panels) { r in
                r2ec_int8_pack(Int32(k), Int32(n), weights, ldw, Int32(r.lowerBound), Int32(r.upperBound), values, scales)
            }
        } else {
            r2ec_int8_pack(Int32(k), Int32(n), weights, ldw, 0, Int32(panels), values, scales)
        }
    }

    deinit {
        values.deallocate()
        scales.deallocate()
    }

    /// Bytes held: the int8 values and the scales, padding included.
    public var byteCount: Int { panels * Int(R2EC_INT8_PANEL) * (k + 4) }

    /// Row i's scale s_i.
    public func scale(_ i: Int) -> Float { scales[i] }

    /// Row i's int8 value at column j.
    public func value(_ i: Int, _ j: Int) -> Int8 {
        let width = Int(R2EC_INT8_PANEL)
        return values[(i / width) * k * width + j * width + i % width]
    }

    /// out[m, n] = alpha · x[m, k] · dequant(W)^T (row strides ldx, ldo; out is only written), under CPU.isa.
    /// Single-threaded when `serial` or the product is small; otherwise split over the pool by panels.
    public func multiply(rows m: Int, x: UnsafePointer<Float>, ldx: Int, out: UnsafeMutablePointer<Float>, ldo: Int,
                         alpha: Float = 1, serial: Bool = false) {
        if m == 0 { return }
        let isa = CPU.isa.c
        let (values, scales, n, k) = (values, scales, Int32(n), Int32(k))
        func run(_ range: Range<Int>) {
            r2ec_int8_gemm(isa, Int32(m), n, k, x, Int32(ldx), values, scales, Int32(range.lowerBound),
                           Int32(range.upperBound), out, Int32(ldo), alpha)
        }
        if serial || m * Int(n) * Int(k) < GEMM.parallelThreshold || ThreadPool.shared.threadCount == 1 {
            run(0..<panels)
        } else {
            ThreadPool.shared.parallelSlices(panels) { run($0) }
        }
    }
}
