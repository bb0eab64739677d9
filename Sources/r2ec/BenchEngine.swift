// `r2ec bench engine`: the dual-head engine on the benchmark model (d_model 256, 4 layers, 4 heads / 2 KV heads,
// SwiGLU 704, vocab 8192, random weights): prefill and decode GFLOP/s as fractions of this machine's FMA peak
// measured in the same run (Yardsticks), beside OpenBLAS's sgemm peak and PyTorch eager as peers; direct-path
// recommendations/s against an item table, and peak memory.
import ArgumentParser
import Data
import Foundation
import Model
import Tensor

struct BenchEngine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Prefill and decode against the FMA peak (sgemm and PyTorch as peers), direct path, peak memory."
    )

    @Option(help: "Prefill batch sizes (sequences of --length tokens).")
    var prefillBatches: [Int] = [1, 8, 32, 64]

    @Option(help: "Tokens per prefill sequence.")
    var length = 128

    @Option(help: "Decode batch sizes.")
    var decodeBatches: [Int] = [1, 8, 32]

    @Option(help: "Decode steps timed per batch (after a prefill of --length tokens).")
    var decodeSteps = 32

    @Option(help: "Items in the synthetic catalogue of the recommendation benchmark (ml-100k has 1,682).")
    var items = 1682

    @Option(help: "Seconds per round spent timing each measurement.")
    var seconds = 1.0

    @Option(help: "Interleaved measurement rounds (the best of each is kept).")
    var rounds = 5

    @Flag(help: "Print where the forward pass spends its time (prefill and decode).")
    var profile = false

    @Option(help: "Rows from which the forward pass runs row- or sequence-parallel (default: the engine's).")
    var pipelineFrom: Int?

    @Option(help: "Rows per single-threaded GEMM block in the parallel schedules (default: the engine's).")
    var chunk: Int?

    @Option(help: "Rows per thread from which a decode step splits its sequences over the pool for the whole pass (default: the engine's).")
    var stepSplitFrom: Int?

    @Option(help: "Parts to run: prefill, decode, direct.")
    var parts: [String] = ["prefill", "decode", "direct"]

    @Flag(help: "Run the projections through OpenBLAS on the unpacked weights (as a model in training does) instead of packed copies.")
    var unpacked = false

    @Option(help: "Packed weights: float32, or bfloat16 (vdpbf16ps; figures then also against the bf16 dot-product peak).")
    var precision: PackedMatrix.Precision = .float32

    @Option(help: "How decode KV caches store keys and values: float16 (as the server does) or float32.")
    var kvPrecision = KVPrecision.float16

    @Flag(help: "Skip the PyTorch eager peer even when a python with torch is found.")
    var noTorch = false

    @Flag(help: "Only compare the forward schedules on prefill, interleaved round by round, and stop.")
    var compareSchedules = false

    /// The benchmark model's positions (maxPositionEmbeddings below).
    static let positions = 4096

    func validate() throws {
        for (name, sizes) in [("--prefill-batches", prefillBatches), ("--decode-batches", decodeBatches)] {
            if let bad = sizes.first(where: { !(1...1024).contains($0) }) {
                throw ValidationError("\(name): expected batch sizes in 1...1024, got \(bad)")
            }
        }
        guard length >= 1 else { throw ValidationError("--length: expected at least 1, got \(length)") }
        guard decodeSteps >= 1 else { throw ValidationError("--decode-steps: expected at least 1, got \(decodeSteps)") }
        guard length + decodeSteps <= Self.positions else {
            throw ValidationError("--length + --decode-steps: \(length) + \(decodeSteps) exceed the benchmark model's "
                                  + "\(Self.positions) positions")
        }
        guard (1...1_000_000).contains(items) else { throw ValidationError("--items: expected 1...1000000, got \(items)") }
        guard seconds > 0 && seconds.isFinite else { throw ValidationError("--seconds: expected > 0, got \(seconds)") }
        guard (1...100).contains(rounds) else { throw ValidationError("--rounds: expected 1...100, got \(rounds)") }
        for (name, value) in [("--pipeline-from", pipelineFrom), ("--chunk", chunk), ("--step-split-from", stepSplitFrom)] {
            if let value, value < 1 { throw ValidationError("\(name): expected at least 1, got \(value)") }
        }
        if let bad = parts.first(where: { !["prefill", "decode", "direct"].contains($0) }) {
            throw ValidationError("--parts: prefill, decode or direct, got '\(bad)'")
        }
    }

    func run() throws {
        let configuration = Qwen2Configuration(hiddenSize: 256, intermediateSize: 704, numHiddenLayers: 4,
                                               numAttentionHeads: 4, numKeyValueHeads: 2, vocabSize: 8192,
                                               tieWordEmbeddings: true, maxPositionEmbeddings: Self.positions)
        let random = try Qwen2Model(randomWith: configuration, seed: 1)
        if precision == .bfloat16 && !precision.isSupported {
            throw ValidationError("--precision bfloat16 needs a CPU with AVX512_BF16")
        }
        let model = unpacked ? random : random.packedForInference(precision: precision)
        if let pipelineFrom { Qwen2Model.pipelineMinimumRows = pipelineFrom; Qwen2Model.rowParallelMinimumRows = pipelineFrom }
        if let chunk { Qwen2Model.pipelineChunk = chunk }
        if let stepSplitFrom { Qwen2Model.stepSplitMinimumRows = stepSplitFrom }
        print("load average: \((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?")"
              + "; schedules: sequence-parallel from \(Qwen2Model.pipelineMinimumRows) rows, row-parallel from "
              + "\(Qwen2Model.rowParallelMinimumRows), blocks of \(Qwen2Model.pipelineChunk), decode steps split by "
              + "sequences from \(Qwen2Model.stepSplitMinimumRows) rows per thread")
        print("model: d_model 256, 4 layers, 4 heads (2 KV heads), SwiGLU 704, vocab 8192, tied head; "
              + "\(model.parameterCount) parameters")
        print("BLAS: \(BLAS.description); pool threads: \(ThreadPool.shared.threadCount)")
        print("projections: " + (model.isPacked
            ? String(format: "packed-weight kernel (%@, %@), %.1f MiB of packed copies", CPU.isa.description,
                     precision.rawValue, Double(model.packedByteCount) / 1048576)
            : PackedMatrix.isSupported ? "OpenBLAS on unpacked weights (--unpacked)" : "OpenBLAS (no packed kernel for \(CPU.isa))"))
        var roofline = Yardsticks.measure()
        let peak = GEMMBenchmark.sgemmPeak(seconds: seconds)
        print(String(format: "peer: OpenBLAS sgemm peak %.1f GFLOP/s (%@, %@) = %@ of the FMA peak", peak.gflops,
                     peak.label, peak.threading.rawValue, Yardsticks.ofPeak(peak.gflops, roofline)))
        let torch = noTorch || compareSchedules ? nil : TorchPeer.find()

        var rng = SplitMix64(seed: 7)
        func randomTokens(_ n: Int) -> [Int] { (0..<n).map { _ in Int(rng.next() % 8192) } }
        if compareSchedules {
            let schedules: [(String, Int, Int, Int)] = [
                ("kernel by kernel", Int.max, 256, 32), ("parallel, blocks 256", 128, 256, 32),
                ("parallel, blocks 512", 128, 512, 32), ("parallel, blocks 1024", 128, 1024, 32),
                ("parallel, blocks 2048", 128, 2048, 32), ("parallel, 1024, queries 64", 128, 1024, 64)]
            let inputs = prefillBatches.map { batch in (0..<batch).map { _ in randomTokens(length) } }
            var best = [[Double]](repeating: [Double](repeating: .infinity, count: inputs.count), count: schedules.count)
            for _ in 0..<rounds {
                roofline = roofline.remeasuringCompute(seconds: seconds / 8)
                for (si, schedule) in schedules.enumerated() {
                    Qwen2Model.pipelineMinimumRows = schedule.1; Qwen2Model.pipelineChunk = schedule.2
                    Qwen2Model.rowParallelMinimumRows = schedule.1
                    Qwen2Model.queryBlock = schedule.3
                    for (i, sequences) in inputs.enumerated() {
                        best[si][i] = min(best[si][i], GEMMBenchmark.bestSecondsPerCall(seconds: seconds / 8, trials: 2) {
                            _ = model.forward(sequences, rows: .last, logits: true)
                        })
                    }
                }
            }
            let roundPeak = roofline.fmaPeak(for: CPU.isa)
            print(String(format: "FMA peak over all rounds: %.1f GFLOP/s; fraction of it per schedule and batch:", roundPeak))
            print("schedule                    " + prefillBatches.map { String(format: "%8d", $0) }.joined())
            for (si, schedule) in schedules.enumerated() {
                let cells = prefillBatches.enumerated().map { i, batch in
                    String(format: "%7.1f%%", 100 * Double(batch) * prefillFlops(configuration, length: length) / best[si][i] / 1e9 / roundPeak)
                }
                print(schedule.0.padding(toLength: 28, withPad: " ", startingAt: 0) + cells.joined())
            }
            return
        }

        if parts.contains("prefill") { try runPrefill(model, configuration, peak, &roofline, torch, &rng) }
        if parts.contains("decode") { runDecode(model, configuration, &roofline, &rng) }
        if parts.contains("direct") { try runDirect(model, &rng) }

        print("load average at the end: \((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?")")
        var usage = rusage()
        #if os(Linux)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        print(String(format: "\npeak memory (maxrss): %.1f MiB", Double(usage.ru_maxrss) / 1024))
    }

    func runPrefill(_ model: Qwen2Model, _ configuration: Qwen2Configuration, _ peak: GEMMBenchmark.Measurement,
                    _ roofline: inout Roofline, _ torch: TorchPeer?, _ rng: inout SplitMix64) throws {
        func randomTokens(_ n: Int) -> [Int] { (0..<n).map { _ in Int(rng.next() % 8192) } }
        // The machine is shared: every measurement is the best of several rounds, and the rounds interleave the
        // sgemm peak with the model so that both see the same quiet moments (the ratio is what is reported).
        print("\nprefill (\(length) tokens per sequence, logits at the last token; model FLOPs, causal attention counted once;")
        print("best of \(rounds) rounds, each also re-measuring the FMA peak and the sgemm peak shape)")
        let prefillInputs = prefillBatches.map { batch in (0..<batch).map { _ in randomTokens(length) } }
        var prefillBest = [Double](repeating: .infinity, count: prefillBatches.count)
        var roundPeak = peak.gflops
        for _ in 0..<rounds {
            let again = CPU.withISA(.portable) {   // the peer: OpenBLAS, not the project's kernels
                GEMMBenchmark.measure(peak.label, m: peak.m, n: peak.n, k: peak.k, transB: peak.transB,
                                      threading: peak.threading, seconds: seconds / 4)
            }
            roundPeak = max(roundPeak, again.gflops)
            roofline = roofline.remeasuringCompute(seconds: seconds / 8)
            for (i, sequences) in prefillInputs.enumerated() {
                let perCall = GEMMBenchmark.bestSecondsPerCall(seconds: seconds / 4, trials: 2) {
                    _ = model.forward(sequences, rows: .last, logits: true)
                }
                prefillBest[i] = min(prefillBest[i], perCall)
            }
        }
        let fma = roofline.fmaPeak(for: CPU.isa)
        print(String(format: "over all rounds: FMA peak (%@) %.1f GFLOP/s; peer sgemm peak %.1f GFLOP/s", CPU.isa.description,
                     fma, roundPeak))
        if precision == .bfloat16, let bf16 = roofline.bf16Peak {
            print(String(format: "bfloat16 weights: the vdpbf16ps peak is %.1f GFLOP/s; fractions below stay against the float32 FMA peak (x%.2f = of the bf16 peak)",
                         bf16, fma / bf16))
        }
        print("batch   tokens/s     GFLOP/s   of FMA peak   of sgemm peak   PyTorch eager GFLOP/s   r2ec / PyTorch")
        for (i, batch) in prefillBatches.enumerated() {
            let flops = Double(batch) * prefillFlops(configuration, length: length)
            let gflops = flops / prefillBest[i] / 1e9
            var line = String(format: "%5d %10.0f %11.1f   %10.1f%%   %12.1f%%", batch, Double(batch * length) / prefillBest[i],
                              gflops, 100 * gflops / fma, 100 * gflops / roundPeak)
            if let result = torch?.run("prefill", batch: batch, length: length, seconds: max(1, seconds)) {
                let theirs = flops / result.seconds / 1e9
                line += String(format: "   %21.1f   %13.2fx", theirs, gflops / theirs)
            }
            print(line)
            if profile { printProfile(model) { _ = model.forward(prefillInputs[i], rows: .last, logits: true) } }
        }

    }

    func runDecode(_ model: Qwen2Model, _ configuration: Qwen2Configuration, _ roofline: inout Roofline,
                   _ rng: inout SplitMix64) {
        func randomTokens(_ n: Int) -> [Int] { (0..<n).map { _ in Int(rng.next() % 8192) } }
        print("\ndecode (one token per sequence per step after a \(length)-token prefill; greedy; \(kvPrecision.rawValue) KV cache;")
        print("\(rounds) interleaved rounds;", terminator: " ")
        print("tokens/s from the median step, which a descheduled step on a shared core does not move)")
        let decodeCaches = decodeBatches.map { batch in
            (0..<batch).map { _ in KVCache(configuration: configuration, reservingCapacity: length + decodeSteps + 4,
                                 precision: kvPrecision) }
        }
        let decodePrompts = decodeBatches.map { batch in (0..<batch).map { _ in randomTokens(length) } }
        var stepTimes = [[Double]](repeating: [], count: decodeBatches.count)
        for _ in 0..<rounds {
            roofline = roofline.remeasuringCompute(seconds: seconds / 8)
            for (i, batch) in decodeBatches.enumerated() {
                let caches = decodeCaches[i]
                for cache in caches { cache.trim(to: 0) }
                var out = model.forward(decodePrompts[i], caches: caches, rows: .last)
                for _ in 0..<decodeSteps {
                    let start = GEMMBenchmark.now()
                    let next = (0..<batch).map { argmax(out.logits!.data + $0 * 8192, 8192) }
                    out = model.forward(next.map { [$0] }, caches: caches, rows: .last)
                    stepTimes[i].append(GEMMBenchmark.now() - start)
                }
            }
        }
        let decodeBest = stepTimes.map { $0.sorted()[$0.count / 2] }
        // RecPO-style sampling cost per token, to compare with a decode step.
        var sampler = RandomSampler(settings: SamplingSettings(temperature: 1.5, topK: 100, seed: 1))
        let logits = (0..<8192).map { _ in Float(rng.nextGaussian()) }
        let sampleSeconds = logits.withUnsafeBufferPointer { p in
            GEMMBenchmark.bestSecondsPerCall(seconds: 0.2, trials: 3) { _ = sampler.sample(p.baseAddress!, count: 8192) }
        }
        print(String(format: "sampling (temperature 1.5, top-k 100, vocab 8192): %.1f us per token", sampleSeconds * 1e6))
        // A step reads every weight once (the packed copies, or the parameters) and each sequence's cache.
        let context = Double(length + decodeSteps / 2)
        let weightBytes = Double(model.isPacked ? model.packedByteCount : 4 * model.parameterCount)
        let cacheBytesPerSequence = 2 * Double(configuration.numHiddenLayers * configuration.numKeyValueHeads
            * configuration.headDim * kvPrecision.bytesPerElement) * context
        let fma = roofline.fmaPeak(for: CPU.isa)
        print(String(format: "FMA peak (%@) over all rounds %.1f GFLOP/s; STREAM triad %.1f GB/s; a step reads %.1f MiB of weights (L3: %d MiB) + %.2f MiB of KV cache per sequence",
                     CPU.isa.description, fma, roofline.triadBandwidth, weightBytes / 1048576, roofline.cacheBytes.l3 >> 20,
                     cacheBytesPerSequence / 1048576))
        print("batch   tokens/s   ms/step   GFLOP/s   of FMA peak   GB/s read   of STREAM triad   vs batch 1")
        for (i, batch) in decodeBatches.enumerated() {
            let rate = Double(batch) / decodeBest[i]
            let stepFlops = Double(batch) * decodeFlops(configuration, context: context)
            let gflops = stepFlops / decodeBest[i] / 1e9
            let bytes = (weightBytes + Double(batch) * cacheBytesPerSequence) / decodeBest[i] / 1e9
            print(String(format: "%5d %10.0f %9.2f %9.1f   %10.1f%%   %9.1f   %14.1f%%   x%.1f", batch, rate,
                         decodeBest[i] * 1e3, gflops, 100 * gflops / fma, bytes, 100 * bytes / roofline.triadBandwidth,
                         rate / (Double(decodeBatches[0]) / decodeBest[0])))
            if profile {
                let caches = decodeCaches[i]
                let next = (0..<batch).map { [$0] }
                printProfile(model) {
                    for cache in caches { cache.trim(to: length) }
                    _ = model.forward(next, caches: caches, rows: .last)
                }
            }
        }

    }

    func runDirect(_ model: Qwen2Model, _ rng: inout SplitMix64) throws {
        print("\ndirect path (user prompt of 20 history lines + <answer>, readout, one GEMM against the item table, top-10)")
        let catalog = Catalog(items: (1...items).map {
            Item(id: "\($0)", title: "Synthetic Movie Number \($0)", year: 1950 + $0 % 50, genres: ["Drama", "Comedy"])
        })
        let itemPrompts = catalog.items.map { Prompts.item($0, stats: ItemStats(count: 10 + $0.title.count, meanRating: 3.5)) }
        var texts = itemPrompts
        var histories: [UserHistory] = []
        for u in 0..<256 {
            let picks = (0..<20).map { _ in Int(rng.next() % UInt64(items)) }
            let history = UserHistory(items: picks, timestamps: (0..<20).map { Int64(880_000_000 + u * 1000 + $0 * 86_400) },
                                      ratings: (0..<20).map { Float(1 + $0 % 5) })
            histories.append(history)
            if u < 64 { texts.append(Prompts.user(history: history, catalog: catalog, targetTime: 890_000_000, format: .current)) }
        }
        var start = GEMMBenchmark.now()
        let tokenizer = try TokenizerTrainer.train(texts: texts, vocabularySize: 8192)
        print(String(format: "tokenizer: %d tokens trained in %.2f s", tokenizer.vocabularySize, GEMMBenchmark.now() - start))
        start = GEMMBenchmark.now()
        let dual = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: catalog, itemPrompts: itemPrompts,
                                     progress: false, promptFormat: .current)
        let tableSeconds = GEMMBenchmark.now() - start
        print(String(format: "item table: %d items in %.2f s (%.0f items/s)", items, tableSeconds, Double(items) / tableSeconds))
        let promptTokens = tokenizer.encode(DualHeadFormat.directText(userPrompt: dual.userPrompt(histories[0]))).count
        print("user prompt: \(promptTokens) tokens")
        print("queries per call   recommendations/s   ms/call")
        for batch in [1, 32, 256] {
            let chunk = Array(histories.prefix(batch))
            let perCall = GEMMBenchmark.bestSecondsPerCall(seconds: seconds, trials: 3) {
                _ = try! dual.recommend(chunk, k: 10)
            }
            print(String(format: "%16d %19.1f %9.2f", batch, Double(batch) / perCall, perCall * 1e3))
        }

    }

    /// Multiply-adds x 2 of one prefill sequence: the layer projections on every token, causal attention (query i
    /// attends to i + 1 keys: QK^T and PV), and the LM head on the last token.
    func prefillFlops(_ c: Qwen2Configuration, length n: Int) -> Double {
        let d = Double(c.hiddenSize), ffn = Double(c.intermediateSize), q = Double(c.numAttentionHeads * c.headDim)
        let perToken = d * Double(c.qkvRows) + q * d + d * 2 * ffn + ffn * d
        let attention = 2 * q * Double(n) * Double(n + 1) / 2
        return 2 * Double(c.numHiddenLayers) * (Double(n) * perToken + attention) + 2 * d * Double(c.vocabSize)
    }

    /// Multiply-adds x 2 of one decode token at `context` keys: the layer projections, attention (QK^T and PV over
    /// the context) and the LM head.
    func decodeFlops(_ c: Qwen2Configuration, context: Double) -> Double {
        let d = Double(c.hiddenSize), ffn = Double(c.intermediateSize), q = Double(c.numAttentionHeads * c.headDim)
        let perLayer = d * Double(c.qkvRows) + q * d + d * 2 * ffn + ffn * d + 2 * q * context
        return 2 * (Double(c.numHiddenLayers) * perLayer + d * Double(c.vocabSize))
    }

    /// Runs `body` 10 times with a profile installed and prints the share of each phase.
    func printProfile(_ model: Qwen2Model, _ body: () -> Void) {
        let p = PhaseProfile()
        model.profile = p
        for _ in 0..<10 { body() }
        model.profile = nil
        let total = p.seconds.values.reduce(0, +)
        print("      " + p.order.map { String(format: "%@ %.0f%%", $0, 100 * p.seconds[$0]! / total) }.joined(separator: ", "))
    }

    func argmax(_ p: UnsafeMutablePointer<Float>, _ n: Int) -> Int {
        var best = 0
        for i in 1..<n where p[i] > p[best] { best = i }
        return best
    }
}
