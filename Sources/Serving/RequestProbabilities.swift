// The calibrated probabilities of one request. The rank an item gets for calibration is its place among every item
// the request could have recommended: 1 + the number of unmasked items scoring strictly higher (tied scores share
// a rank), the rule the calibrator was fitted with. Within one request a higher score never has a worse rank, so
// with a monotone calibrator (TopNCalibrator) probabilities never fall as scores rise, whichever list shows them:
// a top-k, a candidate-restricted top-k or ScoreItems' requested items. Ranks beyond the calibrator's have none.
import Data

struct RequestProbabilities {
    let calibrator: ProbabilityCalibrator
    /// The best `calibrator.ranks` unmasked scores of the request, best first.
    let best: [Float]

    /// nil when probabilities were not asked for or the model has no calibrator (the answer then has none).
    init?(asked: Bool, model: ServedModel, scores: UnsafeBufferPointer<Float>, masked: Set<Int>) {
        guard asked, let calibrator = model.calibrator, calibrator.ranks > 0 else { return nil }
        self.calibrator = calibrator
        best = Ranking.topK(scores, k: calibrator.ranks, masked: masked).map(\.score)
    }

    /// The probability of an item with `score` in this request; nil beyond the calibrated ranks.
    func probability(of score: Float) -> Float? {
        guard !score.isNaN else { return nil }
        let higher = best.prefix { $0 > score }.count
        guard higher < calibrator.ranks else { return nil }
        return calibrator.probability(score: score, rank: higher + 1)
    }
}
