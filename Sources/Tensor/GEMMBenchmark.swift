// GEMMBenchmark: this machine's cblas_sgemm peak GFLOP/s and the GFLOP/s GEMM.forward reaches on given shapes.
// A measurement for `r2ec bench`, not a test: the engine benchmark reports its throughput as a fraction of this peak.
import Foundation

public enum GEMMBenchmark {
    /// One timed GEMM shape: C[m,n] = A[m,k] · op(B), B stored [n,k] (Hugging Face weights) when transB.
    public struct Measurement: Sendable {
        public var label: String
        public var m: Int, n: Int, k: Int
        public var transB: Bool
        public var threading: GEMMThreading
        public var secondsPerCall: Double
        public var gflops: Double { 2 * Double(m) * Double(n) * Double(k) / secondsPerCall / 1e9 }
        public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
    }

    /// Monotonic seconds.
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Best per-call time of `body` over `trials` trials of at least `seconds / trials` each (after one warm-up
    /// call). The best trial estimates what the machine can do; the others absorb noise from shared cores.
    public static func bestSecondsPerCall(seconds: Double, trials: Int = 5, _ body: () -> Void) -> Double {
        body()
        var best = Double.infinity
        for _ in 0..<trials {
            var calls = 0
            let start = now()
            var elapsed = 0.0
            repeat { body(); calls += 1; elapsed = now() - start } while elapsed < seconds / Double(trials)
            best = min(best, elapsed / Double(calls))
        }
        return best
    }

    /// Times GEMM.forward on [m,k] x op(B) with `threading`, on fresh random operands.
    public static func measure(_ label: String, m: Int, n: Int, k: Int, transB: Bool = true,
                               threading: GEMMThreading = .pool, seconds: Double = 0.3) -> Measurement {
        let a = FloatBuffer(shape: [m, k]) { Float(($0 * 7919) % 1000) / 1000 - 0.5 }
        let b = FloatBuffer(shape: [k, n]) { Float(($0 * 104_729) % 1000) / 1000 - 0.5 }
        let c = FloatBuffer(shape: [m, n])
        let saved = GEMM.threading
        GEMM.threading = threading
        defer { GEMM.threading = saved }
        let perCall = bestSecondsPerCall(seconds: seconds) {
            GEMM.forward(m: m, n: n, k: k, a: a.pointer, b: b.pointer, transB: transB, c: c.data)
        }
        return Measurement(label: label, m: m, n: n, k: k, transB: transB, threading: threading,
                           secondsPerCall: perCall)
    }

    /// OpenBLAS's sgemm peak, a peer: the best GFLOP/s over large square-ish shapes, with OpenBLAS's own threads and
    /// with the pool's slicing of single-threaded OpenBLAS calls (whichever is faster).
    public static func sgemmPeak(seconds: Double = 0.5) -> Measurement {
        var best: Measurement?
        CPU.withISA(.portable) {   // the pool's GEMM on OpenBLAS, not the project's kernels
            for (m, n, k) in [(1024, 1024, 1024), (2048, 2048, 512), (1536, 1536, 1536)] {
                for threading in [GEMMThreading.openBLAS, .pool] {
                    let result = measure("peak \(m)x\(n)x\(k)", m: m, n: n, k: k, transB: false, threading: threading,
                                         seconds: seconds)
                    if best == nil || result.gflops > best!.gflops { best = result }
                }
            }
        }
        return best!
    }

    /// The 1-minute load average and the number of online cores: a load above the cores means other processes
    /// shared the CPU during the run, and every ratio printed alongside is suspect.
    public static func machineLoad() -> (oneMinute: Double, cores: Int) {
        var loads = [Double](repeating: 0, count: 3)
        let got = getloadavg(&loads, 3)
        return (got > 0 ? loads[0] : .nan, ProcessInfo.processInfo.activeProcessorCount)
    }

    /// The GEMMs of one prefill of the benchmark model (d_model 256, 4 heads x 64, 2 KV heads, SwiGLU 704,
    /// vocab 8192) over `tokens` rows, fused as Qwen2.swift runs them: (label, m, n, k, calls per forward).
    public static func benchmarkModelShapes(tokens t: Int, layers: Int = 4) -> [(String, Int, Int, Int, Int)] {
        [("qkv [T,256]x[256,512]", t, 512, 256, layers),
         ("o [T,256]x[256,256]", t, 256, 256, layers),
         ("gate+up [T,256]x[256,1408]", t, 1408, 256, layers),
         ("down [T,704]x[704,256]", t, 256, 704, layers),
         ("lm head [T,256]x[256,8192]", t, 8192, 256, 1)]
    }
}
