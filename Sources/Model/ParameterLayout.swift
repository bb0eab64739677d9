// The table of a Qwen2 model's tensors (Hugging Face names and shapes) and its carving of one contiguous Float
// allocation. Training carves gradients and Adam moments with the same table, so every tensor, the heads included,
// is handled alike. Within a layer q|k|v weights, q|k|v biases and gate|up weights are adjacent, so the fused
// projections are plain views of the same memory.

public struct ParameterLayout: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        /// The config.json field each dimension comes from (e.g. ["vocab_size", "hidden_size"]), so a tensor
        /// that does not fit the configuration names the field at fault.
        public var dimensions: [String]
        /// Offset in floats from the start of the allocation.
        public var offset: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public let entries: [Entry]
    public let totalCount: Int
    private let indexByName: [String: Int]

    public init(configuration c: Qwen2Configuration) {
        // Groups start on a 16-float (64-byte) boundary; tensors within a group are exactly adjacent, which is what
        // makes the fused Q|K|V weights, Q|K|V biases and gate|up weights single matrices.
        typealias Tensor = (name: String, shape: [Int], dimensions: [String])
        let d = c.hiddenSize, hd = c.headDim
        let qRows = c.numAttentionHeads * hd, kvRows = c.numKeyValueHeads * hd
        // q rows are heads x head_dim = hidden_size; k and v rows are num_key_value_heads x head_dim.
        let hidden = "hidden_size", kv = "num_key_value_heads", ffn = "intermediate_size"
        var groups: [[Tensor]] = [[("model.embed_tokens.weight", [c.vocabSize, d], ["vocab_size", hidden])]]
        for l in 0..<c.numHiddenLayers {
            let p = "model.layers.\(l)."
            groups.append([(p + "input_layernorm.weight", [d], [hidden])])
            groups.append([(p + "self_attn.q_proj.weight", [qRows, d], [hidden, hidden]),
                           (p + "self_attn.k_proj.weight", [kvRows, d], [kv, hidden]),
                           (p + "self_attn.v_proj.weight", [kvRows, d], [kv, hidden])])
            groups.append([(p + "self_attn.q_proj.bias", [qRows], [hidden]),
                           (p + "self_attn.k_proj.bias", [kvRows], [kv]),
                           (p + "self_attn.v_proj.bias", [kvRows], [kv])])
            groups.append([(p + "self_attn.o_proj.weight", [d, qRows], [hidden, hidden])])
            groups.append([(p + "post_attention_layernorm.weight", [d], [hidden])])
            groups.append([(p + "mlp.gate_proj.weight", [c.intermediateSize, d], [ffn, hidden]),
                           (p + "mlp.up_proj.weight", [c.intermediateSize, d], [ffn, hidden])])
            groups.append([(p + "mlp.down_proj.weight", [d, c.intermediateSize], [hidden, ffn])])
        }
        groups.append([("model.norm.weight", [d], [hidden])])
        if c.latentSteps > 0 {
            groups.append([("model.latent_embeddings.weight", [c.latentSteps, d], ["latent_steps", hidden])])
        }
        if !c.tieWordEmbeddings { groups.append([("lm_head.weight", [c.vocabSize, d], ["vocab_size", hidden])]) }

        var entries: [Entry] = []
        var offset = 0
        for group in groups {
            offset = (offset + 15) & ~15
            for t in group {
                entries.append(Entry(name: t.name, shape: t.shape, dimensions: t.dimensions, offset: offset))
                offset += t.shape.reduce(1, *)
            }
        }
        self.entries = entries
        self.totalCount = (offset + 15) & ~15
        var index: [String: Int] = [:]
        for (i, e) in entries.enumerated() { index[e.name] = i }
        self.indexByName = index
    }

    public subscript(name: String) -> Entry? { indexByName[name].map { entries[$0] } }

    /// Number of trainable parameters (padding excluded).
    public var parameterCount: Int { entries.reduce(0) { $0 + $1.count } }
}
