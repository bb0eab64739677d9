// The projection matrices of a Qwen2 model packed for the packed-weight GEMM (Tensor's PackedMatrix): built once
// when a checkpoint is frozen for inference (serving, evaluation, benchmarks), never for a model being trained,
// whose weights change under it.
import Tensor

struct PackedWeights {
    struct Layer {
        let qkv: PackedMatrix
        let output: PackedMatrix
        let gateUp: PackedMatrix
        let down: PackedMatrix
    }
    let layers: [Layer]
    let lmHead: PackedMatrix

    init(_ w: ModelWeights, configuration c: Qwen2Configuration) {
        let d = c.hiddenSize, ffn = c.intermediateSize, qDim = c.numAttentionHeads * c.headDim
        layers = w.layers.map {
            Layer(qkv: PackedMatrix(weights: $0.qkvWeight, n: c.qkvRows, k: d),
                  output: PackedMatrix(weights: $0.outputWeight, n: d, k: qDim),
                  gateUp: PackedMatrix(weights: $0.gateUpWeight, n: 2 * ffn, k: d),
                  down: PackedMatrix(weights: $0.downWeight, n: d, k: ffn))
        }
        lmHead = PackedMatrix(weights: w.lmHead, n: c.vocabSize, k: d)
    }

    var byteCount: Int {
        layers.reduce(lmHead.byteCount) { $0 + $1.qkv.byteCount + $1.output.byteCount + $1.gateUp.byteCount + $1.down.byteCount }
    }
}
