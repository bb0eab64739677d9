// The `rec` stage ("w/o reasoning"): user prompt -> `<answer>` read-out, in-batch softmax of cosine/tau against the
// batch's target items, re-encoded with gradient each step, and optionally against the full item table (refreshed
// every `refresh_every` steps and at each evaluation; batch items replace their stale rows). Each history line's
// read-out can be trained on the next line's item too (line targets), so one prompt teaches up to 20 positions.
// Items the user saw before a target are masked out of its softmax, as evaluation masks them.
import Data
import Eval
import Foundation
import Model
import Tensor

extension Trainer {
    func runRec(_ s: StageSettings) throws {
        var batches = WindowSchedule(corpus: corpus, seed: config.seed &+ UInt64(progress.stage) &* 7919, batch: s.batch)
        let stageStart = Date()
        var tokens = 0
        let firstStep = progress.step
        let needsTable = s.fullTable || config.atjt
        if needsTable && table == nil { refreshTable() }
        for step in firstStep..<s.steps {
            if outOfTime { stopAll = true; log.note("time limit reached at rec step \(step)"); break }
            let t0 = Date()
            if needsTable && s.refreshEvery > 0 && step > firstStep && step % s.refreshEvery == 0 { refreshTable() }
            let (windows, epoch) = batches.windows(step: step)
            let (loss, batchTokens, readouts) = recStep(windows: windows, settings: s)
            let norm = update(s, step: step)
            tokens += batchTokens
            let elapsed = Date().timeIntervalSince(t0)
            log.write([("step", progress.globalStep), ("stage", "rec"), ("stage_step", step), ("loss", loss),
                       ("tokens_per_s", Double(batchTokens) / elapsed), ("lr", Double(schedule(s).rate(step))),
                       ("grad_norm", norm), ("epoch", epoch), ("readouts", readouts), ("seconds", seconds)]
                      + (trustModel.map { [("trust_bce", $0.lastLoss), ("trust_mean", $0.lastMeanWeight)] } ?? []))
            log.progress(stage: "rec", step: step, total: s.steps, loss: loss,
                         tokensPerSecond: Double(tokens) / Date().timeIntervalSince(stageStart),
                         stageSeconds: Date().timeIntervalSince(stageStart), extra: String(format: " epoch %.2f", epoch))
            progress.step = step + 1
            let last = step + 1 == s.steps
            if (s.evalEvery > 0 && (step + 1) % s.evalEvery == 0) || last || outOfTime {
                if try evaluateAndTrack(stage: s, step: step + 1) { log.note("early stop at rec step \(step + 1)"); break }
            }
            if config.saveEvery > 0 && (step + 1) % config.saveEvery == 0 && !last { try saveState() }
        }
    }

    /// One forward/backward of the rec loss over `windows`; returns (loss, tokens, read-outs trained).
    func recStep(windows: [TrainingCorpus.Window], settings s: StageSettings) -> (Double, Int, Int) {
        let examples = windows.map { corpus.example($0) }
        let n = corpus.catalogCount
        let useTable = s.fullTable && table != nil
        // Items re-encoded with gradient: final targets first, then line targets, up to freshItems.
        var fresh: [Int] = []
        var freshIndex = [Int](repeating: -1, count: n)
        func addFresh(_ item: Int) {
            if freshIndex[item] < 0 && fresh.count < max(s.freshItems, examples.count) { freshIndex[item] = fresh.count; fresh.append(item) }
        }
        for e in examples { addFresh(e.target) }
        if s.lineTargets { for e in examples { for t in e.lineTargets { addFresh(t) } } }
        // Columns: fresh items, then (with the table) every other item's stale vector.
        var column = [Int](repeating: -1, count: n)
        for (i, item) in fresh.enumerated() { column[item] = i }
        var fixedItems: [Int] = []
        if useTable {
            for item in 0..<n where freshIndex[item] < 0 { column[item] = fresh.count + fixedItems.count; fixedItems.append(item) }
        }
        let d = model.configuration.hiddenSize
        let fixed = FloatBuffer(shape: [max(1, fixedItems.count), d])
        for (i, item) in fixedItems.enumerated() { (fixed.data + i * d).update(from: table!.data + item * d, count: d) }

        let sequences = examples.map(\.tokens) + fresh.map { corpus.itemTokens[$0] }
        graph.zeroGradients()
        graph.forward(sequences)
        var userRows: [Int] = [], targets: [Int] = [], weights: [Float] = [], masked: [[Int]] = []
        var trust: [Float] = Array(repeating: 1, count: examples.count)
        if config.atjt, let recogniser = trustModel, let table { trust = recogniser.weights(examples: examples, table: table) }
        for (i, e) in examples.enumerated() {
            userRows.append(graph.lastRow(sequence: i))
            targets.append(column[e.target])
            weights.append(trust[i])
            masked.append(e.before.compactMap { $0 == e.target || column[$0] < 0 ? nil : column[$0] })
            guard s.lineTargets else { continue }
            for (k, row) in e.lineRows.enumerated() where column[e.lineTargets[k]] >= 0 {
                let t = e.lineTargets[k]
                userRows.append(graph.row(sequence: i, token: row))
                targets.append(column[t])
                weights.append(s.lineWeight * trust[i])
                masked.append(e.before[0..<e.lineMaskCounts[k]].compactMap { $0 == t || column[$0] < 0 ? nil : column[$0] })
            }
        }
        let total = weights.reduce(0, +)
        let normalised = weights.map { $0 / max(total, 1e-12) }
        let itemRows = fresh.indices.map { graph.lastRow(sequence: examples.count + $0) }
        var batch = ContrastiveBatch(userRows: userRows, itemRows: itemRows, targets: targets, weights: normalised,
                                     tau: config.tau, fixed: fixedItems.isEmpty ? nil : UnsafePointer(fixed.data),
                                     fixedCount: fixedItems.count, masked: masked)
        // With the table, batch items take their table values in the logits (every column equally stale), their
        // fresh read-outs take the gradient, and the table rows are then refreshed from them (a memory bank).
        if s.logQ && !useTable {
            // Column j is in the batch with probability ~ 1 - exp(-K q_j) for K target draws of training frequency q.
            let draws = Double(userRows.count)
            batch.columnOffsets = fresh.map { item in
                Float(-Foundation.log(max(1e-6, -expm1(-draws * corpus.itemFrequency[item]))))
            }
        }
        let bank = FloatBuffer(shape: [max(1, fresh.count), d])
        if useTable && s.memoryBank {
            for (i, item) in fresh.enumerated() { (bank.data + i * d).update(from: table!.data + item * d, count: d) }
            batch.itemValues = UnsafePointer(bank.data)
        }
        let result = graph.contrastiveLoss(batch)
        if useTable && s.memoryBank {
            for (i, item) in fresh.enumerated() { (table!.data + item * d).update(from: result.itemVectors.data + i * d, count: d) }
        }
        graph.backward()
        if config.atjt, let recogniser = trustModel, let table { recogniser.train(examples: examples, table: table, seed: UInt64(progress.optimizerStep)) }
        return (result.loss, graph.rowCount, userRows.count)
    }
}
