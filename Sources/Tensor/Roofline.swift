// Roofline: the machine's compute and memory limits measured in the same run as a benchmark, so that every figure
// can be printed as a fraction of what the hardware does (compute-bound work against the FMA peak, memory-bound work
// against STREAM bandwidth). OpenBLAS and PyTorch are peers to compare with, not limits. Every `r2ec bench` command
// calls `Roofline.measure()` and prints `summary`.
import CKernels
import Foundation

public struct Roofline: Sendable {
    /// GFLOP/s of independent fused multiply-adds on every pool thread with the widest instruction set.
    public var fmaPeak: Double
    /// The instruction set of `fmaPeak` (CPU.detected, not a forced lower one).
    public var isa: KernelISA
    /// GFLOP/s of the AVX2 FMA loop on every pool thread (nil when the CPU lacks AVX2).
    public var avx2Peak: Double?
    /// GFLOP/s of the vdpbf16ps loop on every pool thread (nil without AVX512_BF16).
    public var bf16Peak: Double?
    /// STREAM copy and triad over arrays far larger than the last-level cache, every pool thread, GB/s (1e9 bytes).
    public var copyBandwidth: Double
    public var triadBandwidth: Double
    /// Bytes per array of the STREAM runs, and the caches read from sysfs (0 when unknown).
    public var streamArrayBytes: Int
    public var cacheBytes: (l1d: Int, l2: Int, l3: Int)
    public var threads: Int

    /// The FMA peak of the instruction set the kernels run (the AVX2 peak when R2EC_ISA forces avx2).
    public func fmaPeak(for isa: KernelISA) -> Double { isa == .avx2 ? (avx2Peak ?? fmaPeak) : fmaPeak }

    /// Measures everything, spending about `seconds` on the FMA loops and as much again on STREAM.
    public static func measure(seconds: Double = 0.4, pool: ThreadPool = .shared) -> Roofline {
        let isa = CPU.detected
        let fma = peak(seconds: seconds / 2, pool: pool, flopsPerIteration: r2ec_fma_loop_flops(isa.c)) {
            r2ec_fma_loop(isa.c, $0)
        }
        let avx2 = isa >= .avx2 && isa != .avx2
            ? peak(seconds: seconds / 4, pool: pool, flopsPerIteration: r2ec_fma_loop_flops(KernelISA.avx2.c)) {
                r2ec_fma_loop(KernelISA.avx2.c, $0)
            } : isa == .avx2 ? fma : nil
        let bf16 = CPU.detectedBF16
            ? peak(seconds: seconds / 4, pool: pool, flopsPerIteration: r2ec_bf16_dot_loop_flops()) {
                r2ec_bf16_dot_loop($0)
            } : nil
        let caches = cacheSizes()
        let arrayBytes = max(4 * caches.l3, 64 << 20)
        let (copy, triad) = stream(arrayBytes: arrayBytes, seconds: seconds, pool: pool, isa: isa)
        return Roofline(fmaPeak: fma, isa: isa, avx2Peak: avx2, bf16Peak: bf16, copyBandwidth: copy,
                        triadBandwidth: triad, streamArrayBytes: arrayBytes, cacheBytes: caches,
                        threads: pool.threadCount)
    }

    /// This roofline with the FMA peaks measured again (about `seconds`), keeping the higher of each: benchmarks
    /// re-measure in every round so that the peak and the figure see the same quiet (or busy) moments.
    public func remeasuringCompute(seconds: Double = 0.1, pool: ThreadPool = .shared) -> Roofline {
        var r = self
        r.fmaPeak = max(fmaPeak, Self.peak(seconds: seconds, pool: pool, flopsPerIteration: r2ec_fma_loop_flops(isa.c)) {
            r2ec_fma_loop(self.isa.c, $0)
        })
        if let avx2Peak, isa > .avx2 {
            r.avx2Peak = max(avx2Peak, Self.peak(seconds: seconds / 2, pool: pool,
                                                 flopsPerIteration: r2ec_fma_loop_flops(KernelISA.avx2.c)) {
                r2ec_fma_loop(KernelISA.avx2.c, $0)
            })
        }
        return r
    }

    /// The keeps-the-best of two measurements (rounds of a benchmark re-measure and keep the highest).
    public func merged(with other: Roofline) -> Roofline {
        var r = self
        r.fmaPeak = max(fmaPeak, other.fmaPeak)
        if let a = other.avx2Peak { r.avx2Peak = max(avx2Peak ?? 0, a) }
        if let b = other.bf16Peak { r.bf16Peak = max(bf16Peak ?? 0, b) }
        r.copyBandwidth = max(copyBandwidth, other.copyBandwidth)
        r.triadBandwidth = max(triadBandwidth, other.triadBandwidth)
        return r
    }

    /// Lines describing the yardsticks, for the head of a benchmark's output.
    public var summary: String {
        func mib(_ b: Int) -> String { b >= 1 << 20 ? "\(b >> 20) MiB" : "\(b >> 10) KiB" }
        var lines = [String(format: "roofline (%d threads): FMA peak %.1f GFLOP/s (%@)", threads, fmaPeak, isa.description)]
        if let avx2Peak, isa != .avx2 { lines[0] += String(format: ", AVX2 FMA %.1f", avx2Peak) }
        if let bf16Peak { lines[0] += String(format: ", bf16 vdpbf16ps %.1f", bf16Peak) }
        lines.append(String(format: "  STREAM copy %.1f GB/s, triad %.1f GB/s (arrays of %@; caches L1d %@, L2 %@, L3 %@ per sysfs)",
                            copyBandwidth, triadBandwidth, mib(streamArrayBytes), mib(cacheBytes.l1d),
                            mib(cacheBytes.l2), mib(cacheBytes.l3)))
        return lines.joined(separator: "\n")
    }

    // MARK: measuring

    /// Best GFLOP/s of five trials; each trial hands out many small chunks so that every thread stays busy to the end.
    static func peak(seconds: Double, pool: ThreadPool, flopsPerIteration: Double, _ loop: @escaping (Int) -> Float) -> Double {
        let chunksPerThread = 8, threads = pool.threadCount
        // Calibrate: iterations per chunk so a trial lasts about seconds / 5.
        var iterations = 1 << 16
        while true {
            let start = GEMMBenchmark.now()
            _ = loop(iterations)
            let elapsed = GEMMBenchmark.now() - start
            if elapsed > 2e-3 || iterations > 1 << 30 {
                let perChunk = seconds / 5 / Double(chunksPerThread)
                iterations = max(1 << 12, Int(Double(iterations) * perChunk / max(elapsed, 1e-9)))
                break
            }
            iterations *= 4
        }
        var best = 0.0
        let chunks = chunksPerThread * threads
        let sink = UnsafeMutablePointer<Float>.allocate(capacity: chunks)
        defer { sink.deallocate() }
        for _ in 0..<5 {
            let start = GEMMBenchmark.now()
            pool.parallelFor(chunks) { sink[$0] = loop(iterations) }
            let elapsed = GEMMBenchmark.now() - start
            best = max(best, Double(chunks) * Double(iterations) * flopsPerIteration / elapsed / 1e9)
        }
        return best
    }

    /// STREAM copy and triad on three arrays of `arrayBytes` each, split in slices over the pool; best of trials.
    static func stream(arrayBytes: Int, seconds: Double, pool: ThreadPool, isa: KernelISA) -> (copy: Double, triad: Double) {
        let n = arrayBytes / 4
        let a = FloatBuffer(shape: [n]), b = FloatBuffer(shape: [n]), c = FloatBuffer(shape: [n])
        a.fill(1); b.fill(2); c.fill(0.5)   // touched once, so the trials do not measure page faults
        let slices = 16 * pool.threadCount
        func run(_ body: (Range<Int>) -> Void) -> Double {
            let start = GEMMBenchmark.now()
            pool.parallelFor(slices) { s in body((n * s / slices)..<(n * (s + 1) / slices)) }
            return GEMMBenchmark.now() - start
        }
        var copy = 0.0, triad = 0.0
        let deadline = GEMMBenchmark.now() + seconds
        var trials = 0
        repeat {
            let tc = run { r in r2ec_stream_copy(isa.c, a.pointer + r.lowerBound, c.data + r.lowerBound, r.count) }
            copy = max(copy, 8 * Double(n) / tc / 1e9)
            let tt = run { r in
                r2ec_stream_triad(isa.c, a.data + r.lowerBound, b.pointer + r.lowerBound, c.pointer + r.lowerBound, 3, r.count)
            }
            triad = max(triad, 12 * Double(n) / tt / 1e9)
            trials += 1
        } while trials < 3 || (GEMMBenchmark.now() < deadline && trials < 10)
        return (copy, triad)
    }

    /// Data cache sizes of CPU 0 from sysfs (index*/level, type, size), 0 where unknown.
    static func cacheSizes() -> (l1d: Int, l2: Int, l3: Int) {
        var l1d = 0, l2 = 0, l3 = 0
        for index in 0..<8 {
            let base = "/sys/devices/system/cpu/cpu0/cache/index\(index)/"
            func read(_ name: String) -> String? {
                (try? String(contentsOfFile: base + name, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard let level = read("level").flatMap(Int.init), let type = read("type"), let size = read("size") else { continue }
            var bytes = Int(size.filter(\.isNumber)) ?? 0
            if size.hasSuffix("K") { bytes <<= 10 } else if size.hasSuffix("M") { bytes <<= 20 }
            switch (level, type) {
            case (1, "Data"): l1d = bytes
            case (2, _): l2 = bytes
            case (3, _): l3 = bytes
            default: break
            }
        }
        return (l1d, l2, l3)
    }
}
