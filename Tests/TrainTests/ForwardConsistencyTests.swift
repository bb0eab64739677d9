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
        let (model, sequences) = try TrainFixtures.consistencyCase()
        let graph = TrainingGraph(model: model)
        let hidden = graph.forward(sequences)
        let output = model.forward(sequences, rows: .all, logits: false)
        var worst: Float = 0
        for i in 0..<(graph.rowCount * model.configuration.hiddenSize) { worst = max(worst, abs(hidden[i] - output.hidden.data[i])) }
        print("max |training - inference| hidden: \(worst)")
        XCTAssertLessThan(worst, 1e-3)
    }
}
