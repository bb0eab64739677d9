// What a checkpoint directory may make the loader do: config.json is checked against the weights' headers and a
// memory budget before anything is allocated (errors name the field and the sizes), and every file it reads lies
// inside the directory (a shard index naming ../.., an absolute path or a symlink out is refused; so is a device).
import Foundation
import XCTest
@testable import Model

final class CheckpointLimitsTests: XCTestCase {
    func checkpoint(_ name: String) throws -> (String, Qwen2Model) {
        let dir = Fixtures.temporaryDirectory("limits-\(name)")
        let model = try Fixtures.randomModel(Fixtures.tinyTied, seed: 4)
        try Checkpoint.save(model, tokenizer: try Fixtures.tokenizer(), directory: dir)
        return (dir, model)
    }

    func editConfig(_ dir: String, _ edit: (inout Qwen2Configuration) -> Void) throws {
        var c = try Checkpoint.loadConfiguration(directory: dir)
        edit(&c)
        try c.jsonData().write(to: URL(fileURLWithPath: dir + "/config.json"))
    }

    func mismatch(_ dir: String, file: StaticString = #filePath, line: UInt = #line) -> (field: String, detail: String)? {
        do {
            _ = try Checkpoint.loadModel(directory: dir)
            XCTFail("loaded", file: file, line: line)
        } catch CheckpointError.configurationMismatch(let field, let detail) {
            return (field, detail)
        } catch {
            XCTFail("\(error)", file: file, line: line)
        }
        return nil
    }

    func testEverySizeFieldIsCheckedAgainstTheWeights() throws {
        let (dir, _) = try checkpoint("fields")
        let cases: [(String, (inout Qwen2Configuration) -> Void, String)] = [
            ("num_hidden_layers", { $0.numHiddenLayers = 1024 }, "it is 1024; model.safetensors holds 2 layers"),
            ("num_hidden_layers", { $0.numHiddenLayers = 1 }, "it is 1; model.safetensors holds 2 layers"),
            ("intermediate_size", { $0.intermediateSize = 4_194_304 }, "[4194304, 32]"),
            ("vocab_size", { $0.vocabSize = 4_194_304 }, "[4194304, 32]"),
            ("vocab_size, hidden_size", { $0.vocabSize = 65_536; $0.hiddenSize = 4096 }, "holds [300, 32]"),
            ("num_key_value_heads", { $0.numKeyValueHeads = 4 }, "model.layers.0.self_attn.k_proj.weight [32, 32]"),
        ]
        for (field, edit, detail) in cases {
            try Checkpoint.save(try Fixtures.randomModel(Fixtures.tinyTied, seed: 4), tokenizer: nil, directory: dir)
            try editConfig(dir, edit)
            guard let e = mismatch(dir) else { continue }
            XCTAssertEqual(e.field, field)
            XCTAssertTrue(e.detail.contains(detail), "\(field): \(e.detail)")
        }
    }

    /// The configs, whose described model would take from 1.2 GB to petabytes: refused with the process's
    /// peak RSS unchanged, i.e. before anything of that size was allocated (it used to be sized and zero-filled
    /// from config.json first).
    func testRefusalAllocatesNothing() throws {
        let (dir, _) = try checkpoint("rss")
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let before = usage.ru_maxrss
        try editConfig(dir) { $0.hiddenSize = 4096; $0.intermediateSize = 4_194_304; $0.vocabSize = 4_194_304
            $0.numAttentionHeads = 32; $0.numKeyValueHeads = 32 }
        XCTAssertEqual(mismatch(dir)?.field, "vocab_size, hidden_size")
        try editConfig(dir) { $0.vocabSize = 65_536; $0.intermediateSize = 64 }
        XCTAssertEqual(mismatch(dir)?.field, "vocab_size, hidden_size")
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        XCTAssertLessThan((usage.ru_maxrss - before) * 1024, 64 << 20)
    }

    func testMemoryBudget() throws {
        let (dir, model) = try checkpoint("budget")
        let needed = model.configuration.inferenceMemory(packed: nil).total
        XCTAssertEqual(model.configuration.inferenceMemory(packed: nil).parts.map(\.what), ["parameters", "rotary table"])
        // The estimate counts the allocation (parameters, padded per group) within a few floats per tensor group.
        let parameterBytes = model.configuration.inferenceMemory(packed: nil).parts[0].bytes
        XCTAssertEqual(Double(parameterBytes), Double(model.parameters.count * 4), accuracy: 64.0 * 16 * 4)
        // The packed copies are counted with the kernel's own size formula: exactly what packing allocates.
        let packed = try Checkpoint.loadModel(directory: dir, packed: .float32)
        if packed.isPacked {
            XCTAssertEqual(model.configuration.inferenceMemory(packed: .float32).parts.first { $0.what == "packed projections" }?.bytes,
                           packed.packedByteCount)
        }
        XCTAssertThrowsError(try Checkpoint.loadModel(directory: dir, budget: MemoryBudget(bytes: needed - 1, source: "test"))) {
            guard case .overBudget(let m)? = $0 as? CheckpointError else { return XCTFail("\($0)") }
            XCTAssertTrue(m.contains("parameters") && m.contains("rotary table") && m.contains("(test)"), m)
        }
        XCTAssertNoThrow(try Checkpoint.loadModel(directory: dir, budget: MemoryBudget(bytes: needed, source: "test")))
        XCTAssertThrowsError(try Checkpoint.loadModel(directory: dir, budget: MemoryBudget(bytes: needed, source: "test"),
                                                      alongside: MemoryUsage([("item table", 1)])))
        // An enormous rotary table alone (positions are not in the weights) is caught by the budget too.
        try editConfig(dir) { $0.maxPositionEmbeddings = 1 << 24 }
        XCTAssertThrowsError(try Checkpoint.loadModel(directory: dir, budget: MemoryBudget(bytes: 256 << 20, source: "test"))) {
            XCTAssertTrue("\($0)".contains("rotary table 512.0 MiB"), "\($0)")
        }
    }

    func testBudgetParsing() {
        XCTAssertEqual(MemoryBudget.parse("8G", source: "x")?.bytes, 8 << 30)
        XCTAssertEqual(MemoryBudget.parse("1.5GiB", source: "x")?.bytes, 3 << 29)
        XCTAssertEqual(MemoryBudget.parse("512m", source: "x")?.bytes, 512 << 20)
        XCTAssertEqual(MemoryBudget.parse("1000", source: "x")?.bytes, 1000)
        for bad in ["", "-1G", "0", "G", "1X", "nan", "1e30T"] { XCTAssertNil(MemoryBudget.parse(bad, source: "x"), bad) }
        XCTAssertGreaterThan(MemoryBudget.available().bytes, 0)
    }

    /// A sharded checkpoint loads; an index naming a file outside the directory never opens it, whatever the
    /// file holds (here a valid copy of the weights: before, it loaded).
    func testShardIndexCannotNameFilesOutsideTheCheckpoint() throws {
        let (dir, model) = try checkpoint("shards")
        let outside = Fixtures.temporaryDirectory("limits-outside")
        try FileManager.default.moveItem(atPath: dir + "/model.safetensors", toPath: dir + "/shard-1.safetensors")
        try FileManager.default.copyItem(atPath: dir + "/shard-1.safetensors", toPath: outside + "/stolen.safetensors")
        let names = try SafetensorsFile(path: dir + "/shard-1.safetensors").names
        func index(_ shard: String) throws {
            let map = Dictionary(uniqueKeysWithValues: names.map { ($0, shard) })
            try JSONSerialization.data(withJSONObject: ["weight_map": map])
                .write(to: URL(fileURLWithPath: dir + "/model.safetensors.index.json"))
        }
        try index("shard-1.safetensors")
        XCTAssertEqual(Checkpoint.weightsHash(try Checkpoint.loadModel(directory: dir)), Checkpoint.weightsHash(model))
        let relative = "../" + (outside as NSString).lastPathComponent + "/stolen.safetensors"
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.safetensors", withDestinationPath: outside + "/stolen.safetensors")
        try FileManager.default.createSymbolicLink(atPath: dir + "/zero.safetensors", withDestinationPath: "/dev/zero")
        for shard in [relative, outside + "/stolen.safetensors", "link.safetensors", "../../etc/passwd", "/etc/passwd",
                      "zero.safetensors", "sub/../shard-1.safetensors"] {
            try index(shard)
            XCTAssertThrowsError(try Checkpoint.loadModel(directory: dir), shard) {
                guard case .unsafePath(let m)? = $0 as? CheckpointError else { return XCTFail("\(shard): \($0)") }
                print("\(shard): \(m)")
            }
        }
    }

    func testCheckpointFilesMustBeRegularFilesInside() throws {
        let (dir, _) = try checkpoint("files")
        let outside = Fixtures.temporaryDirectory("limits-outside-tokenizer")
        try FileManager.default.moveItem(atPath: dir + "/tokenizer.json", toPath: outside + "/tokenizer.json")
        try FileManager.default.createSymbolicLink(atPath: dir + "/tokenizer.json", withDestinationPath: outside + "/tokenizer.json")
        XCTAssertThrowsError(try Checkpoint.loadTokenizer(directory: dir)) {
            guard case .unsafePath? = $0 as? CheckpointError else { return XCTFail("\($0)") }
        }
        // A symlink that stays inside is fine, and so is a directory reached through a symlink.
        try FileManager.default.removeItem(atPath: dir + "/tokenizer.json")
        try FileManager.default.moveItem(atPath: outside + "/tokenizer.json", toPath: dir + "/tokenizer-real.json")
        try FileManager.default.createSymbolicLink(atPath: dir + "/tokenizer.json", withDestinationPath: "tokenizer-real.json")
        XCTAssertNoThrow(try Checkpoint.loadTokenizer(directory: dir))
        let alias = outside + "/alias"
        try FileManager.default.createSymbolicLink(atPath: alias, withDestinationPath: dir)
        XCTAssertNoThrow(try Checkpoint.loadModel(directory: alias))
    }
}
