// Seed inputs for FuzzCheckpoint written by the Model code itself (SafetensorsWriter, Tokenizer's tokenizer.json
// writer, Qwen2Configuration's config.json), each behind its selector byte: `R2EC_FUZZ_WRITE_SEEDS=DIR FuzzCheckpoint`.
import Foundation
import Model

func writeSeeds(to dir: String) throws {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    func put(_ name: String, _ selector: UInt8, _ body: Foundation.Data) throws {
        try (Foundation.Data([selector]) + body).write(to: URL(fileURLWithPath: dir + "/" + name))
    }
    let a: [Float] = [1, -2, 0.5, 3.25, .infinity, -0.0], b: [Float] = [42]
    let st = a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            SafetensorsWriter.encode([.init(name: "model.embed_tokens.weight", shape: [2, 3], values: pa),
                                      .init(name: "model.norm.weight", shape: [1], values: pb)],
                                     metadata: ["format": "pt", "note": "seed \"quoted\"\n"])
        }
    }
    try put("safetensors-f32", 0, st)
    // F16 and BF16 entries and an unknown dtype, laid out by hand as other exporters write them.
    let header = #"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[1,1],"data_offsets":[4,6]},"i":{"dtype":"I8","shape":[2],"data_offsets":[6,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}}"#
    var half = Foundation.Data()
    var length = UInt64(header.utf8.count).littleEndian
    withUnsafeBytes(of: &length) { half.append(contentsOf: $0) }
    half.append(contentsOf: Array(header.utf8))
    half.append(contentsOf: [0x00, 0x3C, 0x00, 0xC0, 0x80, 0x3F, 0x01, 0xFF])
    try put("safetensors-f16-bf16", 0, half)

    let tokenizer = try TokenizerTrainer.train(texts: ["Toy Story (1995)", "the user watched <answer>1</answer>", "aaaa bbbb aaaa"],
                                               vocabularySize: 270, minFrequency: 1)
    try put("tokenizer", 1, try tokenizer.huggingFaceJSON())

    let config = Qwen2Configuration(hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1, numAttentionHeads: 2,
                                    numKeyValueHeads: 1, vocabSize: 270)
    try put("config", 2, try config.jsonData())
    try put("config-minimal", 2, Foundation.Data(#"{"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":300}"#.utf8))
}
