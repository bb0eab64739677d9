// BLAS: the process-wide OpenBLAS settings. OpenBLAS runs single-threaded; parallelism comes from ThreadPool,
// which splits large GEMMs itself, so BLAS threads and pool threads never compete for the 2 cores.
import COpenBLAS

public enum BLAS {
    /// Makes OpenBLAS single-threaded once per process (idempotent, cheap after the first call).
    /// Called by every GEMM entry point; call it yourself before using cblas directly.
    public static func configure() { _ = configured }

    private static let configured: Bool = {
        openblas_set_num_threads(1)
        return true
    }()

    /// OpenBLAS's own thread count; only benchmarks comparing threading strategies should change it.
    public static var openBLASThreads: Int {
        get { Int(openblas_get_num_threads()) }
        set { configure(); openblas_set_num_threads(Int32(newValue)) }
    }

    /// OpenBLAS build and the CPU kernel it chose, e.g. "OpenBLAS 0.3.21 ... Cooperlake".
    public static var description: String {
        let config = String(cString: openblas_get_config())
        let core = String(cString: openblas_get_corename())
        return "\(config) core=\(core)"
    }
}
