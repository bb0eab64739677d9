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
    let precision: PackedMatrix.Precision

    init(_ w: ModelWeights, configuration c: Qwen2Configuration, precision p: PackedMatrix.Precision) {
        let d = c.hiddenSize, ffn = c.intermediateSize, qDim = c.numAttentionHeads * c.headDim
        layers = w.layers.map {
            Layer(qkv: PackedMatrix(weights: $0.qkvWeight, n: c.qkvRows, k: d, precision: p),
                  output: PackedMatrix(weights: $0.outputWeight, n: d, k: qDim, precision: p),
                  gateUp: PackedMatrix(weights: $0.gateUpWeight, n: 2 * ffn, k: d, precision: p),
                  down: PackedMatrix(weights: $0.downWeight, n: d, k: ffn, precision: p))
        }
        lmHead = PackedMatrix(weights: w.lmHead, n: c.vocabSize, k: d, precision: p)
        precision = p
    }

    var byteCount: Int {
        layers.reduce(lmHead.byteCount) { $0 + $1.qkv.byteCount + $1.output.byteCount + $1.gateUp.byteCount + $1.down.byteCount }
    }
}
