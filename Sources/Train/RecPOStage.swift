// The `recpo` stage (R2EC.md): per user, G chains sampled with temperature / top-k / a token limit; fused reward
// 0.95 NDCG@1000 + 0.05 softmax(score)[target] over the full catalogue with history masked; group-normalised
// advantages A = (R - mean) / (std + 1e-8), 0 for a group whose rewards agree within 1e-6 (std); token policy-gradient loss over the reasoning tokens and `<answer>`
// (one update per batch: the PPO ratio is 1, so REINFORCE with normalised advantages), normalised by the batch's
// token count; plus the rec loss (cosine/tau vs the batch's targets and the full table) on each group's best chain,
// weighted by its advantage. No KL term.
import Data
import Eval
import Foundation
import Model
import Tensor

public struct RecPOStage: TrainingStage {
    public static let kind = "recpo"
    public var optimizer = OptimizerSchedule()
    public var validation = EvaluationSchedule()
    /// Chains per user.
    public var group = 4
    public var temperature: Float = 1.5
    /// Sampling keeps the top-k tokens (0: all).
    public var topK = 50
    public var maxNewTokens = 48
    /// Weight of the recommendation loss on the best chain.
    public var recWeight: Float = 1.0
    /// Refresh the full item table every this many steps (0: only at evaluations).
    public var refreshEvery = 25

    public init() {}

    public static let fields: [ConfigField<RecPOStage>] =
        OptimizerSchedule.fields.map { $0.lifted(\RecPOStage.optimizer) }
        + EvaluationSchedule.fields.map { $0.lifted(\RecPOStage.validation) } + [
            // One chain has no group to be compared with: its advantage is always 0 and nothing would learn.
            .int("group", \.group, .within(2, 256)),
            .float("temperature", \.temperature, .within(0.01, 100)),
            .int("top_k", \.topK, .within(0, 1_000_000)),
            .int("max_new_tokens", \.maxNewTokens, .within(1, 4096)),
            .float("rec_weight", \.recWeight, .within(0, 1000)),
            .int("refresh_every", \.refreshEvery, .within(0, 10_000_000)),
        ]

    public var evaluation: EvaluationSchedule? { validation }
    public var progressEvery: Int { 1 }

    public func batchSeed(seed: UInt64, stage: Int) -> UInt64 { seed &+ 977 &+ UInt64(stage) }

    /// The stage keeps its own best (by the reasoning path's validation NDCG@10), starting from an evaluation of
    /// the parameters it received: if RecPO never beats them, they are what the checkpoint keeps.
    public func begin(_ t: Trainer) throws {
        if t.table == nil { try t.refreshTable() }
        if t.progress.step == 0 {
            t.progress.bestScore = -1
            t.progress.evaluationsWithoutImprovement = 0
            _ = try t.evaluateShared(self, step: 0)
        }
    }

    public func validationRecommender(_ t: Trainer) -> Recommender? { reasoningRecommender(base: t.currentRecommender()) }

    public func reasoningRecommender(base: DualHeadModel) -> ReasoningRecommender? {
        ReasoningRecommender(base: base, maxNewTokens: maxNewTokens)
    }

    public func step(_ t: Trainer, step: Int, windows: [TrainingCorpus.Window]) throws -> StepReport {
        if refreshEvery > 0 && step > 0 && step % refreshEvery == 0 { try t.refreshTable() }
        let r = try recpoStep(t, windows: windows, step: step)
        return StepReport(loss: r.loss, tokens: r.tokens,
                          fields: [("reward", r.reward), ("reasoning_len", r.length), ("ndcg1000", r.ndcg)],
                          progress: String(format: " reward %.4f len %.1f", r.reward, r.length))
    }

    /// The reward spread (standard deviation within a group) below which a group's chains count as equally good.
    static let minimumRewardSpread = 1e-6

    /// Fused reward of one chain's scores: 0.95 NDCG@1000 + 0.05 p(target), history masked, ties by item index.
    static func reward(scores: [Float], target: Int, masked: Set<Int>) -> (reward: Double, ndcg: Double) {
        let t = scores[target]
        var rank = 1
        var maximum = -Float.infinity
        for (i, v) in scores.enumerated() where !masked.contains(i) || i == target {
            if v > t || (v == t && i < target) { rank += 1 }
            maximum = max(maximum, v)
        }
        var sum = 0.0
        for (i, v) in scores.enumerated() where !masked.contains(i) || i == target { sum += exp(Double(v - maximum)) }
        let p = exp(Double(t - maximum)) / sum
        let ndcg = rank <= 1000 ? 1 / log2(Double(rank) + 1) : 0
        return (0.95 * ndcg + 0.05 * p, ndcg)
    }

    /// One RecPO step. A data-parallel rank samples, rewards and trains the chains of its contiguous share of the
    /// batch's users (each chain seeded by its place in the whole batch, as one process seeds it) and reads out its
    /// share of the target items; the item read-outs are summed over the ranks so every rank's best chains are
    /// scored against every column, and the items' gradients are summed back. The loss is normalised by the whole
    /// batch's chain tokens and users; the returned loss and tokens are this rank's share, the means the batch's.
    func recpoStep(_ trainer: Trainer, windows: [TrainingCorpus.Window], step: Int) throws
        -> (loss: Double, reward: Double, length: Double, ndcg: Double, tokens: Int) {
        let model = trainer.model!, tokenizer = trainer.tokenizer!, corpus = trainer.corpus, graph = trainer.graph!
        let config = trainer.config, table = trainer.table!, world = trainer.world
        let g = group
        let recommender = DualHeadModel(model: model, tokenizer: tokenizer, catalog: corpus.dataset.catalog,
                                        itemTable: ItemTable(vectors: table, weightsHash: "", promptsHash: ""), tau: config.tau,
                                        promptFormat: corpus.promptFormat)
        let users = world.slice(of: windows.count)
        let histories = users.map { corpus.history(windows[$0]) }
        let targets = windows.map { corpus.target($0) }
        let times = users.map { corpus.targetTime(windows[$0]) }
        var repeated: [UserHistory] = [], repeatedTimes: [Int64] = []
        for (h, t) in zip(histories, times) { for _ in 0..<g { repeated.append(h); repeatedTimes.append(t) } }
        // Chain c of the whole batch draws from seed + c (DualHeadModel.reason seeds its chains consecutively).
        let sampling = SamplingSettings(temperature: temperature, topK: topK,
                                        seed: config.seed &* 0x5851_F42D &+ UInt64(step) &* 1_000_003 &+ UInt64(users.lowerBound * g))
        let chains = recommender.reason(repeated, targetTimes: repeatedTimes, settings: sampling, maxNewTokens: maxNewTokens)
        var rewards: [Double] = [], ndcgs: [Double] = []
        for (c, chain) in chains.enumerated() {
            let u = c / g
            let r = Self.reward(scores: chain.scores, target: targets[users.lowerBound + u], masked: Set(histories[u].items))
            rewards.append(r.reward); ndcgs.append(r.ndcg)
        }
        var advantages = [Double](repeating: 0, count: chains.count)
        var best: [Int] = []
        for u in histories.indices {
            let rewardsOfGroup = Array(rewards[(u * g)..<((u + 1) * g)])
            let mean = rewardsOfGroup.reduce(0, +) / Double(g)
            let std = (rewardsOfGroup.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(g)).squareRoot()
            // Rewards lie in [0, 1]; a group whose rewards agree within rounding (identical or equivalent chains)
            // has no advantage: (R - mean) / (std + 1e-8) would turn rounding noise into advantages of order 1.
            if std > Self.minimumRewardSpread {
                for k in 0..<g { advantages[u * g + k] = (rewardsOfGroup[k] - mean) / (std + 1e-8) }
            }
            best.append(u * g + (0..<g).max { rewardsOfGroup[$0] < rewardsOfGroup[$1] }!)
        }
        // This rank's training batch: its chains (prompt + reasoning + `<answer>`), then its share of the batch's
        // unique target items.
        let limit = min(DualHeadFormat.maxUserTokens, model.configuration.maxPositionEmbeddings)
        let prompts = zip(histories, times).map { h, t in
            DualHeadFormat.keepingTail(tokenizer.encode(DualHeadFormat.reasoningText(userPrompt: recommender.userPrompt(h, targetTime: t))),
                                       limit: limit)
        }
        var sequences: [[Int]] = []
        for (c, chain) in chains.enumerated() {
            let full = prompts[c / g] + chain.tokens
            sequences.append(Array(full.suffix(model.configuration.maxPositionEmbeddings)))
        }
        var fresh: [Int] = []
        var column = [Int](repeating: -1, count: corpus.catalogCount)
        for t in targets where column[t] < 0 { column[t] = fresh.count; fresh.append(t) }
        var fixedItems: [Int] = []
        for item in 0..<corpus.catalogCount where column[item] < 0 { column[item] = fresh.count + fixedItems.count; fixedItems.append(item) }
        let myItems = world.slice(of: fresh.count)
        sequences += myItems.map { corpus.itemTokens[fresh[$0]] }
        graph.zeroGradients()
        if !sequences.isEmpty { graph.forward(sequences) }
        // Token policy gradient: weight A / (tokens in the batch's chains) on every generated token.
        let myChainTokens = chains.reduce(0) { $0 + $1.tokens.count }
        let chainTokens = world.size > 1 ? Int(try world.sum(Double(myChainTokens))) : myChainTokens
        var rows: [Int] = [], tokenTargets: [Int] = [], weights: [Float] = []
        for (c, chain) in chains.enumerated() where advantages[c] != 0 {
            let start = sequences[c].count - chain.tokens.count
            for (i, token) in chain.tokens.enumerated() where start + i >= 1 {
                rows.append(graph.row(sequence: c, token: start + i - 1))
                tokenTargets.append(token)
                weights.append(Float(advantages[c]) / Float(max(1, chainTokens)))
            }
        }
        var loss = rows.isEmpty ? 0 : graph.tokenLoss(rows: rows, targets: tokenTargets, weights: weights)
        // Recommendation loss on each group's best chain, weighted by its advantage.
        let d = model.configuration.hiddenSize
        let fixed = FloatBuffer(shape: [max(1, fixedItems.count), d])
        for (i, item) in fixedItems.enumerated() { (fixed.data + i * d).update(from: table.data + item * d, count: d) }
        var userRows: [Int] = [], recTargets: [Int] = [], recWeights: [Float] = [], masked: [[Int]] = []
        for (u, c) in best.enumerated() where advantages[c] > 0 {
            let target = targets[users.lowerBound + u]
            userRows.append(graph.lastRow(sequence: c))
            recTargets.append(column[target])
            recWeights.append(recWeight * Float(advantages[c]) / Float(windows.count))
            masked.append(histories[u].items.compactMap { $0 == target ? nil : column[$0] })
        }
        // Every rank takes part in the item read-outs' sums when any rank has a best chain to train.
        let anyUsers = world.size > 1 ? try world.sum(Double(userRows.count)) > 0 : !userRows.isEmpty
        if anyUsers {
            let itemRow = { (k: Int) in graph.lastRow(sequence: chains.count + k - myItems.lowerBound) }
            let rawItems = try graph.sharedReadouts(count: fresh.count, mine: myItems, row: itemRow, width: d, world: world)
            var batch = ContrastiveBatch(
                userRows: userRows, itemRows: [], targets: recTargets, weights: recWeights, tau: config.tau,
                fixed: UnsafePointer(fixed.data), fixedCount: fixedItems.count, masked: masked)
            batch.externalItems = UnsafePointer(rawItems.data)
            batch.externalItemCount = fresh.count
            // With id vectors the fresh columns are unit(text + id) like the table's (which has them applied).
            let offsets = trainer.ids?.gather(fresh)
            if let offsets { batch.itemOffsets = UnsafePointer(offsets.data) }
            let result = graph.contrastiveLoss(batch)
            loss += result.loss
            if let ids = trainer.ids, let g = result.offsetGradients {
                if world.size > 1 { try world.allreduceSum(g.data, count: fresh.count * d) }
                ids.accumulate(fresh, gradients: g)
            }
            try graph.addSharedGradient(result.itemGradient!, count: fresh.count, mine: myItems, row: itemRow, width: d,
                                        world: world)
        }
        if !sequences.isEmpty { graph.backward() }
        var sums = [rewards.reduce(0, +), Double(myChainTokens), ndcgs.reduce(0, +)]
        if world.size > 1 { sums = try world.sum(sums) }
        let n = Double(windows.count * g)
        return (loss, sums[0] / n, sums[1] / n, sums[2] / n, sequences.isEmpty ? 0 : graph.rowCount)
    }
}
