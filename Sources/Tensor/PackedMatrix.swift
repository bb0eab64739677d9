// A matrix packed into the panels CKernels' GEMM reads (Sources/CKernels/include/packed_gemm.h): inference multiplies
// activations by the same weights millions of times, so the layout the micro-kernel wants is built once at load
// time instead of on every call as a general sgemm must; training re-packs its weights once per step (`repack`), which
// costs a copy of the weights against a step's thousands of rows. Single-threaded against OpenBLAS's sgemm on the
// engine's shapes: 2.5x at 8 rows, 1.5x at 32, 1.1-1.2x at 128-512 (docs/engine.md).
//
// Precision `.bfloat16` stores the weights as bfloat16 pairs for vdpbf16ps (AVX512_BF16): half the bytes, twice the
// products per instruction; the activations are rounded to bfloat16 per call and the sums stay float32.
import CKernels
import Foundation

public final class PackedMatrix: @unchecked Sendable {
    public enum Precision: String, Sendable, CaseIterable, Codable {
        case float32
        case bfloat16

        /// Whether this CPU (under CPU.isa) runs the kernel.
        public var isSupported: Bool { self == .float32 ? CPU.isa >= .avx2 : CPU.hasBF16 }
    }

    /// Whether this CPU runs the float32 packed kernels (AVX2 or AVX-512); without, callers keep OpenBLAS.
    public static var isSupported: Bool { Precision.float32.isSupported }

    /// Output features (columns of the product) and input features (the summed dimension).
    public let n: Int
    public let k: Int
    public let precision: Precision
    private let storage: UnsafeMutableRawPointer
    var panels: Int { (n + KernelGEMM.panelWidth - 1) / KernelGEMM.panelWidth }

    /// Packs W [n, k] (row stride `ldw`, default k; Hugging Face [out, in] weights) for products x · W^T. The values
    /// are copied: later changes to W are not seen until `repack`.
    public init(weights: UnsafePointer<Float>, n: Int, k: Int, ldw: Int? = nil, precision: Precision = .float32) {
        precondition(n > 0 && k > 0)
        self.n = n
        self.k = k
        self.precision = precision
        let bytes = precision == .float32 ? r2ec_packed_count(Int32(n), Int32(k)) * 4 : r2ec_packed_bf16_count(Int32(n), Int32(k)) * 2
        storage = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        repack(weights: weights, ldw: ldw ?? k)
    }

    deinit { storage.deallocate() }

    /// Packs new values of the same [n, k] matrix (a training step's updated weights) into this storage.
    public func repack(weights: UnsafePointer<Float>, ldw: Int? = nil) {
        let ldw = Int32(ldw ?? k)
        switch precision {
        case .float32:
            let panels = Int32(self.panels)
            let out = storage.assumingMemoryBound(to: Float.self)
            if n * k >= 1 << 16 {
                ThreadPool.shared.parallelSlices(Int(panels)) { r in
                    r2ec_pack(Int32(k), Int32(n), weights, ldw, 1, Int32(r.lowerBound), Int32(r.upperBound), out)
                }
            } else {
                r2ec_pack(Int32(k), Int32(n), weights, ldw, 1, 0, panels, out)
            }
        case .bfloat16:
            r2ec_pack_bf16(Int32(k), Int32(n), weights, ldw, 1, storage.assumingMemoryBound(to: UInt16.self))
        }
    }

    /// Bytes held by the packed copy.
    public var byteCount: Int {
        precision == .float32 ? r2ec_packed_count(Int32(n), Int32(k)) * 4 : r2ec_packed_bf16_count(Int32(n), Int32(k)) * 2
    }

    /// out[m, n] = alpha x[m, k] · W^T + beta · out (row strides ldx, ldo). Single-threaded when `serial` (the caller is
    /// one of several threads on disjoint rows) or the product is small; otherwise split over the pool.
    public func multiply(rows m: Int, x: UnsafePointer<Float>, ldx: Int, out: UnsafeMutablePointer<Float>, ldo: Int,
                         alpha: Float = 1, beta: Float, serial: Bool) {
        precondition(precision.isSupported, "the \(precision) packed kernel does not run on this CPU (\(CPU.isa))")
        if m == 0 { return }
        switch precision {
        case .float32:
            let panels = r2ec_panels(data: storage.assumingMemoryBound(to: Float.self), panel_stride: k * KernelGEMM.panelWidth,
                                     row_stride: KernelGEMM.panelWidth, padded: 1)
            KernelGEMM.run(m: m, n: n, k: k, a: x, rowStride: ldx, colStride: 1, panels: panels, c: out, ldc: ldo,
                           alpha: alpha, beta: beta, serial: serial, pack: nil)
        case .bfloat16:
            let kp = (k + 1) / 2 * 2
            let rounded = ThreadScratch.bytes(m * kp * 2).assumingMemoryBound(to: UInt16.self)
            r2ec_round_bf16(Int32(m), Int32(k), x, Int32(ldx), rounded)
            let packed = storage.assumingMemoryBound(to: UInt16.self)
            func run(_ range: Range<Int>) {
                r2ec_packed_gemm_bf16(Int32(m), Int32(n), Int32(k), rounded, packed, Int32(range.lowerBound),
                                      Int32(range.upperBound), out, Int32(ldo), alpha, beta)
            }
            if serial || m * n * k < GEMM.parallelThreshold || ThreadPool.shared.threadCount == 1 {
                run(0..<panels)
            } else {
                ThreadPool.shared.parallelSlices(panels) { run($0) }
            }
        }
    }

    /// The naive twin over the same packed layout (plain loops; tests only).
    public func multiplyReference(rows m: Int, x: UnsafePointer<Float>, ldx: Int, out: UnsafeMutablePointer<Float>,
                                  ldo: Int, alpha: Float = 1, beta: Float) {
        switch precision {
        case .float32:
            let panels = r2ec_panels(data: storage.assumingMemoryBound(to: Float.self), panel_stride: k * KernelGEMM.panelWidth,
                                     row_stride: KernelGEMM.panelWidth, padded: 1)
            r2ec_packed_gemm_reference(Int32(m), Int32(n), Int32(k), x, ldx, 1, panels, 0, Int32(self.panels), out,
                                       Int32(ldo), alpha, beta)
        case .bfloat16:
            let kp = (k + 1) / 2 * 2
            let rounded = UnsafeMutablePointer<UInt16>.allocate(capacity: max(1, m * kp))
            defer { rounded.deallocate() }
            r2ec_round_bf16(Int32(m), Int32(k), x, Int32(ldx), rounded)
            r2ec_packed_gemm_bf16_reference(Int32(m), Int32(n), Int32(k), rounded, storage.assumingMemoryBound(to: UInt16.self),
                                            0, Int32(panels), out, Int32(ldo), alpha, beta)
        }
    }
}
