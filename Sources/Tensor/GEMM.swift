// GEMM: row-major C = alpha * op(A) op(B) + beta * C, split across ThreadPool; batched variants. Products run on the
// project's kernels (KernelGEMM: CKernels' packed GEMM, AVX2 or AVX-512) when CPU.isa has them, else on
// cblas_sgemm; matrix-vector products take sgemv. op(A) is [m,k] (stored [k,m] when transA), op(B) is [k,n] (stored
// [n,k] when transB); beta == 0 never reads C.
import COpenBLAS

/// How a large GEMM uses the cores. `.pool` (the default) slices it over ThreadPool (the project's kernels, or
/// single-threaded OpenBLAS calls); `.openBLAS` hands one OpenBLAS call to OpenBLAS's own threads and `.single` one
/// OpenBLAS call to the caller alone (only for benchmarks comparing OpenBLAS's strategies; never while ThreadPool runs
/// a job).
public enum GEMMThreading: String, Sendable, CaseIterable {
    case pool, openBLAS, single
}

public enum GEMM {
    /// Threading strategy for `forward`; see `GEMMThreading`. Set once at startup (not synchronised).
    nonisolated(unsafe) public static var threading: GEMMThreading = .pool

    /// Below this many multiply-adds a GEMM runs on one thread: slicing it would cost more than it saves.
    nonisolated(unsafe) public static var parallelThreshold = 1 << 18

    /// C[m,n] = alpha * op(A)[m,k] op(B)[k,n] + beta * C[m,n]; row-major with leading dimensions (row strides)
    /// lda/ldb/ldc defaulting to the packed width of each stored matrix.
    public static func forward(m: Int, n: Int, k: Int,
                               a: UnsafePointer<Float>, lda: Int? = nil, transA: Bool = false,
                               b: UnsafePointer<Float>, ldb: Int? = nil, transB: Bool = false,
                               c: UnsafeMutablePointer<Float>, ldc: Int? = nil,
                               alpha: Float = 1, beta: Float = 0) {
        let lda = lda ?? (transA ? m : k), ldb = ldb ?? (transB ? k : n), ldc = ldc ?? n
        if m == 0 || n == 0 { return }
        BLAS.configure()
        let pool = ThreadPool.shared
        let work = m * n * k
        switch threading {
        case .single:
            sgemm(m, n, k, a, lda, transA, b, ldb, transB, c, ldc, alpha, beta)
        case .openBLAS:
            let before = BLAS.openBLASThreads
            BLAS.openBLASThreads = pool.threadCount
            sgemm(m, n, k, a, lda, transA, b, ldb, transB, c, ldc, alpha, beta)
            BLAS.openBLASThreads = before
        case .pool:
            if m == 1 || n == 1 {
                gemv(m, n, k, a, lda, transA, b, ldb, transB, c, ldc, alpha, beta, pool: pool)
                return
            }
            if KernelGEMM.accepts(m: m, n: n, transB: transB) {
                KernelGEMM.forward(m: m, n: n, k: k, a: a, lda: lda, transA: transA, b: b, ldb: ldb, transB: transB,
                                   c: c, ldc: ldc, alpha: alpha, beta: beta, serial: false)
                return
            }
            if work < parallelThreshold || pool.threadCount == 1 {
                sgemm(m, n, k, a, lda, transA, b, ldb, transB, c, ldc, alpha, beta)
                return
            }
            // Slice the longer output side in multiples of 16 (one AVX-512 vector, one cache line of C).
            let slices = pool.threadCount
            if m >= n {
                let step = roundUp16((m + slices - 1) / slices)
                pool.parallelFor((m + step - 1) / step) { s in
                    let r0 = s * step, rows = min(step, m - r0)
                    let aSlice = transA ? a + r0 : a + r0 * lda
                    sgemm(rows, n, k, aSlice, lda, transA, b, ldb, transB, c + r0 * ldc, ldc, alpha, beta)
                }
            } else {
                let step = roundUp16((n + slices - 1) / slices)
                pool.parallelFor((n + step - 1) / step) { s in
                    let c0 = s * step, cols = min(step, n - c0)
                    let bSlice = transB ? b + c0 * ldb : b + c0
                    sgemm(m, cols, k, a, lda, transA, bSlice, ldb, transB, c + c0, ldc, alpha, beta)
                }
            }
        }
    }

    /// `forward` on the calling thread alone (for schedules that already run one GEMM per pool thread):
    /// no slicing, but one-row/one-column products still take the sgemv path.
    public static func forwardSerial(m: Int, n: Int, k: Int,
                                     a: UnsafePointer<Float>, lda: Int? = nil, transA: Bool = false,
                                     b: UnsafePointer<Float>, ldb: Int? = nil, transB: Bool = false,
                                     c: UnsafeMutablePointer<Float>, ldc: Int? = nil,
                                     alpha: Float = 1, beta: Float = 0) {
        let lda = lda ?? (transA ? m : k), ldb = ldb ?? (transB ? k : n), ldc = ldc ?? n
        if m == 0 || n == 0 { return }
        BLAS.configure()
        if m == 1 || n == 1 {
            gemv(m, n, k, a, lda, transA, b, ldb, transB, c, ldc, alpha, beta, pool: nil)
        } else if KernelGEMM.accepts(m: m, n: n, transB: transB) {
            KernelGEMM.forward(m: m, n: n, k: k, a: a, lda: lda, transA: transA, b: b, ldb: ldb, transB: transB,
                               c: c, ldc: ldc, alpha: alpha, beta: beta, serial: true)
        } else {
            sgemm(m, n, k, a, lda, transA, b, ldb, transB, c, ldc, alpha, beta)
        }
    }

    /// `batch` independent GEMMs with the same shapes; item i uses a + i*strideA, b + i*strideB, c + i*strideC.
    /// Items are spread over the pool (each single-threaded) when there are at least as many as threads.
    public static func forwardBatched(batch: Int, m: Int, n: Int, k: Int,
                                      a: UnsafePointer<Float>, lda: Int? = nil, strideA: Int, transA: Bool = false,
                                      b: UnsafePointer<Float>, ldb: Int? = nil, strideB: Int, transB: Bool = false,
                                      c: UnsafeMutablePointer<Float>, ldc: Int? = nil, strideC: Int,
                                      alpha: Float = 1, beta: Float = 0) {
        forwardBatched(batch: batch, m: m, n: n, k: k, lda: lda, transA: transA, ldb: ldb, transB: transB,
                       ldc: ldc, alpha: alpha, beta: beta) { i in
            (a + i * strideA, b + i * strideB, c + i * strideC)
        }
    }

    /// `batch` GEMMs with the same shapes whose operands `operands(i)` gives (for grouped-query attention, where
    /// several query heads share one key head, or ragged sequences at arbitrary offsets).
    public static func forwardBatched(batch: Int, m: Int, n: Int, k: Int,
                                      lda: Int? = nil, transA: Bool = false,
                                      ldb: Int? = nil, transB: Bool = false,
                                      ldc: Int? = nil, alpha: Float = 1, beta: Float = 0,
                                      operands: (Int) -> (UnsafePointer<Float>, UnsafePointer<Float>,
                                                          UnsafeMutablePointer<Float>)) {
        let lda = lda ?? (transA ? m : k), ldb = ldb ?? (transB ? k : n), ldc = ldc ?? n
        if batch == 0 || m == 0 || n == 0 { return }
        BLAS.configure()
        let pool = ThreadPool.shared
        if batch >= pool.threadCount && threading == .pool {
            pool.parallelFor(batch) { i in
                let (ai, bi, ci) = operands(i)
                forwardSerial(m: m, n: n, k: k, a: ai, lda: lda, transA: transA, b: bi, ldb: ldb, transB: transB,
                              c: ci, ldc: ldc, alpha: alpha, beta: beta)
            }
        } else {
            for i in 0..<batch {
                let (ai, bi, ci) = operands(i)
                forward(m: m, n: n, k: k, a: ai, lda: lda, transA: transA, b: bi, ldb: ldb, transB: transB,
                        c: ci, ldc: ldc, alpha: alpha, beta: beta)
            }
        }
    }

    /// The naive twin of `forward`: three loops, float accumulation in k order. Tests hold the two equal.
    public static func forwardNaive(m: Int, n: Int, k: Int,
                                    a: UnsafePointer<Float>, lda: Int? = nil, transA: Bool = false,
                                    b: UnsafePointer<Float>, ldb: Int? = nil, transB: Bool = false,
                                    c: UnsafeMutablePointer<Float>, ldc: Int? = nil,
                                    alpha: Float = 1, beta: Float = 0) {
        let lda = lda ?? (transA ? m : k), ldb = ldb ?? (transB ? k : n), ldc = ldc ?? n
        for i in 0..<m {
            for j in 0..<n {
                var sum: Float = 0
                for p in 0..<k {
                    let aip = transA ? a[p * lda + i] : a[i * lda + p]
                    let bpj = transB ? b[j * ldb + p] : b[p * ldb + j]
                    sum += aip * bpj
                }
                let old = beta == 0 ? 0 : beta * c[i * ldc + j]
                c[i * ldc + j] = alpha * sum + old
            }
        }
    }

    /// A GEMM with one output row or column is a matrix-vector product: sgemv streams the matrix once, where
    /// sgemm would pack it first (measured 5x faster for the decode LM head, [1,256] x [256,8192]).
    /// Long outputs are split in two over the pool. beta == 0 zeroes C first, so NaNs in C never leak through.
    private static func gemv(_ m: Int, _ n: Int, _ k: Int,
                             _ a: UnsafePointer<Float>, _ lda: Int, _ transA: Bool,
                             _ b: UnsafePointer<Float>, _ ldb: Int, _ transB: Bool,
                             _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ alpha: Float, _ beta: Float,
                             pool: ThreadPool?) {
        // Express both cases as y[len] = alpha * M x + beta * y, M given row-major with `rowsStored` rows.
        let length: Int, matrix: UnsafePointer<Float>, ldm: Int, transposed: Bool
        let x: UnsafePointer<Float>, incX: Int, y: UnsafeMutablePointer<Float>, incY: Int
        if m == 1 {   // c[0, :] = op(B)^T · a-row: the matrix is B
            length = n; matrix = b; ldm = ldb; transposed = !transB
            x = a; incX = transA ? lda : 1; y = c; incY = 1
        } else {      // c[:, 0] = op(A) · b-column: the matrix is A
            length = m; matrix = a; ldm = lda; transposed = transA
            x = b; incX = transB ? 1 : ldb; y = c; incY = ldc
        }
        if beta == 0 { for i in 0..<length { y[i * incY] = 0 } }
        func run(_ first: Int, _ count: Int) {
            // Rows first..<first+count of op(M): rows of M when not transposed, columns of M when transposed.
            let block = transposed ? matrix + first : matrix + first * ldm
            let rowsStored = transposed ? k : count, colsStored = transposed ? count : k
            cblas_sgemv(CblasRowMajor, transposed ? CblasTrans : CblasNoTrans, blasint(rowsStored),
                        blasint(colsStored), alpha, block, blasint(ldm), x, blasint(incX), beta == 0 ? 0 : beta,
                        y + first * incY, blasint(incY))
        }
        if let pool, length * k >= parallelThreshold / 2 && length >= 64 && pool.threadCount > 1 {
            let half = roundUp16(length / 2)
            pool.parallelFor(2) { part in
                if part == 0 { run(0, half) } else { run(half, length - half) }
            }
        } else {
            run(0, length)
        }
    }

    @inline(__always) private static func roundUp16(_ x: Int) -> Int { (x + 15) & ~15 }

    @inline(__always)
    private static func sgemm(_ m: Int, _ n: Int, _ k: Int,
                              _ a: UnsafePointer<Float>, _ lda: Int, _ transA: Bool,
                              _ b: UnsafePointer<Float>, _ ldb: Int, _ transB: Bool,
                              _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ alpha: Float, _ beta: Float) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                    beta, c, blasint(ldc))
    }
}
