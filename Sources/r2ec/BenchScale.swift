// `r2ec bench scale`: serving cost against catalogue size, on synthetic catalogues (`r2ec data synth`'s items) of
// 10^3 .. 10^6 items scored by a trained checkpoint's network. Per size: item-table build rate (the network reading
// out item prompts, measured on a sample of up to --build-sample items: every item costs the same prefill), table
// memory, the scoring pass alone (one user vector against the whole packed table) as GB/s of table read beside the
// STREAM bandwidth measured in the same run, OpenBLAS's sgemv over the unpacked table as a peer, the top-10
// selection over the scores alone, direct Recommend latency p50/p99 at batch 1 (prompt, prefill, scoring, top-10)
// and Recommend throughput at --batch, and the process's resident memory. The table's rows past the sample repeat
// the sampled rows (scoring cost does not depend on the values).
import ArgumentParser
import Data
import Foundation
import Model
import Tensor

struct BenchScale: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Item-table build, memory, scoring bandwidth and Recommend latency for synthetic catalogues of 10^3..10^6 items."
    )

    @Option(help: "Catalogue sizes, comma-separated.") var sizes = "1000,10000,100000,1000000"
    @Option(help: "Checkpoint whose network reads the items out and scores.") var model = "models/default"
    @Option(help: "Items read out by the network per size to measure the build rate.") var buildSample = 4000
    @Option(help: "Seconds of Recommend calls per measurement.") var seconds = 3.0
    @Option(help: "Histories per batched Recommend call.") var batch = 32
    @Option(help: "Precision of the network and the scoring table: float32 or bfloat16 (AVX512_BF16 CPUs).")
    var precision = PackedMatrix.Precision.float32
    @Option(help: "Item table the scoring pass and Recommend read: float32 (packed; bfloat16 with --precision bfloat16), or int8 (one float32 scale per row).")
    var itemTablePrecision = ItemTablePrecision.float32
    @Option(help: "Write the rows as JSON here too (what the plots in docs/benchmarks.md read).") var json: String?
    @Option(help: "Seed of the synthetic catalogue.") var seed: UInt64 = 1
    @Option(help: "A safetensors file of one float32 [rows, hidden] tensor (e.g. an item table `r2ec serve --item-table-cache` saved) whose first rows replace the repeated read-out rows: distinct real item vectors, for the ranking passes' shortlists.")
    var itemVectors: String?
    @Flag(help: "With --item-table-precision int8 on an AVX512_VNNI CPU: also make the int4 screening copy of the table and measure the ranking pass and Recommend through it (an experiment: docs/scale.md).")
    var int4Screen = false

    struct Row: Codable {
        var items: Int
        var itemTablePrecision: String
        var buildItemsPerSecond: Double
        var buildSample: Int
        var tableMiB: Double
        var scoreMilliseconds: Double
        var scoreGBPerSecond: Double
        var topKMilliseconds: Double
        var sgemvMilliseconds: Double
        /// int8 with VNNI: the ranking pass (quantised user vector, VNNI pass, exact re-score near the top) and the
        /// items it re-scored.
        var rankingMilliseconds: Double?
        var rescoredItems: Int?
        /// int8 with VNNI: the same through the int4 screening copy (Int4Screen), its bytes and items re-scored.
        var screenMilliseconds: Double?
        var screenRescoredItems: Int?
        var screenMiB: Double?
        var p50Milliseconds: Double
        var p99Milliseconds: Double
        var batchedPerSecond: Double
        /// int8 with VNNI: Recommend with every item scored exactly (the widening kernel), measured in the same run.
        var exactP50Milliseconds: Double?
        var exactP99Milliseconds: Double?
        var exactBatchedPerSecond: Double?
        /// int8 with VNNI: Recommend through the int8 VNNI pass without the int4 screen, same run.
        var int8P50Milliseconds: Double?
        var int8P99Milliseconds: Double?
        var int8BatchedPerSecond: Double?
        /// Items re-scored per Recommend at batch 1 (median, p99, largest): the default ranking pass, and the int8
        /// VNNI pass without the screen.
        var recommendRescored: [Int]?
        var int8RecommendRescored: [Int]?
        var rssMiB: Double
        var streamCopyGBPerSecond: Double
        var streamTriadGBPerSecond: Double
    }

    static func counts(_ c: [Int]?) -> String { c.map { $0.map(String.init).joined(separator: "/") } ?? "-" }

    func run() throws {
        let wanted = try sizes.split(separator: ",").map { s -> Int in
            guard let n = Int(s.trimmingCharacters(in: .whitespaces)), n >= 10, n <= 50_000_000 else {
                throw ValidationError("--sizes: expected item counts in 10...50000000, got '\(s)'")
            }
            return n
        }
        guard buildSample >= 1 else { throw ValidationError("--build-sample: expected at least 1, got \(buildSample)") }
        guard seconds > 0 else { throw ValidationError("--seconds: expected > 0, got \(seconds)") }
        guard batch >= 1 && batch <= 4096 else { throw ValidationError("--batch: expected 1...4096, got \(batch)") }
        guard precision.isSupported || precision == .float32 else {
            throw ValidationError("--precision bfloat16: this CPU has no AVX512_BF16")
        }
        if int4Screen && itemTablePrecision != .int8 {
            throw ValidationError("--int4-screen: screens the int8 table; add --item-table-precision int8")
        }
        if int4Screen && !Int8Matrix.vnniAvailable {
            throw ValidationError("--int4-screen: needs an AVX512_VNNI CPU with the AVX-512 kernels (CPU: \(CPU.isa))")
        }
        print("load average before: \(Yardsticks.loadAverage()); pool threads: \(ThreadPool.shared.threadCount)")
        var roofline = Yardsticks.measure()
        let loaded = try Checkpoint.loadModel(directory: model)
        let net = precision == .float32 ? loaded : loaded.packedForInference(precision: precision)
        let tokenizer = try Checkpoint.loadTokenizer(directory: model)
        let d = net.configuration.hiddenSize
        print("model: \(model), d_model \(d), \(net.configuration.numHiddenLayers) layers, precision \(precision), item table \(itemTablePrecision)")

        // One synthetic catalogue of the largest size; each size takes its first N items.
        let largest = wanted.max()!
        let directory = NSTemporaryDirectory() + "r2ec-bench-scale-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var spec = SyntheticSpec(users: 200, items: largest, events: 2000)
        spec.seed = seed
        let bar = ProgressBar(label: "synthetic catalogue")
        try SyntheticData.write(spec, directory: directory, name: "scale") { done, total in
            bar.show(done: Double(done), total: Double(total), detail: "\(ProgressBar.count(done))/\(ProgressBar.count(total)) rows")
        }
        bar.finish()
        let dataset = try DatasetLoader.load(directory)
        let stats = dataset.itemStats()
        var rng = SplitMix64(seed: seed &+ 17)

        var rows: [Row] = []
        var vnniLines: [String] = []
        print("\n| items | build items/s | table MiB | score ms | score GB/s | of STREAM copy | sgemv ms | top-10 ms | Recommend p50 ms | p99 ms | batched rec/s (batch \(batch)) | RSS MiB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n in wanted.sorted() {
            roofline = roofline.merged(with: Roofline.measure(seconds: 0.2))
            let catalog = Catalog(items: Array(dataset.catalog.items.prefix(n)))
            // Build rate: the network reads out a sample of the item prompts (with a progress bar).
            let sample = min(n, buildSample)
            let tail = tokenizer.encode(Prompts.answerTag).count
            let limit = min(DualHeadFormat.maxItemTokens, net.configuration.maxPositionEmbeddings)
            let vectors = FloatBuffer(shape: [n, d])
            let buildBar = ProgressBar(label: "item table \(ProgressBar.count(n))")
            let began = Date()
            var start = 0
            while start < sample {
                let end = min(sample, start + 32)
                let tokens = (start..<end).map {
                    DualHeadFormat.keepingHead(tokenizer.encode(DualHeadFormat.itemText(itemPrompt: Prompts.item(catalog[$0], stats: stats[$0]))),
                                               tail: tail, limit: limit)
                }
                let unit = net.readout(tokens)
                (vectors.data + start * d).update(from: unit.data, count: (end - start) * d)
                start = end
                buildBar.show(done: Double(start), total: Double(sample), detail: "\(start)/\(sample) items read out")
            }
            buildBar.finish()
            let buildRate = Double(sample) / Date().timeIntervalSince(began)
            for i in sample..<n { (vectors.data + i * d).update(from: vectors.data + (i % sample) * d, count: d) }
            if let itemVectors {
                let file: SafetensorsFile
                do { file = try SafetensorsFile(path: itemVectors) } catch {
                    throw ValidationError("--item-vectors \(itemVectors): \(error)")
                }
                guard file.entries.count == 1, let (name, entry) = file.entries.first, entry.shape.count == 2,
                      entry.shape[0] >= n, entry.shape[1] == d else {
                    throw ValidationError("--item-vectors \(itemVectors): one tensor of [at least \(n), \(d)] expected, found \(file.entries.mapValues(\.shape))")
                }
                var all = [Float](repeating: 0, count: entry.elementCount)
                try all.withUnsafeMutableBufferPointer { try file.read(name, into: $0) }
                vectors.data.update(from: all, count: n * d)
            }
            let table = ItemTable(vectors: vectors, weightsHash: "bench", promptsHash: "bench")
            let recommender = DualHeadModel(model: net, tokenizer: tokenizer, catalog: catalog, itemTable: table, tau: 0.05,
                                            itemTablePrecision: itemTablePrecision, promptFormat: .current, int4Screen: int4Screen)
            let tableBytes = itemTablePrecision == .int8 ? Double(n * (d + 8)) : Double(n * d * (precision == .bfloat16 ? 2 : 4))

            // The scoring pass alone (one unit vector against the table), then the top 10 over its scores alone
            // (masking 20 items, as Recommend does).
            let user = FloatBuffer(shape: [1, d])
            user.data.update(from: vectors.data, count: d)
            var scores = [Float](repeating: 0, count: n)
            let masked = Set((0..<20).map { _ in Int(rng.next() % UInt64(n)) })
            var scoreTimes: [Double] = [], topKTimes: [Double] = []
            let scoreStart = Date()
            while Date().timeIntervalSince(scoreStart) < seconds / 2 || scoreTimes.count < 3 {
                let t = GEMMBenchmark.now()
                scores.withUnsafeMutableBufferPointer { recommender.score(userVectors: user.pointer, count: 1, into: $0.baseAddress!) }
                let t1 = GEMMBenchmark.now()
                _ = scores.withUnsafeBufferPointer { Ranking.topK($0, k: 10, masked: masked) }
                topKTimes.append(GEMMBenchmark.now() - t1)
                scoreTimes.append(t1 - t)
            }
            let scoreMedian = Self.percentile(scoreTimes, 0.5)
            var sgemvTimes: [Double] = []
            let sgemvStart = Date()
            while Date().timeIntervalSince(sgemvStart) < seconds / 4 || sgemvTimes.count < 3 {
                let t = GEMMBenchmark.now()
                scores.withUnsafeMutableBufferPointer {
                    GEMM.forward(m: 1, n: n, k: d, a: user.pointer, b: vectors.pointer, transB: true, c: $0.baseAddress!, alpha: 20)
                }
                sgemvTimes.append(GEMMBenchmark.now() - t)
            }

            // The ranking pass (int8 on an AVX512_VNNI CPU): quantised user vector, VNNI pass, the items near the top
            // re-scored exactly (depth 30: a top-10 with 20 masked items).
            var rankingMedian: Double? = nil, rescored: Int? = nil, recommendShortlists: [Int]? = nil
            var screenMedian: Double? = nil, screenRescored: Int? = nil
            if itemTablePrecision == .int8 && Int8Matrix.vnniAvailable, let int8 = recommender.int8Table {
                func ranking(screened: Bool) -> (Double, Int) {
                    var times: [Double] = [], counts: [Int] = []
                    let rankingStart = Date()
                    while Date().timeIntervalSince(rankingStart) < seconds / 2 || times.count < 3 {
                        let t = GEMMBenchmark.now()
                        let c = scores.withUnsafeMutableBufferPointer {
                            int8.multiplyForRanking(rows: 1, x: user.pointer, ldx: d, out: $0.baseAddress!, ldo: n,
                                                    alpha: 1 / recommender.tau, depths: [30], exact: [nil], screened: screened)
                        }
                        times.append(GEMMBenchmark.now() - t)
                        counts.append(c[0])
                    }
                    return (Self.percentile(times, 0.5), counts.sorted()[counts.count / 2])
                }
                (rankingMedian, rescored) = ranking(screened: false)
                if int8.screen != nil { (screenMedian, screenRescored) = ranking(screened: true) }
            }

            // Direct Recommend: a history of 20 catalogue items, prompt to top 10.
            func history() -> UserHistory {
                let items = (0..<20).map { _ in Int(rng.next() % UInt64(n)) }
                return UserHistory(items: items, timestamps: (0..<20).map { Int64(1_600_000_000 + $0 * 3600) },
                                   ratings: [Float](repeating: 4, count: 20))
            }
            let histories = (0..<max(batch, 16)).map { _ in history() }
            // Items re-scored per Recommend row at batch 1 (the ranking passes' shortlists for real user vectors).
            final class Counts: @unchecked Sendable { var values: [Int] = [] }
            let shortlist = Counts()
            recommender.rankingObserver = { shortlist.values += $0 }
            defer { recommender.rankingObserver = nil }
            func shortlistPercentiles() -> [Int]? {
                let sorted = shortlist.values.sorted()
                return sorted.isEmpty ? nil : [sorted[sorted.count / 2], sorted[min(sorted.count - 1, sorted.count * 99 / 100)], sorted.last!]
            }
            func recommendLatencies() throws -> (p50: Double, p99: Double, batched: Double) {
                var latencies: [Double] = []
                let callStart = Date()
                var i = 0
                shortlist.values = []
                while Date().timeIntervalSince(callStart) < seconds || latencies.count < 5 {
                    let t = GEMMBenchmark.now()
                    _ = try recommender.recommend([histories[i % histories.count]], k: 10)
                    latencies.append(GEMMBenchmark.now() - t)
                    i += 1
                }
                recommendShortlists = shortlistPercentiles()
                var served = 0
                let batchStart = Date()
                while Date().timeIntervalSince(batchStart) < seconds || served == 0 {
                    _ = try recommender.recommend(Array(histories.prefix(batch)), k: 10)
                    served += batch
                }
                return (Self.percentile(latencies, 0.5), Self.percentile(latencies, 0.99),
                        Double(served) / Date().timeIntervalSince(batchStart))
            }
            // With the VNNI ranking pass, Recommend is measured with every item scored exactly too (same run).
            var exact: (p50: Double, p99: Double, batched: Double)? = nil
            var int8Pass: (p50: Double, p99: Double, batched: Double)? = nil
            var int8Shortlists: [Int]? = nil
            if rankingMedian != nil {
                recommender.vnniRanking = false
                exact = try recommendLatencies()
                recommender.vnniRanking = true
                if screenMedian != nil {
                    recommender.int4Screening = false
                    int8Pass = try recommendLatencies()
                    int8Shortlists = recommendShortlists
                    recommender.int4Screening = true
                }
            }
            let (p50, p99, batched) = try recommendLatencies()
            let row = Row(items: n, itemTablePrecision: itemTablePrecision.rawValue, buildItemsPerSecond: buildRate, buildSample: sample, tableMiB: tableBytes / 1_048_576,
                          scoreMilliseconds: 1000 * scoreMedian, scoreGBPerSecond: tableBytes / scoreMedian / 1e9,
                          topKMilliseconds: 1000 * Self.percentile(topKTimes, 0.5),
                          sgemvMilliseconds: 1000 * Self.percentile(sgemvTimes, 0.5),
                          rankingMilliseconds: rankingMedian.map { 1000 * $0 }, rescoredItems: rescored,
                          screenMilliseconds: screenMedian.map { 1000 * $0 }, screenRescoredItems: screenRescored,
                          screenMiB: recommender.int8Table?.screen.map { Double($0.byteCount) / 1_048_576 },
                          p50Milliseconds: 1000 * p50, p99Milliseconds: 1000 * p99, batchedPerSecond: batched,
                          exactP50Milliseconds: exact.map { 1000 * $0.p50 }, exactP99Milliseconds: exact.map { 1000 * $0.p99 },
                          exactBatchedPerSecond: exact?.batched,
                          int8P50Milliseconds: int8Pass.map { 1000 * $0.p50 }, int8P99Milliseconds: int8Pass.map { 1000 * $0.p99 },
                          int8BatchedPerSecond: int8Pass?.batched,
                          recommendRescored: recommendShortlists, int8RecommendRescored: int8Shortlists,
                          rssMiB: Self.residentMiB(), streamCopyGBPerSecond: roofline.copyBandwidth,
                          streamTriadGBPerSecond: roofline.triadBandwidth)
            rows.append(row)
            print(String(format: "| %d | %.0f | %.1f | %.3f | %.1f | %.0f%% | %.3f | %.3f | %.2f | %.2f | %.1f | %.0f |", n, row.buildItemsPerSecond,
                         row.tableMiB, row.scoreMilliseconds, row.scoreGBPerSecond,
                         100 * row.scoreGBPerSecond / row.streamCopyGBPerSecond, row.sgemvMilliseconds, row.topKMilliseconds, row.p50Milliseconds, row.p99Milliseconds,
                         row.batchedPerSecond, row.rssMiB))
            if let ranking = row.rankingMilliseconds, let e50 = row.exactP50Milliseconds, let e99 = row.exactP99Milliseconds,
               let eb = row.exactBatchedPerSecond {
                // With the int4 screen, Recommend's default path reads it; the int8 VNNI pass's Recommend is the middle figure.
                let screened = row.screenMilliseconds != nil
                let int8Recommend = screened
                    ? String(format: "%.2f / %.2f / %.2f | %.2f / %.2f / %.2f | %.1f / %.1f / %.1f", e50, row.int8P50Milliseconds ?? 0,
                             row.p50Milliseconds, e99, row.int8P99Milliseconds ?? 0, row.p99Milliseconds, eb,
                             row.int8BatchedPerSecond ?? 0, row.batchedPerSecond)
                    : String(format: "%.2f / %.2f | %.2f / %.2f | %.1f / %.1f", e50, row.p50Milliseconds, e99, row.p99Milliseconds,
                             eb, row.batchedPerSecond)
                let screen = screened
                    ? String(format: " %.3f | %.1f | %.1f | %d |", row.screenMilliseconds ?? 0, row.screenMiB ?? 0,
                             (row.screenMiB ?? 0) * 1.048576 / (row.screenMilliseconds ?? 1), row.screenRescoredItems ?? 0)
                    : ""
                vnniLines.append(String(format: "| %d | %.3f | %.1f | %.0f%% | %d |", n, ranking, row.tableMiB * 1.048576 / ranking,
                                        100 * row.tableMiB * 1.048576 / ranking / row.streamCopyGBPerSecond, row.rescoredItems ?? 0)
                                 + screen + " " + int8Recommend + " |"
                                 + (screened ? " \(Self.counts(row.int8RecommendRescored)); \(Self.counts(row.recommendRescored)) |" : ""))
            }
        }
        if !vnniLines.isEmpty {
            if rows.contains(where: { $0.screenMilliseconds != nil }) {
                print("\nRanking passes (depth 30) against every item scored exactly, same run: the int8 VNNI pass (quantised user vector, items near the top re-scored exactly), and the int4 screen (--int4-screen, Recommend reads it: half the bytes, a per-item bound, the items it cannot rule out re-scored exactly):\n")
                print("| items | int8 VNNI pass ms | GB/s | of STREAM copy | re-scored | int4 screen pass ms | screen MiB | GB/s | re-scored | Recommend p50 ms exact / int8 VNNI / int4 screen | p99 ms | batched rec/s | re-scored per Recommend p50/p99/max: int8 VNNI; int4 screen |")
                print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            } else {
                print("\nVNNI ranking pass (int8 table, quantised user vector, items near the top re-scored exactly) against every item scored exactly, same run:\n")
                print("| items | ranking pass ms | GB/s | of STREAM copy | items re-scored | Recommend p50 ms exact / VNNI | p99 ms exact / VNNI | batched rec/s exact / VNNI |")
                print("|---:|---:|---:|---:|---:|---:|---:|---:|")
            }
            for line in vnniLines { print(line) }
        }
        print(String(format: "\nSTREAM (same run): copy %.1f GB/s, triad %.1f GB/s; build rates measured on up to %d items per size; load average after: %@",
                     roofline.copyBandwidth, roofline.triadBandwidth, buildSample, Yardsticks.loadAverage()))
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(rows).write(to: URL(fileURLWithPath: json))
            print("rows written to \(json)")
        }
    }

    static func percentile(_ values: [Double], _ q: Double) -> Double {
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * q).rounded()))]
    }

    /// VmRSS of this process in MiB.
    static func residentMiB() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Double(line.split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0) / 1024
        }
        return 0
    }
}
