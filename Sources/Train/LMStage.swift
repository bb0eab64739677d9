// The `lm` stage: next-token warm-up on the dataset's own texts (item texts and user prompts in the direct format,
// ending with `<answer>`), so the backbone learns its catalogue's language before the recommendation head trains.
// The loss is the mean cross-entropy over every predicted token of the batch. It does not evaluate.
import Data
import Foundation
import Model
import Tensor

public struct LMStage: TrainingStage {
    public static let kind = "lm"
    public var optimizer = OptimizerSchedule()
    public var dropout: Float = 0
    /// Share of sequences that are item texts (the rest are user prompts).
    public var itemShare: Float = 0.5

    public init() {}

    public static let fields: [ConfigField<LMStage>] = OptimizerSchedule.fields.map { $0.lifted(\LMStage.optimizer) } + [
        .float("dropout", \.dropout, .from(0, below: 1)),
        .float("item_share", \.itemShare, .within(0, 1)),
    ]

    public func batchSeed(seed: UInt64, stage: Int) -> UInt64 { seed &+ 31 &+ UInt64(stage) }

    public func step(_ t: Trainer, step: Int, windows: [TrainingCorpus.Window]) throws -> StepReport {
        var rng = SplitMix64(seed: t.config.seed &* 1_000_003 &+ UInt64(step))
        let sequences: [[Int]] = windows.map { w in
            rng.nextUniform() < itemShare
                ? t.corpus.itemTokens[Int(rng.next() % UInt64(t.corpus.catalogCount))]
                : t.corpus.example(w).tokens
        }
        // A data-parallel rank runs its contiguous share of the sequences; every predicted token of the whole batch
        // weighs 1 / (the batch's predicted tokens), so the ranks' losses and gradients sum to the batch's.
        let predicted = sequences.reduce(0) { $0 + max(0, $1.count - 1) }
        let share = BatchShare(lengths: sequences.map(\.count), world: t.world)
        let mine = share.sequences
        t.graph.zeroGradients()
        guard !mine.isEmpty else { return StepReport(loss: 0, tokens: 0) }
        t.graph.dropoutRowOffset = share.rowOffset
        t.graph.forward(Array(sequences[mine]))
        var rows: [Int] = [], targets: [Int] = []
        for (i, seq) in sequences[mine].enumerated() where seq.count > 1 {
            for p in 0..<(seq.count - 1) { rows.append(t.graph.row(sequence: i, token: p)); targets.append(seq[p + 1]) }
        }
        let weight = 1 / Float(max(1, predicted))
        let loss = t.graph.tokenLoss(rows: rows, targets: targets, weights: [Float](repeating: weight, count: rows.count))
        t.graph.backward()
        return StepReport(loss: loss, tokens: t.graph.rowCount)
    }
}
