// BLAS: the process-wide OpenBLAS settings. OpenBLAS runs single-threaded; parallelism comes from ThreadPool,
// which splits large GEMMs itself, so BLAS threads and pool threads never compete for the 2 cores.
import COpenBLAS
import Synchronization

public enum BLAS {
    /// OpenBLAS's thread count as this process chose it: 1, unless a benchmark comparing threading strategies set
    /// `openBLASThreads`.
    private static let chosen = Atomic<Int32>(1)
    private static let setting = Mutex<Void>(())

    /// Puts OpenBLAS on the chosen thread count (1) when it is not on it. Every entry point that calls cblas or LAPACK
    /// calls this first (it costs one load and one call when nothing is to change). OpenBLAS starts with a thread per
    /// core: left so, each sgemm is split with its worker thread, which then spins in sched_yield for about 0.1 s after
    /// every call, a whole core taken from the serving threads (docs/reliability.md, Soak, WALS).
    public static func configure() {
        let n = chosen.load(ordering: .relaxed)
        guard openblas_get_num_threads() != n else { return }
        setting.withLock { _ in if openblas_get_num_threads() != n { openblas_set_num_threads(n) } }
    }

    /// OpenBLAS's own thread count; only benchmarks comparing threading strategies should change it.
    public static var openBLASThreads: Int {
        get { Int(openblas_get_num_threads()) }
        set {
            chosen.store(Int32(newValue), ordering: .relaxed)
            setting.withLock { _ in openblas_set_num_threads(Int32(newValue)) }
        }
    }

    /// OpenBLAS build and the CPU kernel it chose, e.g. "OpenBLAS 0.3.21 ... Cooperlake".
    public static var description: String {
        let config = String(cString: openblas_get_config())
        let core = String(cString: openblas_get_corename())
        return "\(config) core=\(core)"
    }
}
