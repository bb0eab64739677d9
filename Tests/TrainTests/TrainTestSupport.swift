// Shared fixtures of the Train tests: tiny seeded models with non-trivial norms and biases, temporary directories,
// and running the NumPy training reference (Tests/reference/train_reference.py), failing clearly without numpy.
import Data
import Foundation
import Model
import Tensor
@testable import Train
import XCTest

enum TrainFixtures {
    static func tinyConfiguration(tied: Bool) -> Qwen2Configuration {
        var c = Qwen2Configuration(hiddenSize: 8, intermediateSize: 12, numHiddenLayers: 2, numAttentionHeads: 2,
                                   numKeyValueHeads: 1, vocabSize: 24, rmsNormEps: 1e-6, ropeTheta: 10_000,
                                   tieWordEmbeddings: tied, maxPositionEmbeddings: 128)
        c.modelType = "qwen2"
        return c
    }

    /// The forward-consistency case: a 2-layer d64 model (seed 3) and six ragged sequences of 1-300 tokens (seed 4),
    /// on which the training graph's forward is compared with the inference engine's.
    static func consistencyCase(latentSteps: Int = 0) throws -> (model: Qwen2Model, sequences: [[Int]]) {
        var c = Qwen2Configuration(hiddenSize: 64, intermediateSize: 96, numHiddenLayers: 2, numAttentionHeads: 4,
                                   numKeyValueHeads: 2, vocabSize: 50, tieWordEmbeddings: true, maxPositionEmbeddings: 512)
        c.ropeTheta = 10_000
        c.latentSteps = latentSteps
        let model = try model(c, seed: 3, std: 0.1)
        var rng = SplitMix64(seed: 4)
        return (model, [300, 5, 140, 33, 1, 70].map { n in (0..<n).map { _ in Int(rng.next() % 50) } })
    }

    /// A random model whose norm weights and biases are perturbed too, so that every gradient is exercised.
    static func model(_ c: Qwen2Configuration, seed: UInt64, std: Float = 0.3) throws -> Qwen2Model {
        let model = try Qwen2Model(randomWith: c, seed: seed, std: std)
        var rng = SplitMix64(seed: seed ^ 0xABCD)
        for e in model.parameters.layout.entries where e.shape.count == 1 {
            let t = model.parameters.tensor(e.name)
            for i in 0..<t.count { t[i] = (e.name.hasSuffix("norm.weight") ? 1 : 0) + 0.2 * rng.nextGaussian() }
        }
        return model
    }

    /// A tiny RecBole-format dataset (40 users walking a 25-item catalogue in small steps, 10 interactions each) in
    /// a fresh temporary directory.
    static func toyDataset() throws -> String {
        let dir = NSTemporaryDirectory() + "r2ec-toy-\(getpid())-\(UInt64(Date().timeIntervalSince1970 * 1e6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        var rng = SplitMix64(seed: 3)
        for u in 1...40 {
            var item = Int(rng.next() % 25) + 1
            for t in 0..<10 {   // each user walks the catalogue with small steps: a learnable sequence
                inter += "\(u)\t\(item)\t\(1 + rng.next() % 5)\t\(880_000_000 + u * 100_000 + t * 3_600)\n"
                item = (item + 1 + Int(rng.next() % 3) - 1 + 25) % 25 + 1
            }
        }
        var items = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        for i in 1...25 { items += "\(i)\tFilm number \(i)\t\(1980 + i)\t\(["Drama", "Comedy", "Action"][i % 3])\n" }
        try inter.write(toFile: dir + "/toy.inter", atomically: true, encoding: .utf8)
        try items.write(toFile: dir + "/toy.item", atomically: true, encoding: .utf8)
        return dir
    }

    /// A one-stage rec recipe for the toy dataset: a 1-layer d 16 model, 8 prompts per step at a constant lr 0.05.
    static func toyRecipe(dataset: String) -> TrainConfig {
        var config = TrainConfig()
        config.dataset = dataset
        config.vocabSize = 300
        config.tokenizerUserPrompts = 40
        config.model.hiddenSize = 16
        config.model.intermediateSize = 32
        config.model.numHiddenLayers = 1
        config.model.numAttentionHeads = 2
        config.model.numKeyValueHeads = 1
        config.model.maxPositionEmbeddings = 512
        config.model.initStd = 0.05
        config.calibrate = false
        config.stages = [toyRecStage()]
        return config
    }

    /// The toy recipe's rec stage: 3 steps of 8 prompts at a constant lr 0.05, in-batch negatives only.
    static func toyRecStage() -> RecStage {
        var s = RecStage()
        s.optimizer.steps = 3; s.optimizer.batch = 8; s.optimizer.lr = 0.05; s.optimizer.warmup = 1
        s.optimizer.schedule = "constant"
        s.fullTable = false; s.freshItems = 32
        return s
    }

    /// The token embedding after the toy recipe's rec stage, changed by `configure`, trained on `dataset` into
    /// `dataset`/`name`: what a stage setting must move to show it reached the training step.
    static func embeddingAfterToyRecStage(dataset: String, name: String,
                                          configure: (inout RecStage) -> Void) throws -> [Float] {
        var config = toyRecipe(dataset: dataset)
        var stage = toyRecStage()
        configure(&stage)
        config.stages = [stage]
        let out = dataset + "/" + name
        _ = try Trainer(config: config, out: out, logPath: nil).run()
        // An owning copy: a tensor(_:) view would dangle once the loaded model is freed.
        return try Checkpoint.loadModel(directory: out).parameters.values("model.embed_tokens.weight")
    }

    static func temporaryDirectory(_ name: String) -> String {
        let path = NSTemporaryDirectory() + "r2ec-train-\(name)-\(getpid())"
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static var referenceScript: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("reference/train_reference.py").path
    }

    /// Runs the reference on `checkpoint` with `request`; returns its JSON output, failing (never skipping) when
    /// python3 or numpy is missing.
    static func runReference(checkpoint: String, request: [String: Any], file: StaticString = #filePath,
                             line: UInt = #line) -> [String: Any]? {
        let requestPath = checkpoint + "/request.json", outputPath = checkpoint + "/output.json"
        do {
            try JSONSerialization.data(withJSONObject: request).write(to: URL(fileURLWithPath: requestPath))
        } catch { XCTFail("cannot write the request: \(error)", file: file, line: line); return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", referenceScript, checkpoint, requestPath, outputPath]
        let errors = Pipe()
        process.standardError = errors
        do { try process.run() } catch {
            XCTFail("cannot run python3 for the NumPy reference (\(error)); install python3 and numpy", file: file, line: line)
            return nil
        }
        process.waitUntilExit()
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            let why = process.terminationStatus == 127 ? "python3 is not installed (the reference needs python3 + numpy)"
                : process.terminationStatus == 3 ? "numpy is missing: pip install numpy" : stderr
            XCTFail("NumPy training reference failed (status \(process.terminationStatus)): \(why)", file: file, line: line)
            return nil
        }
        guard let data = FileManager.default.contents(atPath: outputPath),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            XCTFail("the NumPy reference wrote no readable output", file: file, line: line)
            return nil
        }
        return json
    }
}
