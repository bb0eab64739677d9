// The training step against an independent float64 NumPy implementation: every tensor's gradient (the NumPy side
// takes central finite differences of its own forward, so every backward pass here - embedding, RMSNorm, RoPE,
// grouped-query causal attention over a ragged batch with two query blocks, SwiGLU, final norm, tied or untied LM
// head, L2 read-out and cosine/tau scoring with fixed columns and masks, and dropout with the graph's own masks - is
// checked), then the losses of a few AdamW steps with clipping, weight decay and warm-up.
import Data
import Foundation
import Model
import Tensor
@testable import Train
import XCTest

final class GradientReferenceTests: XCTestCase {
    struct Case {
        var sequences: [[Int]]
        var lm: (sequence: [Int], position: [Int], target: [Int], weight: [Float])
        var users: [Int], items: [Int], targets: [Int], userWeights: [Float]
        var tau: Float
        var fixed: [[Float]]
        var masked: [[Int]]
        var offsets: [Float]
    }

    static func makeCase(vocab: Int, hidden: Int) -> Case {
        var rng = SplitMix64(seed: 7)
        let lengths = [6, 70, 4, 9, 3]   // 70 > one attention block of 64 queries
        let sequences = lengths.map { n in (0..<n).map { _ in Int(rng.next() % UInt64(vocab)) } }
        var lm: (sequence: [Int], position: [Int], target: [Int], weight: [Float]) = ([], [], [], [])
        for s in [0, 1] {
            for p in stride(from: 0, to: sequences[s].count - 1, by: s == 1 ? 9 : 1) {
                lm.sequence.append(s); lm.position.append(p); lm.target.append(sequences[s][p + 1])
                lm.weight.append(s == 1 ? -0.05 : 0.2)   // a negative weight, as policy-gradient advantages give
            }
        }
        var fixed: [[Float]] = []
        for _ in 0..<3 {
            var v = (0..<hidden).map { _ in rng.nextGaussian() }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            v = v.map { $0 / norm }
            fixed.append(v)
        }
        return Case(sequences: sequences, lm: lm, users: [0, 1, 4], items: [2, 3], targets: [0, 1, 0],
                    userWeights: [0.5, 0.3, 0.2], tau: 0.2, fixed: fixed, masked: [[1, 2], [0, 4], [3]],
                    offsets: [0.3, -0.2, 0, 0.5, -1])
    }

    /// One loss + gradient evaluation on the graph (gradients zeroed first).
    static func lossAndGradients(_ graph: TrainingGraph, _ k: Case) -> Double {
        graph.zeroGradients()
        graph.forward(k.sequences)
        let rows = zip(k.lm.sequence, k.lm.position).map { graph.row(sequence: $0, token: $1) }
        var loss = graph.tokenLoss(rows: rows, targets: k.lm.target, weights: k.lm.weight)
        let fixed = k.fixed.flatMap { $0 }
        loss += fixed.withUnsafeBufferPointer { f in
            var batch = ContrastiveBatch(
                userRows: k.users.map { graph.lastRow(sequence: $0) }, itemRows: k.items.map { graph.lastRow(sequence: $0) },
                targets: k.targets, weights: k.userWeights, tau: k.tau, fixed: f.baseAddress, fixedCount: k.fixed.count,
                masked: k.masked)
            batch.columnOffsets = k.offsets
            return graph.contrastiveLoss(batch).loss
        }
        graph.backward()
        return loss
    }

    func check(tied: Bool, dropout: Float = 0) throws {
        let c = TrainFixtures.tinyConfiguration(tied: tied)
        let model = try TrainFixtures.model(c, seed: tied ? 11 : 12)
        let dir = TrainFixtures.temporaryDirectory((tied ? "tied" : "untied") + (dropout > 0 ? "-dropout" : ""))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Checkpoint.save(model, tokenizer: nil, directory: dir)
        let k = Self.makeCase(vocab: c.vocabSize, hidden: c.hiddenSize)
        // The untied and dropout cases check their gradients and one step (finite differences cost).
        let steps = tied && dropout == 0 ? 3 : 1
        var settings = AdamWSettings()
        settings.weightDecay = 0.1
        settings.clipNorm = 1.0
        let schedule = LearningRateSchedule(peak: 0.01, warmup: 2, total: steps)
        let graph = TrainingGraph(model: model)
        graph.dropout = dropout
        graph.dropoutSeed = 99   // fixed: every forward of the test draws the same masks, as NumPy applies them
        var request: [String: Any] = [
            "sequences": k.sequences,
            "lm": ["sequence": k.lm.sequence, "position": k.lm.position, "target": k.lm.target,
                   "weight": k.lm.weight.map(Double.init)],
            "rec": ["users": k.users, "items": k.items, "targets": k.targets, "weights": k.userWeights.map(Double.init),
                    "tau": Double(k.tau), "fixed": k.fixed.map { $0.map(Double.init) }, "masked": k.masked,
                    "offsets": k.offsets.map(Double.init)],
            "steps": steps,
            "adamw": ["lr": Double(schedule.peak), "warmup": schedule.warmup, "beta1": Double(settings.beta1),
                      "beta2": Double(settings.beta2), "eps": Double(settings.epsilon),
                      "weight_decay": Double(settings.weightDecay), "clip": Double(settings.clipNorm)],
        ]
        if dropout > 0 {
            // The masks of the graph's forward, handed to NumPy as fixed multipliers of its own forward.
            graph.forward(k.sequences)
            let count = graph.rowCount * c.hiddenSize
            func values(_ slab: Slab) -> [Double] { (0..<count).map { Double(slab.data[$0]) } }
            let embedding = values(graph.embeddingMask)
            let dropped = embedding.filter { $0 == 0 }.count
            XCTAssertGreaterThan(dropped, count / 5, "about 30% of the mask should be 0")
            XCTAssertLessThan(dropped, count * 2 / 5)
            request["dropout"] = ["embedding": embedding, "attention": graph.layers.map { values($0.attentionMask) },
                                  "mlp": graph.layers.map { values($0.mlpMask) }]
        }
        guard let reference = TrainFixtures.runReference(checkpoint: dir, request: request) else { return }
        let referenceLosses = reference["losses"] as! [Double]
        let referenceGradients = reference["gradients"] as! [String: [Double]]

        let optimizer = AdamW(layout: model.parameters.layout, settings: settings)
        var losses: [Double] = []
        for step in 0..<steps {
            losses.append(Self.lossAndGradients(graph, k))
            if step == 0 {
                for e in model.parameters.layout.entries {
                    guard let expected = referenceGradients[e.name] else { XCTFail("reference lacks \(e.name)"); continue }
                    let got = graph.gradients.tensor(e.name)
                    let scale = max(expected.map(abs).max() ?? 0, 1e-3)
                    var worst = 0.0
                    for i in 0..<e.count { worst = max(worst, abs(Double(got[i]) - expected[i])) }
                    print(String(format: "%@ gradient %-44@ max |diff| %.2e (max |g| %.2e)", tied ? "tied  " : "untied",
                                 e.name, worst, scale))
                    XCTAssertLessThan(worst / scale, 2e-3, "\(e.name): gradient differs from finite differences")
                }
            }
            optimizer.update(parameters: model.parameters, gradients: graph.gradients, lr: schedule.rate(step))
        }
        graph.zeroGradients()
        graph.forward(k.sequences)
        losses.append(Self.lossAndGradients(graph, k))
        print("losses swift \(losses)\nlosses numpy \(referenceLosses)")
        XCTAssertEqual(losses.count, referenceLosses.count)
        for (a, b) in zip(losses, referenceLosses) {
            XCTAssertEqual(a, b, accuracy: 1e-4 * max(1, abs(b)), "loss after AdamW steps differs from NumPy")
        }
    }

    func testDropoutMatchesNumPy() throws { try check(tied: true, dropout: 0.3) }

    /// Under every instruction set this CPU has: the training GEMMs (forward, A^T B and A B^T of the backward) run
    /// on the project's AVX-512 or AVX2 kernels, or on OpenBLAS for the portable path.
    func testTiedHeadMatchesNumPy() throws {
        try CPU.forEachAvailable { isa in
            print("gradients with the \(isa) kernels")
            try check(tied: true)
        }
    }
    func testUntiedHeadMatchesNumPy() throws { try check(tied: false) }
}
