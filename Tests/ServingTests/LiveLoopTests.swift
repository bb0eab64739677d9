// The live loop over a real SQLite store: events in, Recommend(user_id) reflects them at once; a user without
// events gets a cold-start answer; an upserted item is recommendable at once by the dual-head network (and honestly
// not by popularity or WALS); DeleteUser erases the store's rows and the cached copy; reads keep being served from
// the cache while the store is down.
import Data
import Eval
import Foundation
import Model
@testable import Serving
import Store
import XCTest

/// A store whose calls can be made to fail, to test what the live loop does when its store is down or full.
final class SwitchableStore: EventStore, @unchecked Sendable {
    let base: EventStore
    private let lock = NSLock()
    private var failure: StoreError?
    init(_ base: EventStore) { self.base = base }
    func fail(with e: StoreError?) { lock.lock(); failure = e; lock.unlock() }
    private func check() throws { lock.lock(); defer { lock.unlock() }; if let failure { throw failure } }

    var location: String { base.location }
    var writeStats: WriteStats { base.writeStats }
    func record(_ events: [UserEvent], completion: @escaping @Sendable (Result<RecordResult, StoreError>) -> Void) {
        do { try check() } catch { return completion(.failure(error as! StoreError)) }
        base.record(events, completion: completion)
    }
    func upsertItems(_ items: [CatalogItem]) throws -> UpsertResult { try check(); return try base.upsertItems(items) }
    func history(of user: String, limit: Int) throws -> UserEvents { try check(); return try base.history(of: user, limit: limit) }
    func deleteUser(_ user: String) throws -> Int { try check(); return try base.deleteUser(user) }
    func items(changedAfter version: UInt64) throws -> (items: [CatalogItem], version: UInt64) {
        try check(); return try base.items(changedAfter: version)
    }
    func forEachEvent(chunk: Int, _ body: ([UserEvent]) throws -> Void) throws { try check(); try base.forEachEvent(chunk: chunk, body) }
    func info() throws -> StoreInfo { try check(); return try base.info() }
    func importRows(items: [CatalogItem], events: [UserEvent], name: String) throws {
        try check(); try base.importRows(items: items, events: events, name: name)
    }
    func close() { base.close() }
}

final class LiveLoopTests: XCTestCase {
    var directory = ""
    var store: SwitchableStore!
    var registry: ModelRegistry!
    var core: ServingCore!

    /// A random dual-head network over whatever catalogue the loader gives it (the "checkpoint" directory is ignored).
    static let randomDualHead: CheckpointLoader = { _, dataset in
        let corpus = ["Analyse the history, then name the next item inside <answer></answer>.",
                      "Summarise the item. Title: Movie New Film Average rating: none Raters: 0 Genres: Drama, Sci-Fi"]
        let tokenizer = try TokenizerTrainer.train(texts: Array(repeating: corpus.joined(separator: "\n"), count: 3),
                                                   vocabularySize: 300, minFrequency: 1)
        let c = Qwen2Configuration(hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: 4,
                                   numKeyValueHeads: 2, vocabSize: tokenizer.vocabularySize, rmsNormEps: 1e-6,
                                   ropeTheta: 10_000, tieWordEmbeddings: true, maxPositionEmbeddings: 512)
        let model = try Qwen2Model(randomWith: c, seed: 3, std: 0.3)
        let stats = dataset.itemStats()
        let dual = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: dataset.catalog,
                                     itemPrompts: dataset.catalog.items.enumerated().map { Prompts.item($1, stats: stats[$0]) },
                                     progress: false, promptFormat: .stablePrefix)
        dual.prefixCache = PrefixCache(budget: 64 << 20)
        return (dual, nil)
    }

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "r2ec-live-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = SwitchableStore(try SQLiteStore(path: directory + "/store.sqlite"))
        let items = (1...8).map { CatalogItem(item: Item(id: "\($0)", title: "Movie \($0)", genres: ["Drama"])) }
        // Item 3 is the most popular (3 events), then 1 (2), then 2, 4, 5 (1 each).
        let pairs = [("u1", "1"), ("u1", "2"), ("u1", "3"), ("u2", "3"), ("u2", "4"), ("u3", "3"), ("u3", "5"), ("u3", "1")]
        try store.importRows(items: items, events: pairs.enumerated().map {
            UserEvent(userId: $1.0, itemId: $1.1, timestamp: 1000 + Int64($0), rating: 4)
        }, name: "tiny")
        registry = ModelRegistry()
        let snapshot = try store.snapshot()
        for spec in ["popularity", "wals", directory] {
            registry.install(try loader(snapshot).load(spec: spec, name: spec == directory ? "dual" : spec))
        }
        core = ServingCore(registry: registry)
        core.live = LiveLoop(store: store, snapshot: snapshot, registry: registry)
    }

    func loader(_ snapshot: StoreSnapshot) -> ModelLoader {
        ModelLoader(dataset: snapshot.dataset, checkpoints: Self.randomDualHead, catalogVersion: snapshot.catalogVersion,
                    keepsUserHistories: false)
    }

    override func tearDown() {
        core?.shutdown()
        store?.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: Calls, waited for

    func wait<T>(_ start: (@escaping (Result<T, ServingError>) -> Void) -> Void) -> Result<T, ServingError> {
        let box = Box<Result<T, ServingError>>()
        let done = DispatchSemaphore(value: 0)
        start { box.value = $0; done.signal() }
        XCTAssertEqual(done.wait(timeout: .now() + 30), .success)
        return box.value!
    }

    func recommend(_ user: String, model: String = "popularity", topK: Int = 3, candidates: [String] = [],
                   history: [String] = []) -> Result<RecommendResult, ServingError> {
        var q = RecommendQuery()
        q.history = HistorySpec(userId: user, events: history.map { HistoryEvent(itemId: $0) })
        q.model = model
        q.topK = topK
        q.candidates = candidates
        return wait { self.core.recommend(q, ctx: CallContext(), done: $0) }
    }

    func record(_ events: [EventInput]) -> Result<RecordEventsResult, ServingError> {
        wait { self.core.live!.recordEvents(events, ctx: CallContext(), done: $0) }
    }

    func ids(_ r: Result<RecommendResult, ServingError>) throws -> [String] { try r.get().items.map(\.itemId) }

    // MARK: Tests

    func testAfterRecordEventsTheNextRecommendReflectsThem() throws {
        XCTAssertEqual(try ids(recommend("fresh")), ["3", "1", "2"])  // cold start: by popularity
        XCTAssertEqual(try record([EventInput(userId: "fresh", itemId: "3"), EventInput(userId: "fresh", itemId: "1")]).get(),
                       RecordEventsResult(recorded: 2, duplicates: []))
        XCTAssertEqual(try ids(recommend("fresh")), ["2", "4", "5"])  // the two it just saw are left out
        // A known user: stored events merged with the request's.
        XCTAssertEqual(try ids(recommend("u2", history: ["1"])), ["2", "5", "6"])
        // The write went through the cache: the store agrees with what Recommend read.
        XCTAssertEqual(try store.history(of: "fresh", limit: 10).events.map(\.itemId), ["3", "1"])
        let h = try wait { self.core.live!.userHistory("fresh", limit: 0, ctx: CallContext(), done: $0) }.get()
        XCTAssertEqual(h.events.map(\.itemId), ["3", "1"])
        XCTAssertEqual(h.total, 2)
        // The response names the model and its version.
        XCTAssertEqual(try recommend("fresh").get().model, "popularity")
        XCTAssertEqual(try recommend("fresh").get().modelVersion, registry.all.first { $0.name == "popularity" }!.version)
    }

    func testUsersWithoutEventsGetAColdStartAnswerFromEveryModel() throws {
        for model in ["popularity", "wals", "dual"] {
            let r = try recommend("nobody-\(model)", model: model, topK: 5).get()
            XCTAssertEqual(r.items.count, 5, model)
        }
        // WALS folds an empty history into nothing; its cold start is popularity's order.
        XCTAssertEqual(try ids(recommend("nobody", model: "wals")), ["3", "1", "2"])
        // An invalid user id is still refused, naming the field.
        guard case .failure(let e) = recommend(String(repeating: "x", count: 200)) else { return XCTFail() }
        XCTAssertEqual(e.field, "user_id")
    }

    func testAnUpsertedItemIsRecommendableAtOnceByTheDualHeadNetworkOnly() throws {
        let oldDual = try registry.model("dual")
        let r = try wait { self.core.live!.upsertItems([ItemInput(itemId: "new-1", title: "A New Film", genres: ["Sci-Fi"],
                                                                  metadataJSON: "{\"source\": \"test\"}")],
                                                       ctx: CallContext(), done: $0) }.get()
        XCTAssertEqual(r.created, 1)
        XCTAssertEqual(r.encodedBy, ["dual"])
        XCTAssertEqual(r.catalogVersion, core.live!.catalogVersion)
        // The dual-head model ranks it among the candidates; popularity and WALS cannot score it.
        XCTAssertEqual(Set(try ids(recommend("u9", model: "dual", topK: 2, candidates: ["new-1", "7"]))), ["new-1", "7"])
        XCTAssertEqual(try ids(recommend("u9", model: "popularity", topK: 2, candidates: ["new-1", "7"])), ["7"])
        XCTAssertEqual(try ids(recommend("u9", model: "wals", topK: 2, candidates: ["new-1", "7"])), ["7"])
        let facts = Dictionary(uniqueKeysWithValues: registry.all.map { ($0.name, $0.facts) })
        XCTAssertEqual(facts["dual"]?.numRecommendableItems, 9)
        XCTAssertEqual(facts["popularity"]?.numRecommendableItems, 8)
        XCTAssertEqual(facts["dual"]?.numItems, 9)
        // Same model, same version: a catalogue version is not a reload.
        XCTAssertEqual(try registry.model("dual").version, oldDual.version)
        // The version readers held before is untouched.
        XCTAssertEqual(oldDual.catalog.count, 8)
        XCTAssertEqual(oldDual.dualHead?.itemTable.count, 8)
        // GetItems shows what was stored.
        let info = try core.getItems(["new-1"], model: "popularity")
        XCTAssertEqual(info.first?.metadataJSON, "{\"source\": \"test\"}")
        XCTAssertGreaterThan(info.first?.created ?? 0, 1_700_000_000)
        // Events may name it now, and a user who saw it does not get it again.
        XCTAssertEqual(try record([EventInput(userId: "u9", itemId: "new-1")]).get().recorded, 1)
        XCTAssertFalse(try ids(recommend("u9", model: "dual", topK: 8)).contains("new-1"))
    }

    /// A model loaded over an older catalogue (a reload racing an upsert) is brought up to date once installed.
    func testAModelInstalledAfterAnUpsertCatchesUp() throws {
        let stale = try loader(try store.snapshot()).load(spec: "popularity", name: "late")
        _ = try wait { self.core.live!.upsertItems([ItemInput(itemId: "new-2", title: "Late")], ctx: CallContext(), done: $0) }.get()
        XCTAssertEqual(stale.catalog.count, 8)
        registry.install(stale)
        let deadline = Date().addingTimeInterval(10)
        while try registry.model("late").catalog.count < 9 && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        XCTAssertEqual(try registry.model("late").catalog.count, 9)
        XCTAssertEqual(try registry.model("late").catalogVersion, core.live!.catalogVersion)
    }

    func testDeleteUserErasesTheStoreAndTheCache() throws {
        _ = try record([EventInput(userId: "gone", itemId: "3"), EventInput(userId: "gone", itemId: "1")]).get()
        XCTAssertEqual(try ids(recommend("gone")), ["2", "4", "5"])  // cached now
        XCTAssertEqual(try wait { self.core.live!.deleteUser("gone", ctx: CallContext(), done: $0) }.get(), 2)
        XCTAssertEqual(try store.history(of: "gone", limit: 10).total, 0)
        XCTAssertNil(core.live!.cache.lookup("gone"))
        XCTAssertEqual(try ids(recommend("gone")), ["3", "1", "2"])  // a cold start again
    }

    /// Privacy: DeleteUser removes every cached prompt prefix a request of the user made (and only those); a model
    /// swap drops the old model's cache.
    func testDeleteUserAndAModelSwapEmptyThePrefixCache() throws {
        _ = try record([EventInput(userId: "gone", itemId: "3"), EventInput(userId: "gone", itemId: "1"),
                        EventInput(userId: "stay", itemId: "2")]).get()
        let cache = try XCTUnwrap(try registry.model("dual").dualHead?.prefixCache)
        _ = try recommend("gone", model: "dual").get()
        _ = try recommend("stay", model: "dual").get()
        XCTAssertEqual(cache.statistics.entries, 2)
        // Again with one more event: the entry is extended (a hit), still one per user.
        _ = try record([EventInput(userId: "gone", itemId: "4")]).get()
        _ = try recommend("gone", model: "dual").get()
        XCTAssertEqual(cache.statistics.hits, 1)
        XCTAssertEqual(cache.statistics.entries, 2)
        XCTAssertEqual(try wait { self.core.live!.deleteUser("gone", ctx: CallContext(), done: $0) }.get(), 3)
        XCTAssertEqual(cache.statistics.entries, 1)
        _ = try recommend("stay", model: "dual").get()
        XCTAssertEqual(cache.statistics.hits, 2, "the other user's entry survives")
        registry.install(try loader(try store.snapshot()).load(spec: directory, name: "dual"))
        XCTAssertEqual(cache.statistics.entries, 0)
        XCTAssertEqual(cache.statistics.bytes, 0)
        XCTAssertFalse(try registry.model("dual").dualHead?.prefixCache === cache)
    }

    func testAnUnknownItemRefusesTheWholeBatch() throws {
        guard case .failure(let e) = record([EventInput(userId: "b", itemId: "1"), EventInput(userId: "b", itemId: "zzz")]) else {
            return XCTFail("accepted")
        }
        XCTAssertEqual(e.code, .notFound)
        XCTAssertEqual(e.field, "events[1].item_id")
        XCTAssertEqual(try store.history(of: "b", limit: 10).total, 0)
    }

    /// The store down: cached users are still served, uncached ones and writes get UNAVAILABLE (retryable); a full
    /// store refuses writes with RESOURCE_EXHAUSTED; when it is back, so is everything.
    func testReadsAreServedFromTheCacheWhileTheStoreIsDown() throws {
        _ = try ids(recommend("u1"))  // u1 cached
        store.fail(with: .unavailable("test: server restarting"))
        XCTAssertEqual(try ids(recommend("u1")), ["4", "5", "6"])
        guard case .failure(let e1) = recommend("u2") else { return XCTFail("uncached user answered") }
        XCTAssertEqual(e1.code, .unavailable)
        guard case .failure(let e2) = record([EventInput(userId: "u1", itemId: "4")]) else { return XCTFail("recorded") }
        XCTAssertEqual(e2.code, .unavailable)
        store.fail(with: .full("test: disk full"))
        guard case .failure(let e3) = record([EventInput(userId: "u1", itemId: "4")]) else { return XCTFail("recorded") }
        XCTAssertEqual(e3.code, .resourceExhausted)
        XCTAssertEqual(try ids(recommend("u1")), ["4", "5", "6"])  // nothing half-applied to the cache
        store.fail(with: nil)
        XCTAssertEqual(try ids(recommend("u2")), ["1", "2", "5"])
        XCTAssertEqual(try record([EventInput(userId: "u1", itemId: "4")]).get().recorded, 1)
        XCTAssertEqual(try ids(recommend("u1")), ["5", "6", "7"])
    }

    /// Writers and readers of the same users at once: afterwards every cached history equals the store's.
    func testConcurrentWritesAndReadsLeaveTheCacheEqualToTheStore() throws {
        let users = (0..<6).map { "c\($0)" }
        DispatchQueue.concurrentPerform(iterations: 4) { w in
            for b in 0..<30 {
                let user = users[(w + b) % users.count]
                _ = self.record([EventInput(userId: user, itemId: "\(1 + (b % 8))", timestamp: Int64(2000 + b * 10 + w))])
                _ = self.recommend(users[(w * 7 + b) % users.count])
            }
        }
        for user in users {
            _ = recommend(user)
            let cached = try XCTUnwrap(core.live!.cache.lookup(user))
            let stored = try store.history(of: user, limit: 1000)
            XCTAssertEqual(cached.events.map(\.itemId), stored.events.map(\.itemId), user)
            XCTAssertEqual(cached.total, stored.total, user)
        }
    }
}

final class Box<T>: @unchecked Sendable {
    var value: T?
}
