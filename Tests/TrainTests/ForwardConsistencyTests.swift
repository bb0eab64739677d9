// The training forward (TrainingGraph) and the inference engine (Qwen2Model.forward, used for item tables,
// evaluation and serving) must compute the same final-norm hidden states, ragged batches and long sequences included.
import Data
import Foundation
import Model
import Tensor
@testable import Train
import XCTest

final class ForwardConsistencyTests: XCTestCase {
    func testTrainingForwardEqualsInference() throws {
        var c = Qwen2Configuration(hiddenSize: 64, intermediateSize: 96, numHiddenLayers: 2, numAttentionHeads: 4,
                                   numKeyValueHeads: 2, vocabSize: 50, tieWordEmbeddings: true, maxPositionEmbeddings: 512)
        c.ropeTheta = 10_000
        let model = try TrainFixtures.model(c, seed: 3, std: 0.1)
        var rng = SplitMix64(seed: 4)
        let sequences = [300, 5, 140, 33, 1, 70].map { n in (0..<n).map { _ in Int(rng.next() % 50) } }
        let graph = TrainingGraph(model: model)
        let hidden = graph.forward(sequences)
        let output = model.forward(sequences, rows: .all, logits: false)
        var worst: Float = 0
        for i in 0..<(graph.rowCount * c.hiddenSize) { worst = max(worst, abs(hidden[i] - output.hidden.data[i])) }
        print("max |training - inference| hidden: \(worst)")
        XCTAssertLessThan(worst, 1e-3)
    }
}
