// Inputs the FuzzCheckpoint target (Tests/Fuzz) found breaking the checkpoint and tokenizer loaders, minimised;
// each must now load correctly or throw CheckpointError.
import Foundation
import XCTest
@testable import Model

final class ModelFuzzRegressionTests: XCTestCase {
    /// A byte-level vocabulary (all 256 byte tokens) plus `extra` JSON members in "vocab" and the given added tokens.
    private func tokenizerJSON(extraVocab: String = "", added: String = "[]") -> Data {
        var vocab: [String] = []
        for b in 0..<256 {
            let t = String(ByteLevel.unicodeOfByte[b])
            let escaped = t == "\"" ? "\\\"" : t == "\\" ? "\\\\" : t
            vocab.append("\"\(escaped)\":\(b + 3)")
        }
        let members = vocab.joined(separator: ",") + extraVocab
        return Data(#"{"added_tokens":\#(added),"model":{"type":"BPE","merges":[],"vocab":{\#(members)}}}"#.utf8)
    }

    func testWellFormedFixtureLoads() throws {
        let t = try Tokenizer(huggingFaceJSON: tokenizerJSON(added: #"[{"content":"<a>","id":0},{"content":"</a>","id":1}]"#))
        XCTAssertEqual(t.decode(t.encode("x<a>y</a>")), "x<a>y</a>")
    }

    /// Two added tokens with one id ("<answer>" and "</answer>" both 1) loaded, and "<answer>" decoded as "</answer>".
    func testAddedTokensSharingAnIdAreRefused() {
        let json = tokenizerJSON(added: #"[{"content":"<answer>","id":1},{"content":"</answer>","id":1}]"#)
        XCTAssertThrowsError(try Tokenizer(huggingFaceJSON: json)) { error in
            guard case CheckpointError.invalidTokenizer(let m) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(m.contains("id 1"), m)
        }
    }

    /// Two vocab entries with one id, or an added token taking a vocab token's id, are refused too; an added token
    /// repeating its own vocab entry (same id, same content, as Hugging Face files do) is accepted.
    func testVocabIdConflicts() throws {
        XCTAssertThrowsError(try Tokenizer(huggingFaceJSON: tokenizerJSON(extraVocab: #","zz":3"#)))
        XCTAssertThrowsError(try Tokenizer(huggingFaceJSON: tokenizerJSON(added: #"[{"content":"<x>","id":3}]"#)))
        let same = try Tokenizer(huggingFaceJSON: tokenizerJSON(extraVocab: #","<s>":0"#, added: #"[{"content":"<s>","id":0}]"#))
        XCTAssertEqual(same.encode("<s>"), [0])
    }

    /// Negative, fractional and runaway ids indexed or allocated before any check (a negative added id trapped,
    /// 1e12 would allocate a trillion tokens).
    func testIdsOutOfRangeAreRefused() {
        for id in ["-1", "2.5", "1e12", "1e300", "\"7\""] {
            XCTAssertThrowsError(try Tokenizer(huggingFaceJSON: tokenizerJSON(added: #"[{"content":"<x>","id":\#(id)}]"#)), id)
            XCTAssertThrowsError(try Tokenizer(huggingFaceJSON: tokenizerJSON(extraVocab: #","zz":\#(id)"#)), id)
        }
    }

    /// A safetensors file whose header is `json`, with `data` after it.
    private func safetensors(_ json: String, data: [UInt8] = []) -> Data {
        var out = Data()
        var length = UInt64(json.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        return out + Data(json.utf8) + Data(data)
    }

    /// A shape whose element count overflows Int trapped in `elementCount`; an unknown dtype with a huge shape
    /// allocated the whole tensor in `array` before `read` refused the dtype.
    func testHugeShapesAreRefusedBeforeAnyAllocation() throws {
        XCTAssertThrowsError(try SafetensorsFile(bytes: safetensors(
            #"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#)))
        XCTAssertThrowsError(try SafetensorsFile(bytes: safetensors(
            #"{"a":{"dtype":"I8","shape":[3037000500,3037000500],"data_offsets":[0,0]}}"#)))
        XCTAssertThrowsError(try SafetensorsFile(bytes: safetensors(
            #"{"a":{"dtype":"F16","shape":[1e300],"data_offsets":[0,2]}}"#, data: [0, 0])))
        let f = try SafetensorsFile(bytes: safetensors(#"{"a":{"dtype":"I8","shape":[1099511627776],"data_offsets":[0,1]}}"#,
                                                       data: [1]))
        XCTAssertThrowsError(try f.array("a")) { error in
            XCTAssertEqual(error as? CheckpointError, .unsupportedDType(name: "a", dtype: "I8"))
        }
    }

    /// config.json dimensions whose products overflow Int passed validate() and trapped in ParameterLayout.
    func testConfigurationDimensionsAreBounded() throws {
        let base = #""intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"vocab_size":300"#
        let ok = try Qwen2Configuration.decode(json: Data(#"{"hidden_size":8,\#(base)}"#.utf8))
        XCTAssertNoThrow(try ok.validate())
        XCTAssertEqual(ParameterLayout(configuration: ok).entries.first?.shape, [300, 8])
        for hidden in ["4294967296", "8388608"] {
            let c = try Qwen2Configuration.decode(json: Data(#"{"hidden_size":\#(hidden),\#(base)}"#.utf8))
            XCTAssertThrowsError(try c.validate(), hidden)
        }
        var layers = ok
        layers.numHiddenLayers = 1 << 40
        XCTAssertThrowsError(try layers.validate())
    }
}
