// A weight matrix packed once for CKernels' GEMM (see Sources/CKernels/include/packed_gemm.h): inference multiplies
// activations by the same weights millions of times, so the panel layout a GEMM micro-kernel wants is built at
// load time instead of on every call as a general sgemm must. Measured against OpenBLAS's sgemm on the engine's
// shapes, one thread: 2.5x at 8 rows, 1.5x at 32, 1.1-1.2x at 128-512 (docs/engine.md).
import CKernels
import Foundation

public final class PackedMatrix: @unchecked Sendable {
    /// Whether this CPU runs the packed kernel (AVX-512F); without it, callers keep using the unpacked weights.
    public static var isSupported: Bool { CPU.hasAVX512F }

    /// Output features (rows of the unpacked [n, k] weight) and input features.
    public let n: Int
    public let k: Int
    let data: UnsafeMutablePointer<Float>
    var panels: Int { (n + Int(R2EC_PANEL) - 1) / Int(R2EC_PANEL) }

    /// Packs W [n, k] (row stride k). The weights are copied: later changes to W are not seen.
    public init(weights: UnsafePointer<Float>, n: Int, k: Int) {
        precondition(n > 0 && k > 0)
        self.n = n
        self.k = k
        let count = r2ec_packed_count(Int32(n), Int32(k))
        data = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64).bindMemory(to: Float.self, capacity: count)
        r2ec_pack(Int32(n), Int32(k), weights, data)
    }

    deinit { data.deallocate() }

    /// Bytes held by the packed copy.
    public var byteCount: Int { r2ec_packed_count(Int32(n), Int32(k)) * 4 }

    /// out[m, n] = x[m, k] · W^T + beta · out (row strides ldx, ldo). Single-threaded when `serial` (the caller is one
    /// of several threads on disjoint rows) or the product is small; otherwise panels are split over the pool.
    public func multiply(rows m: Int, x: UnsafePointer<Float>, ldx: Int, out: UnsafeMutablePointer<Float>, ldo: Int,
                         beta: Float, serial: Bool) {
        precondition(Self.isSupported, "the packed kernel needs AVX-512F")
        if m == 0 { return }
        func run(_ range: Range<Int>) {
            r2ec_packed_gemm(Int32(m), Int32(n), Int32(k), x, Int32(ldx), data, Int32(range.lowerBound),
                             Int32(range.upperBound), out, Int32(ldo), beta)
        }
        if serial || m * n * k < GEMM.parallelThreshold || ThreadPool.shared.threadCount == 1 {
            run(0..<panels)
        } else {
            ThreadPool.shared.parallelSlices(panels, minimumPerSlice: 2) { run($0) }
        }
    }

    /// The naive twin over the same packed layout (plain loops; tests only).
    public func multiplyReference(rows m: Int, x: UnsafePointer<Float>, ldx: Int, out: UnsafeMutablePointer<Float>,
                                  ldo: Int, beta: Float) {
        r2ec_packed_gemm_reference(Int32(m), Int32(n), Int32(k), x, Int32(ldx), data, 0, Int32(panels), out,
                                   Int32(ldo), beta)
    }
}
