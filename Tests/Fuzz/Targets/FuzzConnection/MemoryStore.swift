// An EventStore in memory for FuzzConnection: the live loop and the Events service run over it as they run over
// SQLite (the same contract: a write answers after it is applied, idempotency keys are kept once, an event needs
// its item, a change bumps the catalogue version once per call), without a file per fuzz input. The SQLite and
// PostgreSQL stores themselves are tested against their real servers in StoreTests.
import Data
import Foundation

final class MemoryStore: EventStore, @unchecked Sendable {
    let location = "memory:fuzz"
    private let lock = NSLock()
    private var items: [String: (item: CatalogItem, version: UInt64)] = [:]
    private var events: [UserEvent] = []
    private var keys = Set<String>()
    private var version: UInt64 = 0
    private var batches = 0
    private var name = "store"

    var itemCount: Int { lock.lock(); defer { lock.unlock() }; return items.count }
    var eventCount: Int { lock.lock(); defer { lock.unlock() }; return events.count }

    func record(_ batch: [UserEvent], completion: @escaping @Sendable (Result<RecordResult, StoreError>) -> Void) {
        lock.lock()
        if let bad = batch.firstIndex(where: { items[$0.itemId] == nil }) {
            lock.unlock()
            return completion(.failure(.rejected(field: "events[\(bad)].item_id", message: "unknown item")))
        }
        var duplicates: [Int] = []
        var seen = keys
        for (i, e) in batch.enumerated() where !e.idempotencyKey.isEmpty {
            if !seen.insert(e.idempotencyKey).inserted { duplicates.append(i) }
        }
        let kept = batch.enumerated().filter { !duplicates.contains($0.offset) }.map(\.element)
        events += kept
        keys = seen
        batches += 1
        lock.unlock()
        completion(.success(RecordResult(recorded: kept.count, duplicates: duplicates)))
    }

    func upsertItems(_ batch: [CatalogItem]) throws -> UpsertResult {
        lock.lock(); defer { lock.unlock() }
        var created: [Int] = [], updated: [Int] = []
        for (i, c) in batch.enumerated() {
            if let old = items[c.item.id] {
                if old.item.item != c.item || old.item.metadataJSON != c.metadataJSON { updated.append(i) }
            } else {
                created.append(i)
            }
        }
        if !created.isEmpty || !updated.isEmpty {
            version += 1
            for i in created + updated {
                var c = batch[i]
                if let old = items[c.item.id] { c.created = old.item.created }
                items[c.item.id] = (c, version)
            }
        }
        return UpsertResult(created: created, updated: updated, catalogVersion: version)
    }

    func history(of user: String, limit: Int) throws -> UserEvents {
        lock.lock(); defer { lock.unlock() }
        let mine = events.enumerated().filter { $0.element.userId == user }
            .sorted { ($0.element.timestamp, $0.offset) < ($1.element.timestamp, $1.offset) }.map(\.element)
        return UserEvents(events: Array(mine.suffix(limit)), total: mine.count)
    }

    func deleteUser(_ user: String) throws -> Int {
        lock.lock(); defer { lock.unlock() }
        let before = events.count
        events.removeAll { $0.userId == user }
        return before - events.count
    }

    func items(changedAfter after: UInt64) throws -> (items: [CatalogItem], version: UInt64) {
        lock.lock(); defer { lock.unlock() }
        return (items.values.filter { $0.version > after }.map(\.item).sorted { $0.item.id < $1.item.id }, version)
    }

    func forEachEvent(chunk: Int, _ body: ([UserEvent]) throws -> Void) throws {
        lock.lock()
        let all = events
        lock.unlock()
        for start in stride(from: 0, to: all.count, by: max(1, chunk)) {
            try body(Array(all[start..<min(all.count, start + chunk)]))
        }
    }

    func info() throws -> StoreInfo {
        lock.lock(); defer { lock.unlock() }
        return StoreInfo(name: name, items: items.count, users: Set(events.map(\.userId)).count, events: events.count,
                         catalogVersion: version, schemaVersion: 1)
    }

    var writeStats: WriteStats { lock.lock(); defer { lock.unlock() }; return WriteStats(commits: batches, batches: batches) }

    func importRows(items newItems: [CatalogItem], events newEvents: [UserEvent], name: String) throws {
        lock.lock(); defer { lock.unlock() }
        for c in newItems { items[c.item.id] = (c, 0) }
        for e in newEvents where items[e.itemId] == nil { items[e.itemId] = (CatalogItem(item: Item(id: e.itemId, title: "")), 0) }
        events += newEvents
        if self.name == "store" { self.name = name }
    }

    func close() {}
}
