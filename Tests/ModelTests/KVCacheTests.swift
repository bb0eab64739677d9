// KV-cache decoding equals full recomputation: prefill then one token per step, ragged chunks across a batch of
// caches, trimming and copying.
import XCTest
@testable import Model
import Tensor

final class KVCacheTests: XCTestCase {
    func logitsRow(_ output: ForwardOutput, _ row: Int, _ vocab: Int) -> [Float] {
        Array(UnsafeBufferPointer(start: output.logits!.data + row * vocab, count: vocab))
    }

    func maxDiff(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? 0 }

    func testIncrementalDecodingEqualsFullRecomputation() throws {
        try CPU.forEachAvailable { isa in
            print("incremental decoding with the \(isa) kernels")
            for schedule in Fixtures.schedules { try Fixtures.withSchedule(schedule) { try incrementalDecoding() } }
        }
    }

    func incrementalDecoding() throws {
        try incrementalDecoding(Fixtures.tinyTied)
        try incrementalDecoding(Fixtures.tinyHead16)
    }

    func incrementalDecoding(_ c: Qwen2Configuration) throws {
        let unpacked = try Fixtures.randomModel(c, seed: 5)
        // Also through the packed-weight kernel, when this CPU has it.
        let packed = unpacked.packedForInference()
        for model in packed.isPacked ? [unpacked, packed] : [unpacked] {
            try incrementalDecoding(c, model, precision: .float32, tolerance: 1e-4)
            // Float16 keys/values round each element by up to 2^-11 relative; with these fixtures' large weights
            // (keys of a few units, logits up to ~7.5) that moves logits by 0.01-0.02 (a bug moves them by units).
            try incrementalDecoding(c, model, precision: .float16, tolerance: 5e-2)
        }
    }

    func incrementalDecoding(_ c: Qwen2Configuration, _ model: Qwen2Model, precision: KVPrecision,
                             tolerance: Float) throws {
        let full: [[Int]] = [Array((0..<45).map { ($0 * 7 + 2) % 300 }), Array((0..<12).map { ($0 * 29 + 1) % 300 }),
                             Array((0..<33).map { ($0 * 3 + 100) % 300 }), [9, 8, 7, 6, 5, 4, 3]]
        let reference = model.forward(full, rows: .all)
        // Each sequence arrives in different chunks: a prefill, then single tokens and small chunks, batched.
        let chunkPlans: [[Int]] = [[20, 1, 1, 5, 1, 17], [1, 1, 1, 9], [32, 1], [3, 4]]
        let caches = full.map { _ in KVCache(configuration: c, reservingCapacity: 2, precision: precision) }  // forces growth
        var cursor = [0, 0, 0, 0], step = [0, 0, 0, 0]
        var worst: Float = 0
        while cursor.indices.contains(where: { cursor[$0] < full[$0].count }) {
            let active = cursor.indices.filter { cursor[$0] < full[$0].count }
            let chunks = active.map { s -> [Int] in
                let n = chunkPlans[s][step[s]]
                return Array(full[s][cursor[s]..<(cursor[s] + n)])
            }
            let out = model.forward(chunks, caches: active.map { caches[$0] }, rows: .all)
            for (r, s) in active.enumerated() {
                for i in 0..<chunks[r].count {
                    let got = logitsRow(out, out.rowStart[r] + i, c.vocabSize)
                    let want = logitsRow(reference, reference.rowStart[s] + cursor[s] + i, c.vocabSize)
                    worst = max(worst, maxDiff(got, want))
                }
                cursor[s] += chunks[r].count; step[s] += 1
                XCTAssertEqual(caches[s].offset, cursor[s])
            }
        }
        print("KV cache (\(precision)) vs full recomputation: max |diff| \(worst)")
        XCTAssertLessThan(worst, tolerance, "\(precision)")
    }

    func testTrimAndCopyReuseAPrefix() throws {
        for (precision, tolerance) in [(KVPrecision.float32, Float(1e-4)), (.float16, 5e-2)] {
            let c = Fixtures.tinyUntied
            let model = try Fixtures.randomModel(c, seed: 9)
            let prefix = [4, 8, 15, 16, 23, 42]
            let cache = KVCache(configuration: c, precision: precision)
            _ = model.forward([prefix], caches: [cache])
            let fork = cache.copy()
            XCTAssertEqual(fork.precision, precision)
            let a = model.forward([[100]], caches: [cache], rows: .last)
            XCTAssertEqual(cache.offset, 7)
            cache.trim(to: 6)
            let b = model.forward([[200]], caches: [cache], rows: .last)
            let c2 = model.forward([[200]], caches: [fork], rows: .last)
            let fullA = model.forward([prefix + [100]], rows: .last)
            let fullB = model.forward([prefix + [200]], rows: .last)
            XCTAssertLessThan(maxDiff(a.logits!.toArray(), fullA.logits!.toArray()), tolerance, "\(precision)")
            XCTAssertLessThan(maxDiff(b.logits!.toArray(), fullB.logits!.toArray()), tolerance, "\(precision)")
            XCTAssertLessThan(maxDiff(c2.logits!.toArray(), fullB.logits!.toArray()), tolerance, "\(precision)")
        }
    }

    func testBatchedGenerationEqualsOneChainAtATime() throws {
        let model = try Fixtures.randomModel(Fixtures.tinyTied, seed: 21)
        let tokenizer = try Fixtures.tokenizer()
        let prompts = [[1, 2, 3, 4], [250], Array(10..<50)]
        let settings = [SamplingSettings(temperature: 1.0, topK: 50, topP: 0.9, seed: 1), .greedy,
                        SamplingSettings(temperature: 0.7, seed: 2)]
        let batched = Generation(model: model, tokenizer: tokenizer, prompts: prompts, settings: settings,
                                 maxNewTokens: 16).run()
        for i in prompts.indices {
            let single = Generation(model: model, tokenizer: tokenizer, prompts: [prompts[i]], settings: [settings[i]],
                                    maxNewTokens: 16).run()[0]
            XCTAssertEqual(single.tokens, batched[i].tokens)
            XCTAssertLessThan(maxDiff(single.readout!, batched[i].readout!), 1e-4)
        }
    }

    func testChainsJoiningMidwayAndCancelledChainsLeaveOthersUnchanged() throws {
        let model = try Fixtures.randomModel(Fixtures.tinyHead16, seed: 12)
        let tokenizer = try Fixtures.tokenizer()
        let prompts = [[3, 1, 4, 1, 5], [9, 2, 6], Array(100..<130)]
        let alone = prompts.map {
            Generation(model: model, tokenizer: tokenizer, prompts: [$0], settings: [.greedy], maxNewTokens: 12).run()[0]
        }
        let generation = Generation(model: model, tokenizer: tokenizer, prompts: [prompts[0]], settings: [.greedy],
                                    maxNewTokens: 12)
        generation.step(); generation.step()
        let late = generation.add(prompt: prompts[1], settings: .greedy)   // prefilled while chain 0 decodes
        let doomed = generation.add(prompt: [7, 7, 7], settings: SamplingSettings(temperature: 1, seed: 3))
        generation.step()
        generation.cancel(doomed)
        generation.step()
        let later = generation.add(prompt: prompts[2], settings: .greedy)
        let chains = generation.run()
        XCTAssertTrue(chains[doomed].cancelled)
        XCTAssertNil(chains[doomed].readout)
        for (i, index) in [0, late, later].enumerated() {
            XCTAssertEqual(chains[index].tokens, alone[i].tokens)
            XCTAssertLessThan(maxDiff(chains[index].readout!, alone[i].readout!), 1e-4)
        }
    }

    func testAGroupSharesOnePrefillAndEqualsSeparateChains() throws {
        let model = try Fixtures.randomModel(Fixtures.tinyHead16, seed: 13)
        let tokenizer = try Fixtures.tokenizer()
        let prompt = Array(40..<75)
        let settings = [SamplingSettings.greedy, SamplingSettings(temperature: 1.2, topK: 40, seed: 5),
                        SamplingSettings(temperature: 0.8, topP: 0.9, seed: 6)]
        let generation = Generation(model: model, tokenizer: tokenizer, maxNewTokens: 14)
        let other = generation.add(prompt: [1, 2, 3], settings: .greedy)
        let group = generation.addGroup(prompt: prompt, settings: settings)
        generation.step()
        // The first pass fed the group's prompt once: 3 + 35 rows, not 3 + 3 x 35.
        XCTAssertEqual(generation.caches[group[0]].offset, prompt.count)
        XCTAssertEqual(generation.caches[group[2]].offset, prompt.count)
        let chains = generation.run()
        for (g, index) in group.enumerated() {
            let alone = Generation(model: model, tokenizer: tokenizer, prompts: [prompt], settings: [settings[g]],
                                   maxNewTokens: 14).run()[0]
            XCTAssertEqual(chains[index].tokens, alone.tokens)
            XCTAssertLessThan(maxDiff(chains[index].readout!, alone.readout!), 1e-4)
        }
        XCTAssertNotNil(chains[other].readout)
    }
}

