// The hyper-parameters of a Qwen2-style decoder, read from and written to a checkpoint's config.json with
// Hugging Face's field names; optional fields decode with Qwen2's defaults.
import Foundation

public struct Qwen2Configuration: Codable, Sendable, Equatable {
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var vocabSize: Int
    public var rmsNormEps: Float
    public var ropeTheta: Float
    public var tieWordEmbeddings: Bool
    public var maxPositionEmbeddings: Int
    /// Hugging Face's architecture tag, kept so that the written config.json is loadable elsewhere.
    public var modelType: String
    /// Latent reasoning steps of the user read-out (r2ec's own field, written only when above 0): after the prompt,
    /// each step's input is the previous position's final-norm hidden state plus a learned per-step vector
    /// (`model.latent_embeddings.weight` [latent_steps, hidden]), and the read-out is the last step's output.
    /// A checkpoint without the field is read as 0: the read-out is the prompt's last position.
    public var latentSteps = 0
    /// The most latent steps a configuration may ask for.
    public static let maxLatentSteps = 16

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads"
        case vocabSize = "vocab_size"
        case rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case tieWordEmbeddings = "tie_word_embeddings"
        case maxPositionEmbeddings = "max_position_embeddings"
        case modelType = "model_type"
        case latentSteps = "latent_steps"
        case architectures
        case torchDType = "torch_dtype"
        case hiddenAct = "hidden_act"
        case ropeScaling = "rope_scaling"
        case useSlidingWindow = "use_sliding_window"
    }

    public init(hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
                numKeyValueHeads: Int? = nil, vocabSize: Int, rmsNormEps: Float = 1e-6, ropeTheta: Float = 10_000,
                tieWordEmbeddings: Bool = true, maxPositionEmbeddings: Int = 4096) {
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads ?? numAttentionHeads
        self.vocabSize = vocabSize
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.tieWordEmbeddings = tieWordEmbeddings
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.modelType = "qwen2"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        numHiddenLayers = try c.decode(Int.self, forKey: .numHiddenLayers)
        numAttentionHeads = try c.decode(Int.self, forKey: .numAttentionHeads)
        numKeyValueHeads = try c.decodeIfPresent(Int.self, forKey: .numKeyValueHeads) ?? numAttentionHeads
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        rmsNormEps = try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? 1e-6
        ropeTheta = try c.decodeIfPresent(Float.self, forKey: .ropeTheta) ?? 10_000
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 32_768
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? "qwen2"
        latentSteps = try c.decodeIfPresent(Int.self, forKey: .latentSteps) ?? 0
        // Variants this engine does not compute are refused rather than run wrongly.
        if let act = try c.decodeIfPresent(String.self, forKey: .hiddenAct), act != "silu" {
            throw CheckpointError.invalidConfiguration("hidden_act \(act): only silu (SwiGLU) is implemented")
        }
        if (try? c.decodeNil(forKey: .ropeScaling)) == false {
            throw CheckpointError.invalidConfiguration("rope_scaling is set: only plain RoPE is implemented")
        }
        if try c.decodeIfPresent(Bool.self, forKey: .useSlidingWindow) == true {
            throw CheckpointError.invalidConfiguration("use_sliding_window is true: only full causal attention is implemented")
        }
    }

    /// Writes the fields above plus the ones Hugging Face's loader expects of a Qwen2 checkpoint written in F32.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(numKeyValueHeads, forKey: .numKeyValueHeads)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(rmsNormEps, forKey: .rmsNormEps)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encode(modelType, forKey: .modelType)
        if latentSteps > 0 { try c.encode(latentSteps, forKey: .latentSteps) }
        try c.encode(["Qwen2ForCausalLM"], forKey: .architectures)
        try c.encode("float32", forKey: .torchDType)
        try c.encode("silu", forKey: .hiddenAct)
    }

    /// Positions a user prompt may take: the latent steps follow it.
    public var promptPositions: Int { maxPositionEmbeddings - latentSteps }
    /// Width of one attention head.
    public var headDim: Int { hiddenSize / numAttentionHeads }
    /// Query heads per key/value head (grouped-query attention).
    public var queriesPerKeyValueHead: Int { numAttentionHeads / numKeyValueHeads }
    /// Rows of the fused Q|K|V projection.
    public var qkvRows: Int { (numAttentionHeads + 2 * numKeyValueHeads) * headDim }

    /// The value of a size field by its config.json name (for messages naming the field at fault).
    func value(of field: String) -> Int {
        switch field {
        case "hidden_size": return hiddenSize
        case "intermediate_size": return intermediateSize
        case "num_hidden_layers": return numHiddenLayers
        case "num_attention_heads": return numAttentionHeads
        case "num_key_value_heads": return numKeyValueHeads
        case "vocab_size": return vocabSize
        case "max_position_embeddings": return maxPositionEmbeddings
        case "latent_steps": return latentSteps
        default: preconditionFailure("no size field \(field)")
        }
    }

    /// Throws when the dimensions cannot describe a valid model.
    public func validate() throws {
        func fail(_ m: String) -> CheckpointError { .invalidConfiguration(m) }
        guard hiddenSize > 0, intermediateSize > 0, numHiddenLayers > 0, vocabSize > 0 else {
            throw fail("hidden_size, intermediate_size, num_hidden_layers and vocab_size must be positive")
        }
        guard numAttentionHeads > 0, hiddenSize % numAttentionHeads == 0 else {
            throw fail("hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numAttentionHeads)")
        }
        guard numKeyValueHeads > 0, numAttentionHeads % numKeyValueHeads == 0 else {
            throw fail("num_attention_heads \(numAttentionHeads) is not a multiple of num_key_value_heads \(numKeyValueHeads)")
        }
        guard headDim % 2 == 0 else { throw fail("head dimension \(headDim) must be even for rotary embeddings") }
        // Bounds far above any real checkpoint that keep every tensor's size and the parameter total within Int.
        let widest = 1 << 22
        guard hiddenSize <= widest, intermediateSize <= widest, vocabSize <= widest, numHiddenLayers <= 1024,
              maxPositionEmbeddings <= 1 << 24 else {
            throw fail("hidden_size, intermediate_size and vocab_size must be at most \(widest), num_hidden_layers at most 1024, max_position_embeddings at most \(1 << 24)")
        }
        guard (0...Self.maxLatentSteps).contains(latentSteps), latentSteps < maxPositionEmbeddings else {
            throw fail("latent_steps must be within 0...\(Self.maxLatentSteps) and below max_position_embeddings, got \(latentSteps)")
        }
    }

    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }

    public static func decode(json: Data) throws -> Qwen2Configuration {
        do { return try JSONDecoder().decode(Qwen2Configuration.self, from: json) }
        catch { throw CheckpointError.invalidConfiguration("config.json: \(error)") }
    }
}
