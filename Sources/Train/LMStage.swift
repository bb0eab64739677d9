// The `lm` stage: next-token warm-up on the dataset's own texts (item texts and user prompts in the direct format,
// ending with `<answer>`), so the backbone learns its catalogue's language before the recommendation head trains.
// The loss is the mean cross-entropy over every predicted token of the batch.
import Data
import Foundation
import Model
import Tensor

extension Trainer {
    func runLM(_ s: StageSettings) throws {
        var windows = WindowSchedule(corpus: corpus, seed: config.seed &+ 31 &+ UInt64(progress.stage), batch: s.batch)
        let stageStart = Date()
        var tokens = 0
        for step in progress.step..<s.steps {
            if outOfTime { stopAll = true; log.note("time limit reached at lm step \(step)"); break }
            let t0 = Date()
            var rng = SplitMix64(seed: config.seed &* 1_000_003 &+ UInt64(step))
            let users = windows.windows(step: step).windows
            let sequences: [[Int]] = users.map { w in
                rng.nextUniform() < s.itemShare
                    ? corpus.itemTokens[Int(rng.next() % UInt64(corpus.catalogCount))]
                    : corpus.example(w).tokens
            }
            graph.zeroGradients()
            graph.forward(sequences)
            var rows: [Int] = [], targets: [Int] = []
            for (i, seq) in sequences.enumerated() where seq.count > 1 {
                for p in 0..<(seq.count - 1) { rows.append(graph.row(sequence: i, token: p)); targets.append(seq[p + 1]) }
            }
            let weight = 1 / Float(max(1, rows.count))
            let loss = graph.tokenLoss(rows: rows, targets: targets, weights: [Float](repeating: weight, count: rows.count))
            graph.backward()
            let norm = update(s, step: step)
            tokens += graph.rowCount
            let elapsed = Date().timeIntervalSince(t0)
            log.write([("step", progress.globalStep), ("stage", "lm"), ("stage_step", step), ("loss", loss),
                       ("tokens_per_s", Double(graph.rowCount) / elapsed), ("lr", Double(schedule(s).rate(step))),
                       ("grad_norm", norm), ("seconds", seconds)])
            log.progress(stage: "lm", step: step, total: s.steps, loss: loss,
                         tokensPerSecond: Double(tokens) / Date().timeIntervalSince(stageStart),
                         stageSeconds: Date().timeIntervalSince(stageStart))
            progress.step = step + 1
            if config.saveEvery > 0 && (step + 1) % config.saveEvery == 0 && step + 1 < s.steps { try saveState() }
        }
    }
}
