// libFuzzer target: the checkpoint loaders' parsers. Input: byte 0 picks safetensors (every tensor read back as
// Float), tokenizer.json (a loaded tokenizer must round-trip text) or config.json (decode and validate); the rest
// is the file's bytes (seeds: Seeds.swift). A loader may only return a value or throw CheckpointError.
import Foundation
import FuzzSupport
@testable import Model

let sample = "Toy Story (1995) <answer> déjà vu 42 ✓\n"

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = bytes(data, size)
    guard let selector = input.first else { return 0 }
    let file = Foundation.Data(input.dropFirst())
    do {
        switch selector % 3 {
        case 0:
            let st = try SafetensorsFile(bytes: file)
            for name in st.names {
                let entry = st.entries[name]!
                guard SafetensorsDType(rawValue: entry.dtypeName) != nil else {
                    do { _ = try st.array(name); preconditionFailure("unknown dtype read") } catch {}
                    continue
                }
                let values = try st.array(name, expectedShape: entry.shape)
                precondition(values.count == entry.elementCount, "tensor \(name) read \(values.count) values")
            }
        case 1:
            let tokenizer = try Tokenizer(huggingFaceJSON: file)
            let ids = tokenizer.encode(sample)
            precondition(ids.allSatisfy { $0 >= 0 && $0 < tokenizer.vocabularySize }, "token id outside the vocabulary")
            precondition(tokenizer.decode(ids) == sample, "decode(encode(s)) != s")
        default:
            let c = try Qwen2Configuration.decode(json: file)
            try c.validate()
            precondition(c.headDim > 0 && c.qkvRows > 0, "validated configuration with empty heads")
        }
    } catch is CheckpointError {
        return 0
    } catch {
        preconditionFailure("non-CheckpointError \(error)")
    }
    return 0
}

if let dir = ProcessInfo.processInfo.environment["R2EC_FUZZ_WRITE_SEEDS"] {
    try! writeSeeds(to: dir)
    exit(0)
}
fuzzMain(fuzzOne)
