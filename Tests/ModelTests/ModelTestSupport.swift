// Shared fixtures of the Model tests: tiny random Qwen2 models written as checkpoints, a tiny trained tokenizer,
// and the bridge to the independent float64 NumPy reference (Tests/reference/qwen2_reference.py).
import Data
import Foundation
import XCTest
@testable import Model
import Tensor

enum Fixtures {
    /// The forward pass's four schedules: kernel by kernel (decode-sized batches), the row-parallel pipeline
    /// (few long sequences), sequence-parallel units (many sequences) and the sequence-split step (a decode step of
    /// many sequences: one group of sequences per thread), forced on small batches by thresholds.
    static let schedules: [(name: String, pipelineFrom: Int, chunk: Int, stepSplitFrom: Int)] = [
        ("kernel by kernel", 10_000, 256, 10_000), ("row-parallel", 1, 4, 10_000), ("sequence-parallel", 1, 4, 10_000),
        ("sequence-split step", 10_000, 256, 1)]

    static func withSchedule<T>(_ schedule: (name: String, pipelineFrom: Int, chunk: Int, stepSplitFrom: Int),
                                _ body: () throws -> T) rethrows -> T {
        let saved = (Qwen2Model.pipelineMinimumRows, Qwen2Model.rowParallelMinimumRows, Qwen2Model.pipelineChunk,
                     Qwen2Model.stepSplitMinimumRows)
        Qwen2Model.pipelineMinimumRows = schedule.pipelineFrom
        Qwen2Model.rowParallelMinimumRows = schedule.pipelineFrom
        Qwen2Model.pipelineChunk = schedule.chunk
        Qwen2Model.stepSplitMinimumRows = schedule.stepSplitFrom
        defer {
            (Qwen2Model.pipelineMinimumRows, Qwen2Model.rowParallelMinimumRows, Qwen2Model.pipelineChunk,
             Qwen2Model.stepSplitMinimumRows) = saved
        }
        return try body()
    }

    static let tinyTied = Qwen2Configuration(hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2,
                                             numAttentionHeads: 4, numKeyValueHeads: 2, vocabSize: 300,
                                             rmsNormEps: 1e-6, ropeTheta: 10_000, tieWordEmbeddings: true,
                                             maxPositionEmbeddings: 256)
    /// Heads of 16 floats: decode steps take the SIMD attention path (it needs headDim % 16 == 0).
    static var tinyHead16: Qwen2Configuration {
        var c = tinyTied; c.hiddenSize = 64; c.intermediateSize = 96; return c
    }
    static var tinyUntied: Qwen2Configuration {
        var c = tinyTied; c.tieWordEmbeddings = false; c.ropeTheta = 1_000_000; c.numKeyValueHeads = 1; return c
    }

    /// Random weights big enough that logits are well separated (greedy decoding has no near-ties): matrices
    /// N(0, 0.3), biases N(0, 0.2), norm weights 1 + N(0, 0.2).
    static func randomModel(_ c: Qwen2Configuration, seed: UInt64) throws -> Qwen2Model {
        let buffer = ParameterBuffer(layout: ParameterLayout(configuration: c))
        var rng = SplitMix64(seed: seed)
        for e in buffer.layout.entries {
            let t = buffer.tensor(e.name)
            for i in 0..<t.count {
                let g = rng.nextGaussian()
                t[i] = e.name.hasSuffix("norm.weight") ? 1 + 0.2 * g : e.name.hasSuffix(".bias") ? 0.2 * g : 0.3 * g
            }
        }
        return try Qwen2Model(configuration: c, parameters: buffer)
    }

    static let corpus = [
        "Analyse the history, then name the next item inside <answer></answer>.",
        "3d 4.5h ago: [Toy Story (1995)] (5)\n12.0min ago: [Heat (1995)] (4)",
        "Summarise the item.\nTitle: Heat (1995)\nAverage rating: 3.9\nRaters: 120\nGenres: Action, Crime, Thriller",
        "the the the then there these those other mother brother 1995 1996 1997 rating rating ratings",
    ]

    /// A byte-level BPE tokenizer with exactly `vocab` tokens (specials, 256 bytes, merges).
    static func tokenizer(vocab: Int = 300) throws -> Tokenizer {
        let t = try TokenizerTrainer.train(texts: Array(repeating: corpus.joined(separator: "\n"), count: 3),
                                           vocabularySize: vocab, minFrequency: 1)
        precondition(t.vocabularySize == vocab, "corpus too small for \(vocab) tokens: \(t.vocabularySize)")
        return t
    }

    static func temporaryDirectory(_ name: String) -> String {
        let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("r2ec-model-tests-\(name)-\(getpid())")
        try? FileManager.default.removeItem(atPath: path)
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static var referenceScript: String {
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        return tests.appendingPathComponent("reference/qwen2_reference.py").path
    }

    /// Runs the NumPy reference on `checkpoint` with `request`; fails the test (never skips) when python3 or numpy
    /// is missing.
    static func reference(checkpoint: String, request: [String: Any], file: StaticString = #filePath,
                          line: UInt = #line) throws -> [String: Any] {
        let requestPath = (checkpoint as NSString).appendingPathComponent("request.json")
        let outputPath = (checkpoint as NSString).appendingPathComponent("reference.json")
        try JSONSerialization.data(withJSONObject: request).write(to: URL(fileURLWithPath: requestPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", referenceScript, checkpoint, requestPath, outputPath]
        let errors = Pipe()
        process.standardError = errors
        do { try process.run() } catch {
            XCTFail("cannot run python3 for the NumPy reference (\(error)); install python3 and numpy", file: file, line: line)
            throw error
        }
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = process.terminationStatus == 127 ? "python3 is not installed (needed with numpy by the reference tests)"
                : process.terminationStatus == 3 ? "numpy is missing: pip install numpy (the reference tests need it)"
                : "the NumPy reference failed (status \(process.terminationStatus)): \(stderr)"
            XCTFail(message, file: file, line: line)
            throw CheckpointError.missingFile("reference output")
        }
        let data = try Foundation.Data(contentsOf: URL(fileURLWithPath: outputPath))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    /// Largest |a - b| and the largest |b| (to report relative error).
    static func maxDifference(_ a: [Float], _ b: [Double]) -> (abs: Double, scale: Double) {
        precondition(a.count == b.count, "\(a.count) vs \(b.count) values")
        var worst = 0.0, scale = 0.0
        for i in a.indices { worst = max(worst, abs(Double(a[i]) - b[i])); scale = max(scale, abs(b[i])) }
        return (worst, scale)
    }
}

extension Array where Element == Any {
    /// Flattens nested JSON number arrays into Doubles.
    func flatDoubles() -> [Double] {
        var out: [Double] = []
        for e in self {
            if let n = e as? NSNumber { out.append(n.doubleValue) } else if let a = e as? [Any] { out += a.flatDoubles() }
        }
        return out
    }
}
