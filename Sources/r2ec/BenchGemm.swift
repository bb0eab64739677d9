// `r2ec bench gemm`: GEMM.forward's GFLOP/s (OpenBLAS under each threading strategy) on the benchmark model's prefill
// shapes as fractions of the FMA peak measured in the same run (Yardsticks), with cblas_sgemm's own peak as a peer,
// and the SIMD kernels' speed-ups over their naive twins.
import ArgumentParser
import Foundation
import Tensor

struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "Measure sgemm peak and the GEMM wrapper on the benchmark model's shapes (d 256, ffn 704, vocab 8192)."
    )

    @Option(help: "Batches of 128 tokens to measure.")
    var batches: [Int] = [1, 8, 32, 64]

    @Option(help: "Seconds spent timing each shape and strategy.")
    var seconds: Double = 0.3

    @Option(help: "Threading strategies: pool, openBLAS, single.")
    var strategies: [String] = ["pool", "openBLAS", "single"]

    @Flag(help: "Also time unfused projections (q, k, v and gate, up as separate GEMMs) and untransposed weights.")
    var variants = false

    @Flag(help: "Also time the SIMD kernels against their naive twins.")
    var kernels = false

    func validate() throws {
        if let bad = batches.first(where: { !(1...1024).contains($0) }) {
            throw ValidationError("--batches: expected batch counts in 1...1024, got \(bad)")
        }
        guard seconds > 0 && seconds.isFinite else { throw ValidationError("--seconds: expected > 0, got \(seconds)") }
        if let bad = strategies.first(where: { GEMMThreading(rawValue: $0) == nil }) {
            throw ValidationError("--strategies: \(GEMMThreading.allCases.map(\.rawValue).joined(separator: ", ")), got '\(bad)'")
        }
    }

    func run() throws {
        let threadings = strategies.compactMap(GEMMThreading.init(rawValue:))
        print("BLAS: \(BLAS.description); pool threads: \(ThreadPool.shared.threadCount)")
        let loadBefore = GEMMBenchmark.machineLoad()
        print(String(format: "load average %.2f on %d cores%@", loadBefore.oneMinute, loadBefore.cores,
                     loadBefore.oneMinute > Double(loadBefore.cores) - 0.5 ? " (other work is running: expect noise)" : ""))
        let roofline = Yardsticks.measure()
        let fma = roofline.fmaPeak(for: CPU.isa)
        let peak = GEMMBenchmark.sgemmPeak(seconds: seconds * 2)
        print(String(format: "peer: sgemm peak %.1f GFLOP/s (%@, %@) = %.1f%% of the FMA peak; figures below: GFLOP/s (%% of the FMA peak)",
                     peak.gflops, peak.label, peak.threading.rawValue, 100 * peak.gflops / fma))
        defer {
            let after = GEMMBenchmark.sgemmPeak(seconds: seconds * 2)
            let load = GEMMBenchmark.machineLoad()
            print(String(format: "\nsgemm peak again at the end: %.1f GFLOP/s (%.0f%% of the first); load average %.2f",
                         after.gflops, 100 * after.gflops / peak.gflops, load.oneMinute))
        }
        for batch in batches {
            let tokens = batch * 128
            print("\nbatch \(batch) (T = \(tokens))")
            print(pad("shape", 30) + threadings.map { pad($0.rawValue, 18) }.joined())
            var totals = [GEMMThreading: (flops: Double, seconds: Double)]()
            var totalsWithoutHead = totals
            for (label, m, n, k, calls) in GEMMBenchmark.benchmarkModelShapes(tokens: tokens) {
                var line = pad(label, 30)
                for threading in threadings {
                    let r = GEMMBenchmark.measure(label, m: m, n: n, k: k, threading: threading, seconds: seconds)
                    line += pad(String(format: "%6.1f (%3.0f%%)", r.gflops, 100 * r.gflops / fma), 18)
                    let f = r.flops * Double(calls), s = r.secondsPerCall * Double(calls)
                    totals[threading, default: (0, 0)].flops += f
                    totals[threading, default: (0, 0)].seconds += s
                    if !label.hasPrefix("lm head") {
                        totalsWithoutHead[threading, default: (0, 0)].flops += f
                        totalsWithoutHead[threading, default: (0, 0)].seconds += s
                    }
                }
                print(line)
            }
            for (name, table) in [("all GEMMs, LM head on every row", totals),
                                  ("layer GEMMs only (LM head on 1 row)", totalsWithoutHead)] {
                var line = pad(name, 30)
                for threading in threadings {
                    let t = table[threading]!
                    let gflops = t.flops / t.seconds / 1e9
                    line += pad(String(format: "%6.1f (%3.0f%%)", gflops, 100 * gflops / fma), 18)
                }
                print(line)
            }
            if variants { printVariants(tokens: tokens, peak: fma) }
        }
        if kernels {
            print("\nSIMD kernels vs naive twins (T = 1024)")
            for t in KernelBenchmark.run(tokens: 1024, seconds: seconds) {
                print(pad(t.kernel, 16) + pad(t.shape, 36)
                      + String(format: "fast %8.1f us  naive %8.1f us  x%.1f", t.fastSeconds * 1e6,
                               t.naiveSeconds * 1e6, t.speedup))
            }
        }
    }

    private func printVariants(tokens t: Int, peak: Double) {
        func rate(_ shapes: [(Int, Int, Int)], transB: Bool = true) -> Double {
            var flops = 0.0, seconds = 0.0
            for (m, n, k) in shapes {
                let r = GEMMBenchmark.measure("", m: m, n: n, k: k, transB: transB, seconds: self.seconds)
                flops += r.flops; seconds += r.secondsPerCall
            }
            return flops / seconds / 1e9
        }
        let rows: [(String, Double)] = [
            ("qkv fused", rate([(t, 512, 256)])),
            ("q, k, v separate", rate([(t, 256, 256), (t, 128, 256), (t, 128, 256)])),
            ("gate+up fused", rate([(t, 1408, 256)])),
            ("gate, up separate", rate([(t, 704, 256), (t, 704, 256)])),
            ("gate+up, W stored [in,out]", rate([(t, 1408, 256)], transB: false)),
            ("down, W stored [in,out]", rate([(t, 256, 704)], transB: false)),
        ]
        for (name, gflops) in rows {
            print(pad("  " + name, 30) + String(format: "%6.1f (%3.0f%%) pool", gflops, 100 * gflops / peak))
        }
    }

    private func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }
}
