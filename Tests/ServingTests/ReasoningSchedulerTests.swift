// Iteration-level batching of reasoning: batched chains give the same text and scores as decoding one request at a
// time through Model's own Generation, streamed text adds up to the reasoning, and cancellation frees the slot.
import Data
import Foundation
import Model
@testable import Serving
import XCTest

final class ReasoningSchedulerTests: XCTestCase {
    /// A tiny random dual-head network over a six-item catalogue (weights large enough that greedy has no near-ties).
    static let served: ServedModel = {
        let corpus = ["Analyse the history, then name the next item inside <answer></answer>.",
                      "3d 4.5h ago: [Toy Story (1995)] (5)\n12.0min ago: [Heat (1995)] (4)",
                      "Title: Heat (1995)\nAverage rating: 3.9\nRaters: 120\nGenres: Action, Crime, Thriller",
                      "the then there these those other rating ratings 1995 1996 1997 ago min"]
        let tokenizer = try! TokenizerTrainer.train(texts: Array(repeating: corpus.joined(separator: "\n"), count: 3),
                                                    vocabularySize: 300, minFrequency: 1)
        let c = Qwen2Configuration(hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: 4,
                                   numKeyValueHeads: 2, vocabSize: tokenizer.vocabularySize, rmsNormEps: 1e-6,
                                   ropeTheta: 10_000, tieWordEmbeddings: true, maxPositionEmbeddings: 512)
        let model = try! Qwen2Model(randomWith: c, seed: 7, std: 0.3)
        let catalog = Catalog(items: (1...6).map { Item(id: "\($0)", title: "Movie \($0) (199\($0))", year: 1990 + $0) })
        let stats = Array(repeating: ItemStats(count: 3, meanRating: 4), count: 6)
        let dual = try! DualHeadModel(model: model, tokenizer: tokenizer, catalog: catalog,
                                      itemPrompts: catalog.items.enumerated().map { Prompts.item($1, stats: stats[$0]) },
                                      progress: false, promptFormat: .targetRelative)
        return ServedModel(name: "tiny", recommender: dual, datasetName: "t", userHistories: [:], itemStats: stats)
    }()

    func query(_ ids: [String], tokens: Int) -> RecommendQuery {
        var q = RecommendQuery()
        q.history = HistorySpec(events: ids.enumerated().map { HistoryEvent(itemId: $1, timestamp: 1000 + Int64($0) * 3600, rating: 4) })
        q.mode = .reasoning
        q.maxReasoningTokens = tokens
        q.returnReasoning = true
        q.topK = 3
        return q
    }

    func run(_ core: ServingCore, _ queries: [RecommendQuery], ctx: (Int) -> CallContext = { _ in CallContext() },
             deltas: ((Int, String) -> Void)? = nil) -> [Result<RecommendResult, ServingError>] {
        var results = [Result<RecommendResult, ServingError>?](repeating: nil, count: queries.count)
        let group = DispatchGroup()
        let lock = NSLock()
        for (i, q) in queries.enumerated() {
            group.enter()
            core.recommendStream(q, ctx: ctx(i), onDelta: deltas.map { f in { t in f(i, t) } }) { r in
                lock.lock(); results[i] = r; lock.unlock(); group.leave()
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
        return results.map { $0! }
    }

    func core(slots: Int) -> ServingCore {
        let registry = ModelRegistry()
        registry.install(Self.served)
        var cfg = ReasoningConfig()
        cfg.maxSlots = slots
        cfg.stepTokenBudget = max(64, slots)
        return ServingCore(registry: registry, reasoning: cfg)
    }

    func testBatchedChainsEqualOneAtATimeAndModelGeneration() throws {
        let histories = [["1"], ["2", "3"], ["4", "5", "6"], ["6", "1"], ["3"]]
        let queries = histories.enumerated().map { query($1, tokens: 6 + 5 * $0) }
        let single = core(slots: 1)
        let one = run(single, queries)
        single.shutdown()
        let batchedCore = core(slots: 8)
        let batched = run(batchedCore, queries)
        batchedCore.shutdown()
        let dual = try XCTUnwrap(Self.served.dualHead)
        for (i, q) in queries.enumerated() {
            let a = try one[i].get(), b = try batched[i].get()
            XCTAssertEqual(a.reasoning, b.reasoning, "chain \(i)")
            XCTAssertEqual(a.items.map(\.itemId), b.items.map(\.itemId), "chain \(i)")
            for (x, y) in zip(a.items, b.items) { XCTAssertEqual(x.score, y.score, accuracy: 1e-4 * max(1, abs(x.score))) }
            // Model's own batched generation on the same history gives the same chain.
            let resolved = try RecommendService.resolve(q.history, in: Self.served)
            let reference = dual.reason([resolved.history], maxNewTokens: q.maxReasoningTokens)[0]
            XCTAssertEqual(b.reasoning, reference.text, "chain \(i) against Generation")
            XCTAssertTrue(b.reasoning.hasSuffix("<answer>"))
        }
    }

    func testStreamedDeltasAddUpToTheReasoning() throws {
        let c = core(slots: 4)
        defer { c.shutdown() }
        var pieces = [String](repeating: "", count: 3)
        let lock = NSLock()
        let results = run(c, [query(["1"], tokens: 20), query(["2"], tokens: 9), query(["5", "4"], tokens: 14)]) { i, t in
            lock.lock(); pieces[i] += t; lock.unlock()
        }
        for (i, r) in results.enumerated() { XCTAssertEqual(pieces[i], try r.get().reasoning) }
    }

    func testACancelledChainFreesItsSlot() throws {
        let c = core(slots: 1)
        defer { c.shutdown() }
        // Cancelled at its first streamed text: a timer raced with the chain, which can finish its 450 tokens in
        // less time than any fixed delay once the kernels are fast enough.
        let first = CallContext()
        let t0 = Date()
        let results = run(c, [query(["1"], tokens: 500), query(["2"], tokens: 5)],
                          ctx: { $0 == 0 ? first : CallContext() }, deltas: { i, _ in if i == 0 { first.cancel() } })
        guard case .failure(let e) = results[0] else { return XCTFail("the cancelled chain must not finish") }
        XCTAssertEqual(e.code, .cancelled)
        XCTAssertEqual(try results[1].get().reasoningTokens, 5)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 30)
    }

    func testReasoningOnAModelWithoutAnLMHeadIsRefused() {
        let registry = ModelRegistry()
        registry.install(servedModel(RecordingModel()))
        let c = ServingCore(registry: registry)
        defer { c.shutdown() }
        var q = RecommendQuery()
        q.history = HistorySpec(events: [HistoryEvent(itemId: "1")])
        q.mode = .reasoning
        guard case .failure(let e) = run(c, [q])[0] else { return XCTFail() }
        XCTAssertEqual(e.code, .failedPrecondition)
    }

    func testAFullReasoningQueueRefusesAtOnce() throws {
        let registry = ModelRegistry()
        registry.install(Self.served)
        var cfg = ReasoningConfig()
        cfg.maxSlots = 1
        cfg.maxQueueSize = 1
        cfg.maxTokensLimit = 400
        let c = ServingCore(registry: registry, reasoning: cfg)
        defer { c.shutdown() }
        let long = CallContext()
        let group = DispatchGroup()
        group.enter()
        c.recommendStream(query(["1"], tokens: 400), ctx: long, onDelta: nil) { _ in group.leave() }
        Thread.sleep(forTimeInterval: 0.02)  // the long chain takes the only slot (it needs far longer to finish)
        group.enter()
        c.recommendStream(query(["2"], tokens: 3), ctx: CallContext(), onDelta: nil) { _ in group.leave() }  // queued
        let refused = run(c, [query(["3"], tokens: 3)])
        guard case .failure(let e) = refused[0] else { return XCTFail("expected RESOURCE_EXHAUSTED") }
        XCTAssertEqual(e.code, .resourceExhausted)
        long.cancel()
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success, "the accepted requests are answered")
    }

    func testTooManyReasoningTokensIsRefused() {
        let c = core(slots: 1)
        defer { c.shutdown() }
        guard case .failure(let e) = run(c, [query(["1"], tokens: 100_000)])[0] else { return XCTFail() }
        XCTAssertEqual(e.field, "max_reasoning_tokens")
    }

    /// A reasoning request is checked as a direct one is (the priority levels bound both paths), and each bad
    /// sampling setting is named on its own.
    func testOutOfRangeFieldsOfAReasoningRequestAreNamed() {
        let c = core(slots: 1)
        defer { c.shutdown() }
        var priority = query(["1"], tokens: 4)
        priority.priority = 7  // the default configuration has 2 levels
        var temperature = query(["1"], tokens: 4)
        temperature.sampling.temperature = -1
        var topP = query(["1"], tokens: 4)
        topP.sampling.topP = .nan
        var before1970 = query(["1"], tokens: 4)
        before1970.history.events[0].timestamp = -5
        var now = query(["1"], tokens: 4)
        now.history.now = -1
        let fields = run(c, [priority, temperature, topP, before1970, now]).map { r -> String in
            guard case .failure(let e) = r else { return "accepted" }
            return e.code == .invalidArgument ? e.field : "\(e.code)"
        }
        XCTAssertEqual(fields, ["priority", "sampling.temperature", "sampling.top_p", "history[0].timestamp", "now"])
    }
}
