// What every EventStore must do, run against SQLite and PostgreSQL alike (SQLiteStoreTests, PostgresStoreTests).
// Each check reads the store back through our code AND through an independent peer (the sqlite3 shell, psql)
// where the question is what was written.
import Data
import Foundation
import Store
import XCTest

struct StoreContract {
    let store: EventStore
    /// Runs SQL through the backend's own client program and returns its text output ('|' between columns).
    let peer: (String) throws -> String

    static func catalog(_ ids: [String]) -> [CatalogItem] {
        ids.map { CatalogItem(item: Item(id: $0, title: "Title \($0)", year: 2000, genres: ["Drama", "Film Noir"],
                                         description: "About \($0)."), metadataJSON: "{\"n\": 1}") }
    }

    func seed() throws {
        let r = try store.upsertItems(Self.catalog(["1", "2", "3", "10", "B00X"]))
        XCTAssertEqual(r.created, [0, 1, 2, 3, 4])
    }

    func recordThenHistoryOldestFirstWithTies() throws {
        try seed()
        let t = Int64(1_700_000_000)
        let r = try store.recordAndWait([
            UserEvent(userId: "u1", itemId: "2", timestamp: t + 10, rating: 4),
            UserEvent(userId: "u1", itemId: "1", timestamp: t, kind: "click"),
            UserEvent(userId: "u2", itemId: "3", timestamp: t + 5),
            UserEvent(userId: "u1", itemId: "3", timestamp: t + 10, rating: 2.5),  // same time as the first: after it
        ])
        XCTAssertEqual(r, RecordResult(recorded: 4, duplicates: []))
        let h = try store.history(of: "u1", limit: 10)
        XCTAssertEqual(h.total, 3)
        XCTAssertEqual(h.events.map(\.itemId), ["1", "2", "3"])
        XCTAssertEqual(h.events.map(\.kind), ["click", "interaction", "interaction"])
        XCTAssertEqual(h.events.map(\.rating), [0, 4, 2.5])
        let latest = try store.history(of: "u1", limit: 2)
        XCTAssertEqual(latest.events.map(\.itemId), ["2", "3"])
        XCTAssertEqual(latest.total, 3)
        XCTAssertEqual(try store.history(of: "nobody", limit: 10), UserEvents(events: [], total: 0))
        // The peer sees the same rows, in insertion order.
        XCTAssertEqual(try peer("""
            SELECT u.user_id, i.item_id, e.time, e.kind FROM events e JOIN users u ON u.id = e.user_ref
            JOIN items i ON i.id = e.item_ref ORDER BY e.seq
            """).split(separator: "\n").map(String.init),
            ["u1|2|\(t + 10)|interaction", "u1|1|\(t)|click", "u2|3|\(t + 5)|interaction", "u1|3|\(t + 10)|interaction"])
    }

    func idempotencyKeysMakeRetriesNoOps() throws {
        try seed()
        let e = { (key: String, item: String) in UserEvent(userId: "u", itemId: item, timestamp: 100, idempotencyKey: key) }
        XCTAssertEqual(try store.recordAndWait([e("a", "1"), e("", "2"), e("a", "3"), e("b", "1")]),
                       RecordResult(recorded: 3, duplicates: [2]))
        XCTAssertEqual(try store.recordAndWait([e("b", "1"), e("c", "2"), e("", "2")]),
                       RecordResult(recorded: 2, duplicates: [0]))
        XCTAssertEqual(try store.history(of: "u", limit: 100).total, 5)
        XCTAssertEqual(try peer("SELECT count(*) FROM events WHERE idempotency_key = 'a'"), "1")
        XCTAssertEqual(try peer("SELECT count(*) FROM events WHERE idempotency_key IS NULL"), "2")
    }

    /// A batch naming an unknown item is refused whole; batches committed beside it in the same group are not.
    func unknownItemRefusesItsBatchAlone() throws {
        try seed()
        let results = ResultsBox()
        let group = DispatchGroup()
        for b in 0..<20 {
            group.enter()
            let bad = b == 7
            store.record((0..<5).map { i in
                UserEvent(userId: "u\(b)", itemId: bad && i == 3 ? "nope" : "1", timestamp: Int64(i))
            }) { r in results.set(b, r); group.leave() }
        }
        group.wait()
        for b in 0..<20 {
            switch results.get(b) {
            case .success(let r): XCTAssertNotEqual(b, 7); XCTAssertEqual(r.recorded, 5)
            case .failure(let e):
                XCTAssertEqual(b, 7)
                guard case .rejected = e else { return XCTFail("batch 7: \(e)") }
            case nil: XCTFail("batch \(b) was never answered")
            }
        }
        XCTAssertEqual(try peer("SELECT count(*) FROM events"), "95")
        XCTAssertEqual(try store.history(of: "u7", limit: 10).total, 0)
    }

    /// Many writers at once: every batch acknowledged is stored once.
    func concurrentBatchesAllLand() throws {
        try seed()
        let threads = 8, batches = 40, size = 25
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for b in 0..<batches {
                let events = (0..<size).map { i in
                    UserEvent(userId: "t\(t)-u\(i % 5)", itemId: ["1", "2", "3"][i % 3], timestamp: Int64(b * size + i),
                              idempotencyKey: "t\(t)-b\(b)-\(i)")
                }
                XCTAssertEqual(try? store.recordAndWait(events).recorded, size)
            }
        }
        XCTAssertEqual(try peer("SELECT count(*) FROM events"), "\(threads * batches * size)")
        XCTAssertEqual(try peer("SELECT count(DISTINCT idempotency_key) FROM events"), "\(threads * batches * size)")
        XCTAssertEqual(try store.info().users, threads * 5)
    }

    func upsertCreatesUpdatesAndVersionsTheCatalogue() throws {
        let first = try store.upsertItems(Self.catalog(["a", "b"]))
        XCTAssertEqual(first.created, [0, 1])
        XCTAssertEqual(first.updated, [])
        let v1 = first.catalogVersion
        // Unchanged items: no new version.
        let same = try store.upsertItems(Self.catalog(["a"]))
        XCTAssertEqual(same, UpsertResult(created: [], updated: [], catalogVersion: v1))
        var changed = Self.catalog(["b", "c"])
        changed[0].item.title = "New title"
        let second = try store.upsertItems(changed)
        XCTAssertEqual(second.created, [1])
        XCTAssertEqual(second.updated, [0])
        XCTAssertEqual(second.catalogVersion, v1 + 1)
        let (all, version) = try store.items(changedAfter: 0)
        XCTAssertEqual(version, v1 + 1)
        XCTAssertEqual(all.map(\.item.id).sorted(), ["a", "b", "c"])
        let a = all.first { $0.item.id == "a" }
        XCTAssertEqual(a?.item, Self.catalog(["a"])[0].item)
        XCTAssertEqual(a?.metadataJSON, "{\"n\": 1}")
        let since = try store.items(changedAfter: v1).items
        XCTAssertEqual(since.map(\.item.id).sorted(), ["b", "c"])
        XCTAssertEqual(since.first { $0.item.id == "b" }?.item.title, "New title")
        XCTAssertGreaterThan(since.first { $0.item.id == "c" }?.created ?? 0, 1_600_000_000)
        // Genres are a JSON array the peer can read.
        XCTAssertEqual(try peer("SELECT genres FROM items WHERE item_id = 'a'"), "[\"Drama\",\"Film Noir\"]")
        XCTAssertEqual(try peer("SELECT title FROM items WHERE item_id = 'b'"), "New title")
    }

    func deleteUserErasesOnlyThatUser() throws {
        try seed()
        _ = try store.recordAndWait([
            UserEvent(userId: "gone", itemId: "1", timestamp: 1, idempotencyKey: "k1"),
            UserEvent(userId: "gone", itemId: "2", timestamp: 2),
            UserEvent(userId: "kept", itemId: "1", timestamp: 3),
        ])
        XCTAssertEqual(try store.deleteUser("gone"), 2)
        XCTAssertEqual(try store.deleteUser("gone"), 0)
        XCTAssertEqual(try store.history(of: "gone", limit: 10).total, 0)
        XCTAssertEqual(try store.history(of: "kept", limit: 10).total, 1)
        XCTAssertEqual(try peer("SELECT count(*) FROM users WHERE user_id = 'gone'"), "0")
        XCTAssertEqual(try peer("SELECT count(*) FROM events"), "1")
        // The user can come back (a new user row); the erased idempotency key is free again.
        XCTAssertEqual(try store.recordAndWait([UserEvent(userId: "gone", itemId: "3", timestamp: 4, idempotencyKey: "k1")]).recorded, 1)
        XCTAssertEqual(try store.history(of: "gone", limit: 10).events.map(\.itemId), ["3"])
    }

    func forEachEventStreamsInRecordedOrder() throws {
        try seed()
        let events = (0..<2500).map { UserEvent(userId: "u\($0 % 7)", itemId: ["1", "2", "B00X"][$0 % 3], timestamp: Int64(5000 - $0)) }
        for chunk in stride(from: 0, to: events.count, by: 500) {
            _ = try store.recordAndWait(Array(events[chunk..<(chunk + 500)]))
        }
        var seen: [UserEvent] = []
        var chunks = 0
        try store.forEachEvent(chunk: 1000) { seen += $0; chunks += 1 }
        XCTAssertEqual(seen, events)
        XCTAssertEqual(chunks, 3)
    }

    /// A dataset in, RecBole atomic files out, read back by the Data readers: the same dataset.
    func importExportRoundTrip() throws {
        let dir = NSTemporaryDirectory() + "r2ec-store-rt-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/toy", withIntermediateDirectories: true)
        try ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n" +
             "10\t2\t4\t881250949\n9\t10\t3.5\t100\n10\t10\t5\t50\n10\t99\t1\t60\n")
            .write(toFile: dir + "/toy/toy.inter", atomically: true, encoding: .utf8)
        try ("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n" +
             "2\tToy Story\t1995\tAnimation Children's\n10\tHeat\t1995\tAction Crime\n7\tUnrated\t\t\n")
            .write(toFile: dir + "/toy/toy.item", atomically: true, encoding: .utf8)
        let original = try DatasetLoader.load(dir + "/toy")
        var importer = StoreImporter(store: store, name: "toy", chunkEvents: 2)
        try DatasetLoader.stream(dir + "/toy", into: &importer)
        try importer.flush()
        XCTAssertEqual(try store.info().name, "toy")
        let (items, events) = try StoreExporter.export(store, to: dir + "/out")
        XCTAssertEqual(items, 4)  // 2, 7, 10 and 99 (named by an interaction alone)
        XCTAssertEqual(events, 4)
        let back = try DatasetLoader.load(dir + "/out")
        XCTAssertEqual(back.fingerprint, original.fingerprint)
        XCTAssertEqual(back.catalog.items, original.catalog.items)
        XCTAssertEqual(back.interactions, original.interactions)
        let snapshot = try store.snapshot()
        XCTAssertEqual(snapshot.dataset.fingerprint, original.fingerprint)
        XCTAssertEqual(snapshot.dataset.name, "toy")
    }
}

/// Results written by store threads, read after they finished.
final class ResultsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Int: Result<RecordResult, StoreError>] = [:]
    func set(_ i: Int, _ r: Result<RecordResult, StoreError>) { lock.lock(); results[i] = r; lock.unlock() }
    func get(_ i: Int) -> Result<RecordResult, StoreError>? { lock.lock(); defer { lock.unlock() }; return results[i] }
}
