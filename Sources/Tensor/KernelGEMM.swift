// The project's GEMM kernels (CKernels' packed_gemm.c) behind Tensor's GEMM entry points: C = alpha op(A) B + beta C
// with B read in 32-column panels, either packed (weights: PackedMatrix, packed once at load or once per training
// step) or in place (a row-major [k, n] operand, e.g. activations in a weight gradient). op(A) may be transposed
// (strides), so the backward shapes A^T B and A B^T need no copies of A. Runs for CPU.isa >= .avx2; `GEMM` keeps
// OpenBLAS for the portable path and for matrix-vector products.
import CKernels

enum KernelGEMM {
    static let panelWidth = Int(R2EC_PANEL)

    /// Whether `GEMM.forward` should run this product on the project's kernels: the CPU has them, it is not a
    /// matrix-vector product (sgemv streams those), and a B that must be packed first (stored [n, k]) is amortised
    /// over enough rows.
    static func accepts(m: Int, n: Int, transB: Bool) -> Bool {
        CPU.isa >= .avx2 && m > 1 && n > 1 && (!transB || m >= 16)
    }

    /// C = alpha op(A) op(B) + beta C for the GEMM entry points (row-major, leading dimensions as GEMM's). A B stored
    /// [n, k] is packed into the calling thread's scratch first (in parallel with the product when split by panels).
    static func forward(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, transA: Bool,
                        b: UnsafePointer<Float>, ldb: Int, transB: Bool, c: UnsafeMutablePointer<Float>, ldc: Int,
                        alpha: Float, beta: Float, serial: Bool) {
        let (rs, cs) = transA ? (1, lda) : (lda, 1)
        if !transB {
            run(m: m, n: n, k: k, a: a, rowStride: rs, colStride: cs,
                panels: r2ec_panels(data: b, panel_stride: panelWidth, row_stride: ldb, padded: 0),
                c: c, ldc: ldc, alpha: alpha, beta: beta, serial: serial, pack: nil)
            return
        }
        let packed = ThreadScratch.bytes(r2ec_packed_count(Int32(n), Int32(k)) * 4).assumingMemoryBound(to: Float.self)
        run(m: m, n: n, k: k, a: a, rowStride: rs, colStride: cs,
            panels: r2ec_panels(data: packed, panel_stride: k * panelWidth, row_stride: panelWidth, padded: 1),
            c: c, ldc: ldc, alpha: alpha, beta: beta, serial: serial) { range in
            r2ec_pack(Int32(k), Int32(n), b, Int32(ldb), 1, Int32(range.lowerBound), Int32(range.upperBound), packed)
        }
    }

    /// The product over every panel, split over the pool unless `serial` or small. Splitting by panels makes every
    /// thread read all of A, by rows all of B: the smaller of the two is read twice. By panels (m < n, or too few
    /// rows), each thread packs, if asked, and multiplies its own panels with no barrier; by rows, after packing
    /// every panel. (The LM head's dHidden [1024, 256] x [256, 8192]^T: each thread streaming all 32 MB of logits
    /// made it memory-bound.)
    static func run(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, rowStride: Int, colStride: Int, panels: r2ec_panels,
                    c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float, serial: Bool,
                    pack: ((Range<Int>) -> Void)?) {
        if m == 0 || n == 0 { return }
        let panelCount = (n + panelWidth - 1) / panelWidth
        let isa = CPU.isa.c
        func multiply(rows: Range<Int>, panels range: Range<Int>) {
            r2ec_packed_gemm(isa, Int32(rows.count), Int32(n), Int32(k), a + rows.lowerBound * rowStride, rowStride,
                             colStride, panels, Int32(range.lowerBound), Int32(range.upperBound),
                             c + rows.lowerBound * ldc, Int32(ldc), alpha, beta)
        }
        let pool = ThreadPool.shared, threads = pool.threadCount
        if serial || threads == 1 || m * n * k < GEMM.parallelThreshold {
            pack?(0..<panelCount)
            multiply(rows: 0..<m, panels: 0..<panelCount)
        } else if m < n || m < 24 * threads {
            pool.parallelSlices(panelCount) { range in
                pack?(range)
                multiply(rows: 0..<m, panels: range)
            }
        } else {
            if let pack { pool.parallelSlices(panelCount) { pack($0) } }
            // Row blocks of whole register tiles (12 rows), as many as threads.
            let step = (m + threads - 1) / threads
            let block = (step + 11) / 12 * 12
            pool.parallelFor((m + block - 1) / block) { i in
                multiply(rows: (i * block)..<min(m, (i + 1) * block), panels: 0..<panelCount)
            }
        }
    }
}
