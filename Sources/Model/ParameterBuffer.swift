// One contiguous, 64-byte-aligned Float allocation carved by a ParameterLayout: the model's weights, and in training
// its gradients and optimiser moments, alike. `LayerWeights` gives the raw pointers one decoder layer reads.
import Data
import Foundation

public final class ParameterBuffer: @unchecked Sendable {
    public let layout: ParameterLayout
    public let base: UnsafeMutablePointer<Float>
    public var count: Int { layout.totalCount }

    /// A zero-filled buffer for `layout`.
    public init(layout: ParameterLayout) {
        self.layout = layout
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, layout.totalCount) * 4, alignment: 64)
        base = raw.bindMemory(to: Float.self, capacity: max(1, layout.totalCount))
        base.initialize(repeating: 0, count: max(1, layout.totalCount))
    }

    deinit { base.deallocate() }

    public var all: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: count) }

    /// The tensor `name`, as a view into this buffer's storage: valid only while the buffer lives, so keep its owner
    /// (the model, the graph) alive while the view is used, or take `values(_:)`. A programmer error when the layout
    /// has no such tensor.
    public func tensor(_ name: String) -> UnsafeMutableBufferPointer<Float> {
        guard let e = layout[name] else { preconditionFailure("no tensor \(name) in the parameter layout") }
        return UnsafeMutableBufferPointer(start: base + e.offset, count: e.count)
    }

    /// A copy of tensor `name` that owns its values: still valid after the buffer and its owner are gone.
    public func values(_ name: String) -> [Float] { Array(tensor(name)) }

    public func pointer(_ name: String) -> UnsafeMutablePointer<Float> { tensor(name).baseAddress! }

    /// Fills every tensor from a seeded generator the way a from-scratch model starts: normal(0, std) matrices,
    /// zero biases, unit norm weights.
    public func initialiseRandomly(seed: UInt64, std: Float = 0.02) {
        var rng = SplitMix64(seed: seed)
        for e in layout.entries {
            let t = UnsafeMutableBufferPointer(start: base + e.offset, count: e.count)
            if e.name.hasSuffix("norm.weight") {
                t.update(repeating: 1)
            } else if e.name.hasSuffix(".bias") {
                t.update(repeating: 0)
            } else {
                for i in 0..<t.count { t[i] = rng.nextGaussian() * std }
            }
        }
    }

    public func copy() -> ParameterBuffer {
        let other = ParameterBuffer(layout: layout)
        other.base.update(from: base, count: count)
        return other
    }
}

/// Raw pointers to one decoder layer's tensors (fused views included).
public struct LayerWeights {
    public var inputNorm: UnsafeMutablePointer<Float>
    /// [qkvRows, hidden]: q_proj | k_proj | v_proj.
    public var qkvWeight: UnsafeMutablePointer<Float>
    /// [qkvRows]: q bias | k bias | v bias.
    public var qkvBias: UnsafeMutablePointer<Float>
    /// [hidden, heads * headDim].
    public var outputWeight: UnsafeMutablePointer<Float>
    public var postAttentionNorm: UnsafeMutablePointer<Float>
    /// [2 * intermediate, hidden]: gate_proj | up_proj.
    public var gateUpWeight: UnsafeMutablePointer<Float>
    /// [hidden, intermediate].
    public var downWeight: UnsafeMutablePointer<Float>

    public init(_ buffer: ParameterBuffer, layer l: Int) {
        let p = "model.layers.\(l)."
        inputNorm = buffer.pointer(p + "input_layernorm.weight")
        qkvWeight = buffer.pointer(p + "self_attn.q_proj.weight")
        qkvBias = buffer.pointer(p + "self_attn.q_proj.bias")
        outputWeight = buffer.pointer(p + "self_attn.o_proj.weight")
        postAttentionNorm = buffer.pointer(p + "post_attention_layernorm.weight")
        gateUpWeight = buffer.pointer(p + "mlp.gate_proj.weight")
        downWeight = buffer.pointer(p + "mlp.down_proj.weight")
    }
}

/// Raw pointers to the whole model's tensors.
public struct ModelWeights {
    public var embedding: UnsafeMutablePointer<Float>
    public var layers: [LayerWeights]
    public var finalNorm: UnsafeMutablePointer<Float>
    /// The LM head's [vocab, hidden] matrix: the embedding when tied.
    public var lmHead: UnsafeMutablePointer<Float>
    /// The per-step vectors [latent_steps, hidden] added to each latent step's input (nil without latent steps).
    public var latentEmbeddings: UnsafeMutablePointer<Float>?

    public init(_ buffer: ParameterBuffer, configuration c: Qwen2Configuration) {
        embedding = buffer.pointer("model.embed_tokens.weight")
        layers = (0..<c.numHiddenLayers).map { LayerWeights(buffer, layer: $0) }
        finalNorm = buffer.pointer("model.norm.weight")
        lmHead = c.tieWordEmbeddings ? embedding : buffer.pointer("lm_head.weight")
        latentEmbeddings = c.latentSteps > 0 ? buffer.pointer("model.latent_embeddings.weight") : nil
    }
}
