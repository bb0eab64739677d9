// The `rationale` stage (issue 16 part 3): supervised reasoning before (or instead of) RecPO. Each window's
// sequence is the reasoning prompt (exactly the tokens the reasoning path is prefilled with), then a rationale
// derived from the history (`Rationale.text`: the quoted titles of recent and best-rated items as the prompt quotes
// them, the genres they share), then "\n<answer>". The loss is the next-token cross-entropy over the rationale's
// and `<answer>`'s tokens (mean over them), plus `rec_weight` times the rec loss on the `<answer>` read-out after
// the rationale (in-batch softmax over the batch's targets, re-encoded with gradient, logQ-corrected, history
// masked), so the read-out the reasoning path scores with learns to recommend. Evaluations score the reasoning
// path (greedy chains, titles optionally constrained to the catalogue); the stage keeps its own best, like RecPO.
import Data
import Foundation
import Model
import Tensor

public struct RationaleStage: TrainingStage {
    public static let kind = "rationale"
    public var optimizer = OptimizerSchedule()
    public var validation = EvaluationSchedule()
    public var dropout: Float = 0
    /// Weight of the rec loss on the read-out after the rationale (0: the LM loss alone).
    public var recWeight: Float = 1
    /// Titles the rationale quotes as "Recent", and the most genres it names.
    public var recent = 2
    public var genres = 3
    /// Token limit of the validation chains.
    public var maxNewTokens = 64
    /// Validation chains quote only catalogue titles (TitleConstraint).
    public var constrainTitles = true

    public init() {}

    static let ownFields: [ConfigField<RationaleStage>] = [
        .float("dropout", \.dropout, .from(0, below: 1)),
        .float("rec_weight", \.recWeight, .within(0, 1000)),
        .int("recent", \.recent, .within(0, 20)),
        .int("genres", \.genres, .within(1, 100)),
        .int("max_new_tokens", \.maxNewTokens, .within(1, 4096)),
        .bool("constrain_titles", \.constrainTitles),
    ]
    static let optimizerFields: [ConfigField<RationaleStage>] = OptimizerSchedule.fields.map { $0.lifted(\RationaleStage.optimizer) }
    static let evaluationFields: [ConfigField<RationaleStage>] =
        EvaluationSchedule.fields.map { $0.lifted(\RationaleStage.validation) }
    public static let fields: [ConfigField<RationaleStage>] = optimizerFields + evaluationFields + ownFields

    public var evaluation: EvaluationSchedule? { validation }

    public func batchSeed(seed: UInt64, stage: Int) -> UInt64 { seed &+ 4271 &+ UInt64(stage) }

    /// The stage keeps its own best by the reasoning path's validation NDCG@10 (the direct path's scores before it
    /// measure another read-out); the parameters before it are saved as the "w/o reasoning" model.
    public func begin(_ t: Trainer) throws {
        if t.progress.step == 0 {
            t.progress.bestScore = -1
            t.progress.evaluationsWithoutImprovement = 0
        }
    }

    public func reasoningRecommender(base: DualHeadModel) -> ReasoningRecommender? {
        ReasoningRecommender(base: base, maxNewTokens: maxNewTokens, constrainTitles: constrainTitles ? .catalogue : nil)
    }

    public func validationRecommender(_ t: Trainer) -> Recommender? { reasoningRecommender(base: t.currentRecommender()) }

    /// The prompt's tokens and the rationale's ("rationale\n<answer>") for one window; the prompt loses its oldest
    /// tokens if the two do not fit in `maxPositions`.
    static func sequence(_ corpus: TrainingCorpus, tokenizer: Tokenizer, window w: TrainingCorpus.Window, recent: Int,
                         genres: Int, maxPositions: Int) -> (tokens: [Int], rationaleStart: Int) {
        let h = corpus.history(w)
        let prompt = Prompts.user(history: h, catalog: corpus.dataset.catalog, targetTime: corpus.targetTime(w),
                                  format: corpus.promptFormat)
        let promptTokens = DualHeadFormat.keepingTail(tokenizer.encode(DualHeadFormat.reasoningText(userPrompt: prompt)),
                                                      limit: min(DualHeadFormat.maxUserTokens, maxPositions))
        let text = Rationale.text(history: h, catalog: corpus.dataset.catalog, recent: recent, genres: genres)
        let rationale = tokenizer.encode(text + DualHeadFormat.separator + Prompts.answerTag)
        let kept = Array(promptTokens.suffix(max(1, maxPositions - rationale.count)))
        return (kept + rationale, kept.count)
    }

    /// One step over `windows`. A data-parallel rank runs its contiguous share of the sequences (the windows'
    /// prompts with their rationales, then the batch's target items), as the rec stage does: the LM loss weighs every
    /// rationale token of the whole batch alike, the target items' read-outs are summed over the ranks so every rank
    /// scores its users against every column, and the items' gradients are summed back before the backward.
    public func step(_ t: Trainer, step: Int, windows: [TrainingCorpus.Window]) throws -> StepReport {
        let corpus = t.corpus, graph = t.graph!, tokenizer = t.tokenizer!, world = t.world
        let maxPositions = t.model.configuration.maxPositionEmbeddings
        let d = t.model.configuration.hiddenSize
        let built = windows.map {
            Self.sequence(corpus, tokenizer: tokenizer, window: $0, recent: recent, genres: genres, maxPositions: maxPositions)
        }
        let targets = windows.map { corpus.target($0) }
        var fresh: [Int] = []
        var column = [Int](repeating: -1, count: corpus.catalogCount)
        if recWeight > 0 { for item in targets where column[item] < 0 { column[item] = fresh.count; fresh.append(item) } }
        let sequences = built.map(\.tokens) + fresh.map { corpus.itemTokens[$0] }
        let share = BatchShare(lengths: sequences.map(\.count), world: world)
        let mine = share.sequences
        graph.zeroGradients()
        graph.dropoutRowOffset = share.rowOffset
        if !mine.isEmpty { graph.forward(Array(sequences[mine])) }
        // Every rationale token (and <answer>) of the whole batch weighs the same; this rank predicts its own.
        let predicted = built.reduce(0) { $0 + $1.tokens.count - max(1, $1.rationaleStart) }
        var rows: [Int] = [], tokenTargets: [Int] = []
        for i in built.indices where mine.contains(i) {
            let b = built[i]
            for p in max(1, b.rationaleStart)..<b.tokens.count {
                rows.append(share.row(of: i, token: p - 1, in: graph)); tokenTargets.append(b.tokens[p])
            }
        }
        let weight = 1 / Float(max(1, predicted))
        var lmLoss = rows.isEmpty ? 0
            : graph.tokenLoss(rows: rows, targets: tokenTargets, weights: [Float](repeating: weight, count: rows.count))
        var recLoss = 0.0
        if recWeight > 0 {
            let local = windows.indices.filter { mine.contains($0) }
            let masked = local.map { u in
                corpus.history(windows[u]).items.compactMap { $0 == targets[u] || column[$0] < 0 ? nil : column[$0] }
            }
            let itemSequences = built.count..<(built.count + fresh.count)
            let rawItems = try share.gatherReadouts(of: itemSequences, graph: graph, width: d, world: world)
            var batch = ContrastiveBatch(
                userRows: local.map { share.row(of: $0, in: graph) }, itemRows: [], targets: local.map { column[targets[$0]] },
                weights: [Float](repeating: recWeight / Float(windows.count), count: local.count),
                tau: t.config.tau, fixed: nil, fixedCount: 0, masked: masked)
            batch.externalItems = UnsafePointer(rawItems.data)
            batch.externalItemCount = fresh.count
            let draws = Double(windows.count)
            batch.columnOffsets = fresh.map { Float(-Foundation.log(max(1e-6, -expm1(-draws * corpus.itemFrequency[$0])))) }
            let offsets = t.ids?.gather(fresh)
            if let offsets { batch.itemOffsets = UnsafePointer(offsets.data) }
            let result = graph.contrastiveLoss(batch)
            if let ids = t.ids, let g = result.offsetGradients {
                if world.size > 1 { try world.allreduceSum(g.data, count: fresh.count * d) }
                ids.accumulate(fresh, gradients: g)
            }
            try share.scatterGradient(result.itemGradient!, of: itemSequences, graph: graph, width: d, world: world)
            recLoss = result.loss
        }
        if !mine.isEmpty { graph.backward() }
        let loss = lmLoss + recLoss
        if world.size > 1 {
            // The log's parts are the whole batch's (the trainer sums `loss` over the ranks itself).
            let sums = try world.sum([lmLoss, recLoss])
            lmLoss = sums[0]; recLoss = sums[1]
        }
        return StepReport(loss: loss, tokens: mine.isEmpty ? 0 : graph.rowCount,
                          fields: [("lm_loss", lmLoss), ("rec_loss", recLoss)],
                          progress: String(format: " lm %.4f rec %.4f", lmLoss, recLoss))
    }
}
