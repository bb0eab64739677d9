// Full-ranking evaluation of any `Recommender` on held-out samples: histories go to `scoreAll` in batches, every
// catalogue item is ranked with the sample's masked items skipped, and the report gathers HR/NDCG@K, MRR, bootstrap
// intervals, catalogue coverage, list error rates, and ECE@N when a top-N calibrator is given.
import Data
import Foundation

public struct EvalOptions: Sendable {
    public var ks: [Int] = Metrics.defaultKs
    /// Histories per `scoreAll` call.
    public var batchSize: Int = 256
    public var bootstrapResamples: Int = 1000
    public var seed: UInt64 = 0
    /// Coverage and list checks use top-`listK` lists.
    public var listK: Int = 10
    /// The top-N that calibration data and ECE@N cover (a calibrator fitted on them serves probabilities for
    /// ranks 1...N).
    public var calibrationN: Int = 10
    /// Whether scores are logits of the model's own probabilities (the dual-head network: cosine / tau, whose
    /// softmax over the unmasked catalogue is p): then `modelECE` measures how calibrated those are.
    public var scoresAreLogits = false
    public init() {}
}

public struct EvalResult: Sendable {
    public var samples: Int
    /// Metric names in report order (`Metrics.names`).
    public var names: [String]
    public var metrics: [String: Double]
    public var intervals: [String: Interval]
    /// Share of the catalogue appearing in at least one masked top-`listK` list.
    public var coverage: Double
    /// Error rates of the masked top-`listK` lists the metrics come from (all 0 for a correct pipeline).
    public var listErrors: ListErrorRates
    /// Error rates of the model's raw top-`listK` lists before masking: how often it would recommend seen items.
    public var unmaskedListErrors: ListErrorRates
    /// Per-sample rank of the target, in sample order.
    public var ranks: [Int]
    /// Samples whose target ties with another unmasked item (their rank depends on the index tie rule).
    public var tiedTargets: Int
    /// Per sample, the masked top-`calibrationN` items: (rank, score, is target) triples, flattened; tied scores
    /// share a rank (`Calibration.sharedRanks`), as in serving.
    public var topN: [(rank: Int, score: Float, hit: Bool)]
    /// ECE of the calibrator's probabilities over every top-`calibrationN` entry it gives one for (ranks
    /// 1...calibrator.ranks: the ranks served with a probability), when a calibrator was given.
    public var ece: Double?
    /// The N of `topN`, `ece` and `modelECE` (ranks 1...N; a calibrator fitted on `topN` serves exactly those).
    public var calibrationN: Int
    /// ECE@`calibrationN` of softmax(scores) over unmasked items, when `scoresAreLogits`.
    public var modelECE: Double?
    public var seconds: Double
}

public enum Evaluator {
    public static func evaluate(_ model: Recommender, on samples: [EvalSample], options: EvalOptions = EvalOptions(),
                                calibrator: TopNCalibrator? = nil) throws -> EvalResult {
        try evaluate(kind: model.kind, catalogSize: model.catalog.count, on: samples, options: options,
                     calibrator: calibrator) { try model.scoreAll($0.map(\.history)) }
    }

    /// The same with any scorer of a batch of samples (row-major scores, `catalogSize` per sample): e.g. a factor
    /// model's trained user vectors instead of folded-in histories.
    public static func evaluate(kind: String, catalogSize n: Int, on samples: [EvalSample], options: EvalOptions = EvalOptions(),
                                calibrator: TopNCalibrator? = nil,
                                scorer: ([EvalSample]) throws -> [Float]) throws -> EvalResult {
        guard !samples.isEmpty else { throw EvalError.invalidInput("no samples to evaluate") }
        let start = Date()
        let names = Metrics.names(ks: options.ks)
        var values: [[Double]] = []
        values.reserveCapacity(samples.count)
        var ranks: [Int] = []
        var tied = 0
        var covered = [Bool](repeating: false, count: n)
        var errors = ListErrorRates(), rawErrors = ListErrorRates()
        var topN: [(rank: Int, score: Float, hit: Bool)] = []
        var probabilities: [Double] = [], labels: [Bool] = []
        var softmaxProbabilities: [Double] = [], softmaxLabels: [Bool] = []
        var isMasked = [Bool](repeating: false, count: n)

        var b = 0
        while b < samples.count {
            let batch = samples[b..<min(samples.count, b + options.batchSize)]
            let scores = try scorer(Array(batch))
            guard scores.count == batch.count * n else {
                throw EvalError.invalidInput("\(kind) returned \(scores.count) scores for \(batch.count) x \(n)")
            }
            try scores.withUnsafeBufferPointer { all in
                for (q, s) in batch.enumerated() {
                    guard s.target >= 0 && s.target < n else { throw EvalError.invalidInput("target \(s.target) outside the catalogue") }
                    let row = UnsafeBufferPointer(rebasing: all[(q * n)..<((q + 1) * n)])
                    for i in s.masked { isMasked[i] = true }
                    let rank = isMasked.withUnsafeBufferPointer { Ranks.rank(of: s.target, in: row, isMasked: $0) }
                    if isMasked.withUnsafeBufferPointer({ Ranks.isTied(s.target, in: row, isMasked: $0) }) { tied += 1 }
                    for i in s.masked { isMasked[i] = false }
                    ranks.append(rank)
                    values.append(Metrics.values(rank: rank, ks: options.ks))

                    let maskSet = Set(s.masked)
                    let top = Ranking.topK(row, k: max(options.listK, options.calibrationN), masked: maskSet)
                    let list = top.prefix(options.listK).map(\.index)
                    for i in list { covered[i] = true }
                    let seen = Set(s.history.items).union(maskSet)
                    errors.check(list, seen: seen, catalogSize: n)
                    rawErrors.check(Ranking.topK(row, k: options.listK).map(\.index), seen: seen, catalogSize: n)
                    if options.scoresAreLogits, let best = top.first?.score {
                        var sum = 0.0
                        for i in 0..<n where !maskSet.contains(i) && !row[i].isNaN { sum += exp(Double(row[i] - best)) }
                        for item in top.prefix(options.calibrationN) {
                            softmaxProbabilities.append(exp(Double(item.score - best)) / sum)
                            softmaxLabels.append(item.index == s.target)
                        }
                    }
                    let calibrated = Array(top.prefix(options.calibrationN))
                    for (item, rank) in zip(calibrated, Calibration.sharedRanks(calibrated.map(\.score))) {
                        let hit = item.index == s.target
                        topN.append((rank, item.score, hit))
                        // Only the ranks the calibrator gives a probability for count, as only those are served.
                        if let p = calibrator?.probability(score: item.score, rank: rank) {
                            probabilities.append(p)
                            labels.append(hit)
                        }
                    }
                }
            }
            b += batch.count
        }

        var metrics: [String: Double] = [:]
        for (c, name) in names.enumerated() {
            metrics[name] = values.reduce(0) { $0 + $1[c] } / Double(values.count)
        }
        let ivs = Bootstrap.intervals(values, resamples: options.bootstrapResamples, seed: options.seed)
        var intervals: [String: Interval] = [:]
        for (name, iv) in zip(names, ivs) { intervals[name] = iv }
        return EvalResult(samples: samples.count, names: names, metrics: metrics, intervals: intervals,
                          coverage: Double(covered.filter { $0 }.count) / Double(n), listErrors: errors,
                          unmaskedListErrors: rawErrors, ranks: ranks, tiedTargets: tied, topN: topN,
                          ece: calibrator.map { _ in Calibration.ece(probabilities: probabilities, labels: labels) },
                          calibrationN: options.calibrationN,
                          modelECE: options.scoresAreLogits ?
                              Calibration.ece(probabilities: softmaxProbabilities, labels: softmaxLabels) : nil,
                          seconds: Date().timeIntervalSince(start))
    }
}

extension EvalResult {
    /// The results of several fits of one model (e.g. seeds) on the same samples, averaged: each sample's metric
    /// values are averaged over the fits, then means and bootstrap intervals are taken as for one fit. Coverage
    /// and ECE are means; list error counts add up; ranks and top-N data are the first fit's.
    public static func mean(_ runs: [EvalResult], options: EvalOptions = EvalOptions()) -> EvalResult {
        precondition(!runs.isEmpty && runs.allSatisfy { $0.samples == runs[0].samples })
        if runs.count == 1 { return runs[0] }
        var r = runs[0]
        let perSample = (0..<r.samples).map { s -> [Double] in
            let rows = runs.map { Metrics.values(rank: $0.ranks[s], ks: options.ks) }
            return (0..<rows[0].count).map { c in rows.reduce(0) { $0 + $1[c] } / Double(rows.count) }
        }
        for (c, name) in r.names.enumerated() {
            r.metrics[name] = perSample.reduce(0) { $0 + $1[c] } / Double(perSample.count)
        }
        r.intervals = [:]
        for (name, iv) in zip(r.names, Bootstrap.intervals(perSample, resamples: options.bootstrapResamples, seed: options.seed)) {
            r.intervals[name] = iv
        }
        r.coverage = runs.map(\.coverage).reduce(0, +) / Double(runs.count)
        r.listErrors = runs.dropFirst().reduce(runs[0].listErrors) { $0 + $1.listErrors }
        r.unmaskedListErrors = runs.dropFirst().reduce(runs[0].unmaskedListErrors) { $0 + $1.unmaskedListErrors }
        let eces = runs.compactMap(\.ece)
        r.ece = eces.count == runs.count ? eces.reduce(0, +) / Double(eces.count) : nil
        let modelECEs = runs.compactMap(\.modelECE)
        r.modelECE = modelECEs.count == runs.count ? modelECEs.reduce(0, +) / Double(modelECEs.count) : nil
        r.seconds = runs.map(\.seconds).reduce(0, +)
        r.tiedTargets = runs.map(\.tiedTargets).reduce(0, +)
        return r
    }
}
