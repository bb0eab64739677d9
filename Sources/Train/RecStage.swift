// The `rec` stage ("w/o reasoning"): user prompt -> `<answer>` read-out, in-batch softmax of cosine/tau against the
// batch's target items, re-encoded with gradient each step, and optionally against the full item table (refreshed
// every `refresh_every` steps and at each evaluation; batch items replace their stale rows). Each history line's
// read-out can be trained on the next line's item too (line targets), so one prompt teaches up to 20 positions.
// Items the user saw before a target are masked out of its softmax, as evaluation masks them.
// Stats dropout (`new_item_share`): a seeded share of the step's encoded items is rendered as a new item's prompt
// (no average rating, 0 raters), the prompt an item added after training gets, so the item tower learns to place
// such items from their title and genres instead of meeting "Raters: 0" for the first time when serving.
// Title dropout (`title_dropout`): a seeded share of the step's encoded items is rendered without title and
// statistics (year and genres only, Prompts.itemWithoutTitle), so the item tower must place those from their genres
// and year, what a new item's unseen title leaves it with. An item drawn for both is rendered without its title.
import Data
import Eval
import Foundation
import Model
import Tensor

public struct RecStage: TrainingStage {
    public static let kind = "rec"
    public var optimizer = OptimizerSchedule()
    public var validation = EvaluationSchedule()
    public var dropout: Float = 0
    public var ema: Float = 0
    /// Score against the refreshed full item table too (batch items replace their stale columns).
    public var fullTable = true
    /// Refresh the full item table every this many steps (0: only at evaluations).
    public var refreshEvery = 25
    /// Train every history line's read-out to predict the next line's item (the final `<answer>` read-out predicts
    /// the target): up to 20 targets per prompt, as sequential recommenders train every position.
    public var lineTargets = true
    /// Weight of the line targets relative to the final target.
    public var lineWeight: Float = 1.0
    /// With the full table: batch items score with their table rows (straight-through gradient to the fresh
    /// read-outs), and the rows are refreshed from the fresh read-outs after each step.
    public var memoryBank = true
    /// In-batch softmax without the table: subtract log(inclusion probability) from each column's logit.
    public var logQ = true
    /// Items re-encoded with gradient per step (final targets first, then line targets); others use the table.
    public var freshItems = 256
    /// Share of the encoded items rendered as new items (stats dropout), drawn per step and item from the run's seed.
    public var newItemShare: Float = 0
    /// Share of the encoded items rendered without title and statistics (title dropout), drawn like `newItemShare`
    /// but independently of it.
    public var titleDropout: Float = 0
    /// With latent steps: the final target's loss on every step's read-out too (the prompt's last token's and each
    /// latent step's before the last, each weighted as the final one), as ReaRec's progressive reasoning learning
    /// trains every step (without its temperature schedule). Serving reads out the last step either way.
    public var stepLosses = false

    public init() {}

    public static let fields: [ConfigField<RecStage>] =
        OptimizerSchedule.fields.map { $0.lifted(\RecStage.optimizer) }
        + EvaluationSchedule.fields.map { $0.lifted(\RecStage.validation) } + [
            .float("dropout", \.dropout, .from(0, below: 1)),
            .float("ema", \.ema, .from(0, below: 1)),
            .bool("full_table", \.fullTable),
            .int("refresh_every", \.refreshEvery, .within(0, 10_000_000)),
            .bool("line_targets", \.lineTargets),
            .float("line_weight", \.lineWeight, .within(0, 1000)),
            .bool("memory_bank", \.memoryBank),
            .bool("logq", \.logQ),
            .int("fresh_items", \.freshItems, .within(1, 1_000_000)),
            .float("new_item_share", \.newItemShare, .within(0, 1)),
            .float("title_dropout", \.titleDropout, .within(0, 1)),
            .bool("step_losses", \.stepLosses),
        ]

    public var evaluation: EvaluationSchedule? { validation }

    public func batchSeed(seed: UInt64, stage: Int) -> UInt64 { seed &+ UInt64(stage) &* 7919 }

    public func begin(_ t: Trainer) throws {
        if fullTable && t.table == nil { try t.refreshTable() }
    }

    public func step(_ t: Trainer, step: Int, windows: [TrainingCorpus.Window]) throws -> StepReport {
        // The refresh is a function of the step alone, so a resumed run refreshes where an uninterrupted one does.
        if fullTable && refreshEvery > 0 && step > 0 && step % refreshEvery == 0 { try t.refreshTable() }
        let (loss, tokens, readouts) = try recStep(t, step: step, windows: windows)
        return StepReport(loss: loss, tokens: tokens, fields: [("readouts", readouts)])
    }

    /// One forward/backward of the rec loss over `windows`; returns (this rank's share of the loss, its tokens, the
    /// batch's read-outs trained). Every rank builds the whole batch's columns, targets and weights; it runs its
    /// contiguous share of the sequences (user prompts, then the fresh items); the fresh items' read-outs are summed
    /// over the ranks (each contributes its own rows, zeros elsewhere) so every rank scores its users against every
    /// column, and the items' gradients are summed back the same way before the backward. A single process runs the
    /// whole batch through the same code.
    func recStep(_ t: Trainer, step: Int, windows: [TrainingCorpus.Window]) throws -> (Double, Int, Int) {
        let corpus = t.corpus, graph = t.graph!, world = t.world
        let examples = windows.map { corpus.example($0) }
        let n = corpus.catalogCount
        let useTable = fullTable && t.table != nil
        // Items re-encoded with gradient: final targets first, then line targets, up to freshItems.
        var fresh: [Int] = []
        var freshIndex = [Int](repeating: -1, count: n)
        func addFresh(_ item: Int) {
            if freshIndex[item] < 0 && fresh.count < max(freshItems, examples.count) { freshIndex[item] = fresh.count; fresh.append(item) }
        }
        for e in examples { addFresh(e.target) }
        if lineTargets { for e in examples { for target in e.lineTargets { addFresh(target) } } }
        // Columns: fresh items, then (with the table) every other item's stale vector.
        var column = [Int](repeating: -1, count: n)
        for (i, item) in fresh.enumerated() { column[item] = i }
        var fixedItems: [Int] = []
        if useTable {
            for item in 0..<n where freshIndex[item] < 0 { column[item] = fresh.count + fixedItems.count; fixedItems.append(item) }
        }
        let d = t.model.configuration.hiddenSize
        let fixed = FloatBuffer(shape: [max(1, fixedItems.count), d])
        for (i, item) in fixedItems.enumerated() { (fixed.data + i * d).update(from: t.table!.data + item * d, count: d) }

        let titleless = fresh.map { rendersWithoutTitle(item: $0, step: step, seed: t.config.seed) }
        let asNew = fresh.map { rendersAsNew(item: $0, step: step, seed: t.config.seed) }
        let sequences = examples.map(\.tokens) + fresh.indices.map {
            titleless[$0] ? corpus.titlelessItemTokens(fresh[$0])
                : asNew[$0] ? corpus.newItemTokens(fresh[$0]) : corpus.itemTokens[fresh[$0]]
        }
        // User prompts read out after the model's latent steps (rows of the batch too); items read out directly.
        let latent = sequences.indices.map { $0 < examples.count }
        let steps = t.model.configuration.latentSteps
        let share = BatchShare(lengths: sequences.indices.map { sequences[$0].count + (latent[$0] ? steps : 0) }, world: world)
        let mine = share.sequences
        graph.zeroGradients()
        graph.dropoutRowOffset = share.rowOffset
        if !mine.isEmpty { graph.forward(Array(sequences[mine]), latent: Array(latent[mine])) }
        // User rows (final read-outs and line targets) of the whole batch, in one order; this rank keeps its own.
        var userRows: [Int] = [], targets: [Int] = [], weights: [Float] = [], masked: [[Int]] = []
        var total: Float = 0, readouts = 0
        for (i, e) in examples.enumerated() {
            let local = mine.contains(i)
            // The read-out `back` rows before the last: the final one, and with step losses every earlier step's.
            for back in 0...(stepLosses ? steps : 0) {
                total += 1
                readouts += 1
                guard local else { continue }
                userRows.append(share.row(of: i, in: graph) - back)
                targets.append(column[e.target])
                weights.append(1)
                masked.append(e.before.compactMap { $0 == e.target || column[$0] < 0 ? nil : column[$0] })
            }
            guard lineTargets else { continue }
            for (k, row) in e.lineRows.enumerated() where column[e.lineTargets[k]] >= 0 {
                total += lineWeight
                readouts += 1
                guard local else { continue }
                let target = e.lineTargets[k]
                userRows.append(share.row(of: i, token: row, in: graph))
                targets.append(column[target])
                weights.append(lineWeight)
                masked.append(e.before[0..<e.lineMaskCounts[k]].compactMap { $0 == target || column[$0] < 0 ? nil : column[$0] })
            }
        }
        let normalised = weights.map { $0 / max(total, 1e-12) }
        let itemSequences = examples.count..<(examples.count + fresh.count)
        let rawItems = try share.gatherReadouts(of: itemSequences, graph: graph, width: d, world: world)
        var batch = ContrastiveBatch(userRows: userRows, itemRows: [], targets: targets, weights: normalised,
                                     tau: t.config.tau, fixed: fixedItems.isEmpty ? nil : UnsafePointer(fixed.data),
                                     fixedCount: fixedItems.count, masked: masked)
        batch.externalItems = UnsafePointer(rawItems.data)
        batch.externalItemCount = fresh.count
        // With the table, batch items take their table values in the logits (every column equally stale), their
        // fresh read-outs take the gradient, and the table rows are then refreshed from them (a memory bank).
        if logQ && !useTable {
            // Column j is in the batch with probability ~ 1 - exp(-K q_j) for K target draws of training frequency q.
            let draws = Double(readouts)
            batch.columnOffsets = fresh.map { item in
                Float(-Foundation.log(max(1e-6, -expm1(-draws * corpus.itemFrequency[item]))))
            }
        }
        // Learned id vectors (when the run has them): each fresh column is unit(unit(text) + id vector).
        let offsets = useTable && memoryBank ? nil : t.ids?.gather(fresh)
        if let offsets { batch.itemOffsets = UnsafePointer(offsets.data) }
        let bank = FloatBuffer(shape: [max(1, fresh.count), d])
        if useTable && memoryBank {
            for (i, item) in fresh.enumerated() { (bank.data + i * d).update(from: t.table!.data + item * d, count: d) }
            batch.itemValues = UnsafePointer(bank.data)
        }
        let result = graph.contrastiveLoss(batch)
        if let ids = t.ids, let g = result.offsetGradients {
            // Each rank's users' share of the id vectors' gradient; summed, it is the whole batch's.
            if world.size > 1 { try world.allreduceSum(g.data, count: fresh.count * d) }
            ids.accumulate(fresh, gradients: g)
        }
        if useTable && memoryBank {
            // A row keeps the item's own prompt's vector: a read-out of another rendering is not written there.
            for (i, item) in fresh.enumerated() where !asNew[i] && !titleless[i] {
                (t.table!.data + item * d).update(from: result.itemVectors.data + i * d, count: d)
            }
        }
        try share.scatterGradient(result.itemGradient!, of: itemSequences, graph: graph, width: d, world: world)
        if !mine.isEmpty { graph.backward() }
        return (result.loss, mine.isEmpty ? 0 : graph.rowCount, readouts)
    }

    /// Whether `item`, encoded in step `step` of a run seeded `seed`, is rendered as a new item: a uniform draw from
    /// (seed, step, item) below `newItemShare`. The same for every rank and for a resumed run.
    public func rendersAsNew(item: Int, step: Int, seed: UInt64) -> Bool {
        Self.draw(item: item, step: step, seed: seed ^ 0x6E65_775F_6974_656D) < Double(newItemShare)
    }

    /// Whether `item`, encoded in step `step` of a run seeded `seed`, is rendered without its title: a uniform draw
    /// from (seed, step, item), independent of `rendersAsNew`'s, below `titleDropout`.
    public func rendersWithoutTitle(item: Int, step: Int, seed: UInt64) -> Bool {
        Self.draw(item: item, step: step, seed: seed ^ 0x7469_746C_655F_6F66) < Double(titleDropout)
    }

    /// A uniform draw in [0, 1) from (salted seed, step, item).
    static func draw(item: Int, step: Int, seed: UInt64) -> Double {
        var rng = SplitMix64(seed: seed &+ UInt64(step) &* 0xD1B5_4A32_D192_ED03 &+ UInt64(item) &* 0xBF58_476D_1CE4_E5B9)
        return Double(rng.next() >> 11) / 9_007_199_254_740_992
    }
}
