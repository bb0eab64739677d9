// What every `r2ec bench` command reports its figures against, measured in the same run: the machine's roofline
// (FMA peak, STREAM bandwidth; Tensor.Roofline) as the limit, and peers as comparisons, not limits: OpenBLAS's
// sgemm peak and PyTorch eager (benchmarks/torch_peer.py, run with a python that has torch, when there is one).
import ArgumentParser
import Foundation
import Tensor

extension PackedMatrix.Precision: ExpressibleByArgument {}

enum Yardsticks {
    /// Measures and prints the roofline (and the kernels this run uses). Other benches call this first.
    static func measure(seconds: Double = 0.4) -> Roofline {
        let roofline = Roofline.measure(seconds: seconds)
        print(roofline.summary)
        print("kernels: \(CPU.isa)" + (CPU.isa < CPU.detected ? " (forced by R2EC_ISA; the CPU has \(CPU.detected))" : "")
              + (CPU.hasBF16 ? ", bf16 available" : ""))
        return roofline
    }

    /// "x% of the FMA peak" for the kernels this run uses (the AVX2 peak when R2EC_ISA=avx2).
    static func ofPeak(_ gflops: Double, _ roofline: Roofline) -> String {
        String(format: "%.1f%%", 100 * gflops / roofline.fmaPeak(for: CPU.isa))
    }

    static func loadAverage() -> String {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3)
            .joined(separator: " ") ?? "?"
    }
}

/// PyTorch eager on the benchmark model, run as a child process (benchmarks/torch_peer.py).
struct TorchPeer {
    struct Result { var seconds: Double; var median: Double; var version: String }

    let python: String
    let script: String

    /// The peer when a python with torch is found: $R2EC_TORCH_PYTHON, else .venv-bench/bin/python (make
    /// bench-deps), else .venv/bin/python, else python3 on PATH; nil (with the reason printed) otherwise.
    static func find() -> TorchPeer? {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("benchmarks/torch_peer.py").path
        guard FileManager.default.fileExists(atPath: script) else {
            print("PyTorch peer: absent (\(script) not found)")
            return nil
        }
        var candidates: [String] = []
        if let python = ProcessInfo.processInfo.environment["R2EC_TORCH_PYTHON"] { candidates.append(python) }
        candidates += [".venv-bench/bin/python", ".venv/bin/python"].filter { FileManager.default.fileExists(atPath: $0) }
        candidates.append("python3")
        for python in candidates {
            let check = Process()
            check.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            check.arguments = [python, "-c", "import torch"]
            check.standardOutput = FileHandle.nullDevice
            check.standardError = FileHandle.nullDevice
            guard (try? check.run()) != nil else { continue }
            check.waitUntilExit()
            if check.terminationStatus == 0 { return TorchPeer(python: python, script: script) }
        }
        print("PyTorch peer: absent (no python with torch; `make bench-deps` installs one in .venv-bench, or set R2EC_TORCH_PYTHON)")
        return nil
    }

    /// Seconds per call of `mode` (prefill or train) at batch x length on the pool's thread count.
    func run(_ mode: String, batch: Int, length: Int, seconds: Double) -> Result? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, script, mode, "--batch", "\(batch)", "--length", "\(length)",
                             "--threads", "\(ThreadPool.shared.threadCount)", "--seconds", "\(seconds)"]
        let out = Pipe()
        process.standardOutput = out
        guard (try? process.run()) != nil else { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let best = object["seconds"] as? Double, let median = object["median"] as? Double else {
            print("PyTorch peer: \(mode) failed (status \(process.terminationStatus))")
            return nil
        }
        return Result(seconds: best, median: median, version: object["torch"] as? String ?? "?")
    }
}
