// Safetensors and checkpoint directories: F32 round trips, F16/BF16 reads, and a clear error for each kind of bad
// file (missing tensor, wrong shape, unsupported dtype, truncated header or data, missing config).
import Foundation
import XCTest
@testable import Model

final class CheckpointTests: XCTestCase {
    /// A safetensors file built by hand: one tensor with the given dtype, shape and raw bytes.
    func handMade(_ name: String, dtype: String, shape: [Int], bytes: [UInt8]) -> Foundation.Data {
        var header = "{\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":[0,\(bytes.count)]}}"
        while header.utf8.count % 8 != 0 { header += " " }
        var out = Foundation.Data()
        var n = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(contentsOf: Array(header.utf8))
        out.append(contentsOf: bytes)
        return out
    }

    func testF32RoundTripAndMetadata() throws {
        let values: [Float] = [1, -2.5, 3e-8, .greatestFiniteMagnitude, 0, -0.0]
        let data = values.withUnsafeBufferPointer {
            SafetensorsWriter.encode([.init(name: "w", shape: [2, 3], values: $0)], metadata: ["k": "v\"q"])
        }
        XCTAssertEqual(data.count % 8, 0)
        let file = try SafetensorsFile(bytes: data)
        XCTAssertEqual(file.metadata["k"], "v\"q")
        XCTAssertEqual(try file.array("w", expectedShape: [2, 3]).map(\.bitPattern), values.map(\.bitPattern))
    }

    func testReadsF16AndBF16() throws {
        // f16: 1.0 = 0x3C00, -2.0 = 0xC000, 0.5 = 0x3800; bf16: 1.0 = 0x3F80, -2.0 = 0xC000, 0.5 = 0x3F00.
        let f16 = try SafetensorsFile(bytes: handMade("h", dtype: "F16", shape: [3], bytes: [0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38]))
        XCTAssertEqual(try f16.array("h"), [1, -2, 0.5])
        let bf16 = try SafetensorsFile(bytes: handMade("b", dtype: "BF16", shape: [3], bytes: [0x80, 0x3F, 0x00, 0xC0, 0x00, 0x3F]))
        XCTAssertEqual(try bf16.array("b"), [1, -2, 0.5])
    }

    func testClearErrors() throws {
        let ok = handMade("x", dtype: "F32", shape: [2], bytes: [0, 0, 128, 63, 0, 0, 0, 64])
        let file = try SafetensorsFile(bytes: ok, path: "ok.safetensors")
        XCTAssertThrowsError(try file.array("y")) {
            XCTAssertEqual($0 as? CheckpointError, .missingTensor(name: "y", file: "ok.safetensors"))
        }
        XCTAssertThrowsError(try file.array("x", expectedShape: [3])) {
            XCTAssertEqual($0 as? CheckpointError, .wrongShape(name: "x", expected: [3], found: [2]))
        }
        let ints = try SafetensorsFile(bytes: handMade("i", dtype: "I64", shape: [1], bytes: [1, 0, 0, 0, 0, 0, 0, 0]))
        XCTAssertThrowsError(try ints.array("i")) {
            XCTAssertEqual($0 as? CheckpointError, .unsupportedDType(name: "i", dtype: "I64"))
            XCTAssertTrue("\($0)".contains("only F32, F16 and BF16"))
        }
        // Truncated data, truncated header, and a file shorter than the length prefix.
        for cut in [ok.count - 1, 12, 5] {
            XCTAssertThrowsError(try SafetensorsFile(bytes: ok.prefix(cut), path: "cut")) { error in
                guard case .truncated(let f, _)? = error as? CheckpointError else { return XCTFail("\(error)") }
                XCTAssertEqual(f, "cut")
            }
        }
        XCTAssertThrowsError(try SafetensorsFile(bytes: handMade("x", dtype: "F32", shape: [3], bytes: [0, 0, 0, 0]))) {
            guard case .malformedHeader? = $0 as? CheckpointError else { return XCTFail("\($0)") }
        }
    }

    func testCheckpointDirectoryRoundTripAndErrors() throws {
        let c = Fixtures.tinyUntied
        let model = try Fixtures.randomModel(c, seed: 1)
        let dir = Fixtures.temporaryDirectory("checkpoint")
        try Checkpoint.save(model, tokenizer: try Fixtures.tokenizer(), directory: dir)
        let loaded = try Checkpoint.loadModel(directory: dir)
        XCTAssertEqual(loaded.configuration, c)
        XCTAssertEqual(Checkpoint.weightsHash(loaded), Checkpoint.weightsHash(model))
        XCTAssertEqual(try Checkpoint.loadTokenizer(directory: dir).vocabularySize, 300)

        // A file without lm_head for an untied configuration names the missing tensor.
        let file = try SafetensorsFile(path: dir + "/model.safetensors")
        let keep = file.names.filter { $0 != "lm_head.weight" }
        let arrays = try keep.map { try file.array($0) }
        let tensors = zip(keep, arrays).map { name, values in
            values.withUnsafeBufferPointer { SafetensorsWriter.Tensor(name: name, shape: file.entries[name]!.shape, values: $0) }
        }
        // (The buffers above outlive their closures only through `arrays`, which stays alive here.)
        try SafetensorsWriter.write(tensors, to: dir + "/model.safetensors")
        XCTAssertThrowsError(try Checkpoint.loadModel(directory: dir)) {
            guard case .missingTensor(let name, _)? = $0 as? CheckpointError else { return XCTFail("\($0)") }
            XCTAssertEqual(name, "lm_head.weight")
        }
        // The same file loads as a tied model, and a wrong hidden size is a shape error.
        var tied = c; tied.tieWordEmbeddings = true
        try tied.jsonData().write(to: URL(fileURLWithPath: dir + "/config.json"))
        XCTAssertNoThrow(try Checkpoint.loadModel(directory: dir))
        var wrong = tied; wrong.intermediateSize = 65
        try wrong.jsonData().write(to: URL(fileURLWithPath: dir + "/config.json"))
        XCTAssertThrowsError(try Checkpoint.loadModel(directory: dir)) {
            guard case .configurationMismatch(let field, let detail)? = $0 as? CheckpointError else { return XCTFail("\($0)") }
            XCTAssertEqual(field, "intermediate_size")
            XCTAssertTrue(detail.contains("model.layers.0.mlp.gate_proj.weight [65, 32]") && detail.contains("[64, 32]"), detail)
        }
        try FileManager.default.removeItem(atPath: dir + "/config.json")
        XCTAssertThrowsError(try Checkpoint.loadModel(directory: dir)) {
            guard case .missingFile? = $0 as? CheckpointError else { return XCTFail("\($0)") }
        }
    }

    func testConfigurationUsesHuggingFaceNamesAndDefaults() throws {
        let json = #"{"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,"# +
            #" "vocab_size": 500, "architectures": ["Qwen2ForCausalLM"]}"#
        let c = try Qwen2Configuration.decode(json: Foundation.Data(json.utf8))
        XCTAssertEqual(c.numKeyValueHeads, 4)
        XCTAssertEqual(c.rmsNormEps, 1e-6)
        XCTAssertFalse(c.tieWordEmbeddings)
        let written = String(decoding: try c.jsonData(), as: UTF8.self)
        XCTAssertTrue(written.contains("\"num_key_value_heads\" : 4"))
        XCTAssertTrue(written.contains("Qwen2ForCausalLM"))
        XCTAssertEqual(try Qwen2Configuration.decode(json: c.jsonData()), c)
        for unsupported in [#""hidden_act": "gelu""#, #""rope_scaling": {"type": "yarn", "factor": 4}"#,
                            #""use_sliding_window": true"#] {
            let variant = json.replacingOccurrences(of: #""vocab_size": 500"#, with: #""vocab_size": 500, "# + unsupported)
            XCTAssertThrowsError(try Qwen2Configuration.decode(json: Foundation.Data(variant.utf8)), unsupported)
        }
        let plain = json.replacingOccurrences(of: #""vocab_size": 500"#,
                                              with: #""vocab_size": 500, "rope_scaling": null, "use_sliding_window": false, "hidden_act": "silu""#)
        XCTAssertNoThrow(try Qwen2Configuration.decode(json: Foundation.Data(plain.utf8)))
        XCTAssertThrowsError(try Qwen2Configuration(hiddenSize: 30, intermediateSize: 8, numHiddenLayers: 1,
                                                    numAttentionHeads: 4, vocabSize: 10).validate())
    }

    func testSanitizeDropsUnusedKeysAndAddsThePrefix() {
        let map = Checkpoint.sanitize(weights: ["layers.0.self_attn.rotary_emb.inv_freq", "lm_head.weight",
                                                "embed_tokens.weight", "model.norm.weight"],
                                      configuration: Fixtures.tinyTied)
        XCTAssertEqual(map, ["model.embed_tokens.weight": "embed_tokens.weight", "model.norm.weight": "model.norm.weight"])
    }

    func testLayoutFusesProjectionsAndAligns() {
        let c = Fixtures.tinyTied
        let layout = ParameterLayout(configuration: c)
        let q = layout["model.layers.1.self_attn.q_proj.weight"]!, k = layout["model.layers.1.self_attn.k_proj.weight"]!
        let v = layout["model.layers.1.self_attn.v_proj.weight"]!
        XCTAssertEqual(k.offset, q.offset + q.count); XCTAssertEqual(v.offset, k.offset + k.count)
        let gate = layout["model.layers.0.mlp.gate_proj.weight"]!, up = layout["model.layers.0.mlp.up_proj.weight"]!
        XCTAssertEqual(up.offset, gate.offset + gate.count)
        XCTAssertEqual(q.offset % 16, 0)
        XCTAssertNil(layout["lm_head.weight"])
        // 300*32 embedding + 2 layers * (2*32 + 32*(32+16+16) + 64 + 32*32 + 3*32*64) + 32.
        XCTAssertEqual(layout.parameterCount, 300 * 32 + 2 * (64 + 2048 + 64 + 1024 + 6144) + 32)
    }

    /// A Hugging Face-style BF16 checkpoint (as Qwen2 releases ship) loads through the same path: every weight equals
    /// its F32 value rounded to BF16 (nearest, ties to even).
    func testBF16CheckpointLoads() throws {
        let c = Fixtures.tinyTied
        let model = try Fixtures.randomModel(c, seed: 31)
        let dir = Fixtures.temporaryDirectory("bf16")
        try c.jsonData().write(to: URL(fileURLWithPath: dir + "/config.json"))
        func bf16(_ x: Float) -> UInt16 {
            let bits = x.bitPattern
            return UInt16((bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
        }
        var header: [String] = [], data: [UInt8] = []
        for e in model.parameters.layout.entries {
            let values = model.parameters.tensor(e.name)
            let begin = data.count
            for v in values { let b = bf16(v); data.append(UInt8(b & 0xFF)); data.append(UInt8(b >> 8)) }
            header.append("\"\(e.name)\":{\"dtype\":\"BF16\",\"shape\":\(e.shape),\"data_offsets\":[\(begin),\(data.count)]}")
        }
        var json = "{" + header.joined(separator: ",") + "}"
        while json.utf8.count % 8 != 0 { json += " " }
        var file = Foundation.Data()
        var n = UInt64(json.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { file.append(contentsOf: $0) }
        file.append(contentsOf: Array(json.utf8))
        file.append(contentsOf: data)
        try file.write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        let loaded = try Checkpoint.loadModel(directory: dir)
        for e in model.parameters.layout.entries {
            let original = model.parameters.tensor(e.name), read = loaded.parameters.tensor(e.name)
            for i in 0..<e.count {
                XCTAssertEqual(read[i].bitPattern, UInt32(bf16(original[i])) << 16, e.name)
            }
        }
    }
}

