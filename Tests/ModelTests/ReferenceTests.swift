// The engine against the independent float64 NumPy reference: forward logits of a ragged batch, recommendation-head
// scores and greedy generations, on tiny random checkpoints (tied and untied heads, GQA 2:1 and 4:1).
import Foundation
import XCTest
@testable import Model
import Tensor

final class ReferenceTests: XCTestCase {
    /// Sequences of different lengths, one longer than the attention query block.
    let ragged: [[Int]] = [[5], [17, 3, 250, 99, 1], Array((0..<40).map { ($0 * 37 + 11) % 300 }),
                           Array((0..<9).map { ($0 * 13 + 7) % 300 })]

    func checkpoint(_ c: Qwen2Configuration, seed: UInt64, name: String) throws -> (Qwen2Model, Tokenizer, String) {
        let model = try Fixtures.randomModel(c, seed: seed)
        let tokenizer = try Fixtures.tokenizer(vocab: c.vocabSize)
        let dir = Fixtures.temporaryDirectory(name)
        try Checkpoint.save(model, tokenizer: tokenizer, directory: dir)
        return (try Checkpoint.loadModel(directory: dir), tokenizer, dir)
    }

    /// The model as trained (its parameters through Tensor's GEMM) and, on CPUs with the kernel, packed for inference
    /// (float32, and bfloat16 where the CPU has it, checked with a looser bound): each must match the reference.
    func variants(_ model: Qwen2Model) -> [(name: String, model: Qwen2Model)] {
        let packed = model.packedForInference()
        var all = [("unpacked", model)] + (packed.isPacked ? [("packed", packed)] : [])
        if PackedMatrix.Precision.bfloat16.isSupported { all.append(("bf16", model.packedForInference(precision: .bfloat16))) }
        return all
    }

    /// Runs `body` under each instruction set this CPU has (Tensor.CPU), so every kernel path meets NumPy.
    func forEachISA(_ body: () throws -> Void) rethrows {
        try CPU.forEachAvailable { isa in
            print("[with the \(isa) kernels]")
            try body()
        }
    }

    func testForwardLogitsOfRaggedBatchMatchReference() throws {
        try forEachISA {
            for (c, name) in [(Fixtures.tinyTied, "tied"), (Fixtures.tinyUntied, "untied")] {
                let (loaded, _, dir) = try checkpoint(c, seed: 7, name: "forward-\(c.tieWordEmbeddings ? "tied" : "untied")")
                let reference = try Fixtures.reference(checkpoint: dir, request: ["forward": ragged])
                let expected = (reference["forward"] as! [Any]).flatDoubles()
                for (variant, model) in variants(loaded) {
                let name = "\(name) \(variant)"
                for schedule in Fixtures.schedules {
                    // The ragged batch has 4 sequences: sequence-parallel units need a batch of at least 4 of them,
                    // row-parallel gets one sequence more than a unit holds.
                    let batch = schedule.name == "row-parallel" ? [ragged[2]] : ragged
                    let profile = PhaseProfile()
                    model.profile = profile
                    let output = Fixtures.withSchedule(schedule) { model.forward(batch, rows: .all, logits: true) }
                    model.profile = nil
                    let phase = ["kernel by kernel": "o + norm + mlp", "row-parallel": "row-parallel layers",
                                 "sequence-parallel": "sequence-parallel layers",
                                 "sequence-split step": "sequence-parallel layers"][schedule.name]!
                    XCTAssertTrue(profile.order.contains(phase), "\(schedule.name) ran \(profile.order)")
                    if schedule.name == "row-parallel" {
                        let (diff, _) = Fixtures.maxDifference(output.logits!.toArray(), Array(expected[(6 * c.vocabSize)..<(46 * c.vocabSize)]))
                        print("forward logits (\(name), \(schedule.name)): max |diff| \(diff)")
                        XCTAssertLessThan(diff, variant == "bf16" ? 0.4 : 2e-3, name)
                        continue
                    }
                    XCTAssertEqual(output.rowStart, [0, 1, 6, 46, 55])
                    let (diff, scale) = Fixtures.maxDifference(output.logits!.toArray(), expected)
                    print("forward logits (\(name), \(schedule.name)): max |diff| \(diff) over max |logit| \(scale)")
                    // bfloat16 rounds weights and activations to 8 mantissa bits; through these fixtures' large weights
                    // logits of magnitude ~7.5 move by ~0.2 (measured; a wrong kernel moves them by units).
                    XCTAssertLessThan(diff, (variant == "bf16" ? 5e-2 : 2e-4) * max(1, scale), name)
                }
                }
            }
        }
    }

    func testRecommendationScoresMatchReference() throws {
        try forEachISA {
            let (loaded, _, dir) = try checkpoint(Fixtures.tinyTied, seed: 11, name: "scores")
            for (variant, model) in variants(loaded) {
            let users = Array(ragged.prefix(3)), items = [[1, 2, 3], [200, 100], Array(0..<25), [299]]
            let reference = try Fixtures.reference(checkpoint: dir, request: [
                "scores": ["users": users, "items": items, "tau": 0.02], "readout": users])
            let table = model.readout(items)
            let user = model.readout(users)
            var scores = [Float](repeating: 0, count: users.count * items.count)
            GEMM.forwardNaive(m: users.count, n: items.count, k: 32, a: user.pointer, b: table.pointer, transB: true,
                              c: &scores, alpha: 1 / 0.02)
            let (diff, scale) = Fixtures.maxDifference(scores, (reference["scores"] as! [Any]).flatDoubles())
            print("scores: max |diff| \(diff) over max |score| \(scale)")
            XCTAssertLessThan(diff, variant == "bf16" ? 0.5 : 1e-3, variant)   // scores are cosines / 0.02
            let (readoutDiff, _) = Fixtures.maxDifference(user.toArray(), (reference["readout"] as! [Any]).flatDoubles())
            XCTAssertLessThan(readoutDiff, variant == "bf16" ? 1e-2 : 1e-5, variant)
            }
        }
    }

    func testGreedyGenerationsMatchReference() throws {
        try forEachISA {
            for (c, name) in [(Fixtures.tinyTied, "tied"), (Fixtures.tinyUntied, "untied"), (Fixtures.tinyHead16, "head16")] {
                let (loaded, tokenizer, dir) = try checkpoint(c, seed: 3, name: "generate-\(name)")
                for (variant, model) in variants(loaded) where variant != "bf16" {   // bf16 may flip near-ties
                let name = "\(name) \(variant)"
                let prompts = ragged
                let limit = 24
                let reference = try Fixtures.reference(checkpoint: dir, request: [
                    "generate": ["prompts": prompts, "max_new_tokens": limit, "stop_text": "<answer>"]])
                let expected = (reference["generate"] as! [[Any]]).map { $0.map { ($0 as! NSNumber).intValue } }
                let generation = Generation(model: model, tokenizer: tokenizer, prompts: prompts,
                                            settings: Array(repeating: .greedy, count: prompts.count), maxNewTokens: limit)
                let chains = generation.run()
                XCTAssertEqual(chains.map(\.tokens), expected, name)
                for chain in chains {
                    XCTAssertTrue(tokenizer.decode(chain.tokens).hasSuffix("<answer>"))
                    XCTAssertNotNil(chain.readout)
                }
                }
            }
        }
    }
}
