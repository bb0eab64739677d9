// What the CPU can run, checked once: the C kernels (Sources/CKernels) are compiled for AVX-512F through target
// attributes and called only when this says so; otherwise the portable Swift/OpenBLAS paths run.
import CKernels

public enum CPU {
    /// AVX-512F: the packed-weight GEMM and the decode attention kernel.
    public static let hasAVX512F = r2ec_has_avx512f() != 0
}
