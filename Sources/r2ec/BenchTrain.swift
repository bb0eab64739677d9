// `r2ec bench train`: training throughput of the benchmark model (d_model 256, 4 layers, 4 heads / 2 KV heads,
// SwiGLU 704, vocab 8192, tied head) at batch 32 x 128 tokens with a next-token loss on every row: tokens/s and the
// model's FLOP rate (forward + backward = 3x the forward's multiply-adds) as a fraction of the FMA peak measured in
// the same run, beside OpenBLAS's sgemm peak and a PyTorch eager step of the same model as peers. Steps include
// forward, loss, backward and AdamW.
import ArgumentParser
import Data
import Foundation
import Model
import Tensor
import Train

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training step of the benchmark model at batch 32 x 128 against the FMA peak, sgemm and PyTorch eager."
    )

    @Option(help: "Sequences per batch.") var batch = 32
    @Option(help: "Tokens per sequence.") var length = 128
    @Option(help: "Timed training steps (after one warm-up step).") var steps = 10
    @Option(help: "Seconds spent measuring the sgemm peak.") var peakSeconds = 0.5
    @Flag(help: "Skip the PyTorch eager peer even when a python with torch is found.") var noTorch = false

    func validate() throws {
        guard (1...1024).contains(batch) else { throw ValidationError("--batch: expected 1...1024, got \(batch)") }
        guard (2...4096).contains(length) else { throw ValidationError("--length: expected 2...4096, got \(length)") }
        guard (1...10_000).contains(steps) else { throw ValidationError("--steps: expected 1...10000, got \(steps)") }
        guard peakSeconds > 0 && peakSeconds.isFinite else {
            throw ValidationError("--peak-seconds: expected > 0, got \(peakSeconds)")
        }
    }

    func run() throws {
        let c = Qwen2Configuration(hiddenSize: 256, intermediateSize: 704, numHiddenLayers: 4, numAttentionHeads: 4,
                                   numKeyValueHeads: 2, vocabSize: 8192, tieWordEmbeddings: true,
                                   maxPositionEmbeddings: 4096)
        let model = try Qwen2Model(randomWith: c, seed: 1)
        let graph = TrainingGraph(model: model)
        let optimizer = AdamW(layout: model.parameters.layout, settings: AdamWSettings())
        var rng = SplitMix64(seed: 2)
        let sequences = (0..<batch).map { _ in (0..<length).map { _ in Int(rng.next() % UInt64(c.vocabSize)) } }
        var rows: [Int] = [], targets: [Int] = []
        for (s, t) in sequences.enumerated() {
            for i in 0..<(length - 1) { rows.append(s * length + i); targets.append(t[i + 1]) }
        }
        let weights = [Float](repeating: 1 / Float(rows.count), count: rows.count)
        print("load average before: \(Yardsticks.loadAverage())")
        print("model: d_model 256, 4 layers, 4 heads (2 KV), SwiGLU 704, vocab 8192, tied; \(model.parameterCount) parameters")
        print("BLAS: \(BLAS.description); pool threads: \(ThreadPool.shared.threadCount)")
        var roofline = Yardsticks.measure()
        let peakBefore = GEMMBenchmark.sgemmPeak(seconds: peakSeconds)
        var phase: [String: Double] = [:]
        func step() -> Double {
            var t = GEMMBenchmark.now()
            func lap(_ name: String) { let now = GEMMBenchmark.now(); phase[name, default: 0] += now - t; t = now }
            graph.zeroGradients()
            graph.forward(sequences); lap("forward")
            let loss = graph.tokenLoss(rows: rows, targets: targets, weights: weights); lap("lm head fwd+bwd")
            graph.backward(); lap("backward")
            optimizer.update(parameters: model.parameters, gradients: graph.gradients, lr: 1e-4); lap("adamw")
            return loss
        }
        _ = step()
        phase = [:]
        let profile = PhaseProfile()
        graph.profile = profile
        var times: [Double] = []
        var loss = 0.0
        for _ in 0..<steps {
            let start = GEMMBenchmark.now()
            loss = step()
            times.append(GEMMBenchmark.now() - start)
        }
        let peakAfter = GEMMBenchmark.sgemmPeak(seconds: peakSeconds)
        let peak = max(peakBefore.gflops, peakAfter.gflops)
        roofline = roofline.remeasuringCompute(seconds: peakSeconds / 2)
        let fma = roofline.fmaPeak(for: CPU.isa)
        let tokens = Double(batch * length)
        let flops = 3 * 2 * graph.forwardMultiplyAdds(lmRows: rows.count)
        let median = times.sorted()[times.count / 2], best = times.min()!
        print(String(format: "FMA peak (%@, before and after the steps) %.1f GFLOP/s; peer: sgemm peak %.1f GFLOP/s before, %.1f after",
                     CPU.isa.description, fma, peakBefore.gflops, peakAfter.gflops))
        print(String(format: "step (forward + loss + backward + AdamW), %d x %d tokens: median %.3f s, best %.3f s; last loss %.3f",
                     batch, length, median, best, loss))
        print(String(format: "training: %.0f tokens/s (median), %.1f GFLOP/s = %.1f%% of the FMA peak (best step: %.1f%%); %.1f%% of the sgemm peak",
                     tokens / median, flops / median / 1e9, 100 * flops / median / 1e9 / fma,
                     100 * flops / best / 1e9 / fma, 100 * flops / median / 1e9 / peak))
        if !noTorch, let torch = TorchPeer.find(),
           let result = torch.run("train", batch: batch, length: length, seconds: max(3, 3 * median)) {
            print(String(format: "peer: PyTorch %@ eager step, same model and batch: median %.3f s, best %.3f s = %.1f GFLOP/s by r2ec's count; r2ec is %.2fx faster (median), %.2fx (best)",
                         result.version, result.median, result.seconds, flops / result.median / 1e9,
                         result.median / median, result.seconds / best))
        }
        let total = phase.values.reduce(0, +)
        for name in ["forward", "lm head fwd+bwd", "backward", "adamw"] {
            print(String(format: "  %-16@ %5.1f%%", name, 100 * (phase[name] ?? 0) / total))
        }
        print("inside forward and backward:")
        for name in profile.order {
            print(String(format: "  %-16@ %5.1f%% (%.3f s per step)", name, 100 * profile.seconds[name]! / total,
                         profile.seconds[name]! / Double(steps)))
        }
        print("load average after: \(Yardsticks.loadAverage()) (above the core count: other work shared the cores)")
    }
}
