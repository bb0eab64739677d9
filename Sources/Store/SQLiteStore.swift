// The embedded store: one SQLite file through GRDB's DatabasePool (WAL: readers never wait for the writer and see
// a consistent snapshot). Every write goes through the pool's single writer connection; RecordEvents batches reach
// it through the group committer, so concurrent batches share one transaction and one WAL sync.
// Durability is `sqlite:PATH?synchronous=full|normal` (SQLiteSync); the file is guarded by a writer lock
// (WriterLock) so that a second server on it is refused.
import Data
import Foundation
import GRDB

public final class SQLiteStore: EventStore, @unchecked Sendable {
    public let location: String
    let path: String
    let pool: DatabasePool
    private var writerLock: WriterLock?
    private var committer: GroupCommitter?
    /// Row ids of users and items by their ids, read or written only inside the pool's writer (serialised by it).
    private var userRefs: [String: Int64] = [:]
    private var itemRefs: [String: Int64] = [:]
    static let refCacheLimit = 2_000_000

    /// Opens or creates the store at `path` (its directory must exist) and applies pending migrations. With
    /// `writer: false` the file is opened read-only (export, training) and must exist.
    public init(path: String, sync: SQLiteSync = .full, maxBytes: Int64? = nil, busyTimeoutMs: Int = 5000,
                writer: Bool = true) throws {
        self.path = path
        location = "sqlite:\(path)"
        let directory = (path as NSString).deletingLastPathComponent
        guard FileManager.default.fileExists(atPath: directory.isEmpty ? "." : directory) else {
            throw StoreError.unusable("\(location): directory \(directory) does not exist")
        }
        if !writer && !FileManager.default.fileExists(atPath: path) {
            throw StoreError.unusable("\(location): no such file (create it with r2ec store import)")
        }
        writerLock = writer ? try WriterLock(database: path) : nil
        var config = Configuration()
        config.readonly = !writer
        config.busyMode = .timeout(Double(busyTimeoutMs) / 1000)
        config.label = "r2ec-store"
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(sync == .full ? "FULL" : "NORMAL")")
            if let maxBytes {
                let pageSize = try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
                try db.execute(sql: "PRAGMA max_page_count = \(max(1, maxBytes / pageSize))")
            }
        }
        do {
            pool = try DatabasePool(path: path, configuration: config)
        } catch {
            throw Self.storeError(error, location: "sqlite:\(path)")
        }
        do {
            // GRDB turns WAL on with synchronous = NORMAL after prepareDatabase: the writer (the one connection
            // that commits, kept for the pool's life) gets the asked-for setting back.
            if writer { try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = \(sync == .full ? "FULL" : "NORMAL")") } }
            if writer { try migrate() } else { try checkSchema() }
        } catch {
            throw Self.storeError(error, location: location)
        }
        if writer {
            committer = GroupCommitter(name: "r2ec-sqlite-writer") { [unowned self] in self.commit($0) }
        }
    }

    deinit { committer?.close() }

    /// Commits what is queued, closes the connections, then releases the writer lock.
    public func close() {
        committer?.close()
        committer = nil
        try? pool.close()
        writerLock = nil
    }

    public var writeStats: WriteStats { committer?.stats ?? WriteStats(commits: 0, batches: 0) }

    // MARK: Schema

    private func migrate() throws {
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: Schema.migrationsTable)
            let current = try Int.fetchOne(db, sql: "SELECT coalesce(max(version), 0) FROM r2ec_migrations") ?? 0
            for m in try Schema.pending(after: current, location: location) {
                try db.inTransaction(.immediate) {
                    for statement in m.statements(.sqlite) { try db.execute(sql: statement) }
                    try db.execute(sql: "INSERT INTO r2ec_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                                   arguments: [m.version, m.name, Int64(Date().timeIntervalSince1970)])
                    return .commit
                }
            }
        }
    }

    private func checkSchema() throws {
        let version = try pool.read { db -> Int in
            guard try db.tableExists("r2ec_migrations") else { return 0 }
            return try Int.fetchOne(db, sql: "SELECT coalesce(max(version), 0) FROM r2ec_migrations") ?? 0
        }
        guard version >= 1 else { throw StoreError.unusable("\(location) holds no r2ec store (no r2ec_migrations table)") }
        _ = try Schema.pending(after: version, location: location)
        guard version == Schema.latestVersion else {
            throw StoreError.unusable("\(location) has schema version \(version); open it once for writing to migrate it to \(Schema.latestVersion)")
        }
    }

    // MARK: Writes

    public func record(_ events: [UserEvent], completion: @escaping @Sendable (Result<RecordResult, StoreError>) -> Void) {
        guard let committer else { return completion(.failure(.unusable("\(location) is open read-only"))) }
        committer.submit(events, completion: completion)
    }

    /// One transaction for every batch of the group (called on the committer's thread).
    private func commit(_ group: [[UserEvent]]) -> Result<[RecordResult], StoreError> {
        do {
            return .success(try write { db, refs in
                let insert = try db.cachedStatement(sql: """
                    INSERT INTO events (user_ref, item_ref, time, kind, rating, idempotency_key) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (idempotency_key) DO NOTHING
                    """)
                let now = Int64(Date().timeIntervalSince1970)
                return try group.map { batch in
                    var duplicates: [Int] = []
                    for (i, e) in batch.enumerated() {
                        guard let item = try refs.item(e.itemId, db) else {
                            throw StoreError.rejected(field: "events[\(i)].item_id", message: "unknown item id '\(e.itemId)'")
                        }
                        let user = try refs.user(e.userId, db, create: now)
                        let before = db.totalChangesCount
                        insert.setUncheckedArguments([user, item, e.timestamp, e.kind, Double(e.rating),
                                                      e.idempotencyKey.isEmpty ? nil : e.idempotencyKey])
                        try insert.execute()
                        if db.totalChangesCount == before { duplicates.append(i) }
                    }
                    return RecordResult(recorded: batch.count - duplicates.count, duplicates: duplicates)
                }
            })
        } catch {
            return .failure(Self.storeError(error, location: location))
        }
    }

    public func upsertItems(_ items: [CatalogItem]) throws -> UpsertResult {
        try run {
            try write { db, refs in try Self.upsert(items, db: db, refs: refs, created: Int64(Date().timeIntervalSince1970)) }
        }
    }

    public func deleteUser(_ user: String) throws -> Int {
        try run {
            try write { db, refs in
                guard let ref = try Int64.fetchOne(db, sql: "SELECT id FROM users WHERE user_id = ?", arguments: [user]) else {
                    return 0
                }
                let count = try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE user_ref = ?", arguments: [ref]) ?? 0
                try db.execute(sql: "DELETE FROM users WHERE id = ?", arguments: [ref])  // cascades to the events
                refs.forget(user: user)
                return count
            }
        }
    }

    public func importRows(items: [CatalogItem], events: [UserEvent], name: String) throws {
        try run {
            try write { db, refs in
                try db.execute(sql: "UPDATE store_meta SET value = ? WHERE key = 'name' AND value = 'store'", arguments: [name])
                var all = items
                var named = Set(items.map(\.item.id))
                for e in events where !named.contains(e.itemId) {
                    named.insert(e.itemId)
                    if try refs.item(e.itemId, db) == nil { all.append(CatalogItem(item: Item(id: e.itemId))) }
                }
                _ = try Self.upsert(all, db: db, refs: refs, created: nil)
                let insert = try db.cachedStatement(sql: """
                    INSERT INTO events (user_ref, item_ref, time, kind, rating, idempotency_key) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (idempotency_key) DO NOTHING
                    """)
                for e in events {
                    let user = try refs.user(e.userId, db, create: 0)
                    insert.setUncheckedArguments([user, try refs.item(e.itemId, db)!, e.timestamp, e.kind, Double(e.rating),
                                                  e.idempotencyKey.isEmpty ? nil : e.idempotencyKey])
                    try insert.execute()
                }
            }
        }
    }

    /// Creates or replaces items under one new catalogue version (taken only when something changed). `created`
    /// stamps new items; nil keeps the given items' own `created`.
    static func upsert(_ items: [CatalogItem], db: Database, refs: Refs, created: Int64?) throws -> UpsertResult {
        let current = UInt64(try String.fetchOne(db, sql: "SELECT value FROM store_meta WHERE key = 'catalog_version'")
            .flatMap { UInt64($0) } ?? 0)
        let version = current + 1
        let select = try db.cachedStatement(sql: """
            SELECT id, title, year, genres, description, metadata FROM items WHERE item_id = ?
            """)
        let insert = try db.cachedStatement(sql: """
            INSERT INTO items (item_id, title, year, genres, description, metadata, created, version)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        let update = try db.cachedStatement(sql: """
            UPDATE items SET title = ?, year = ?, genres = ?, description = ?, metadata = ?, version = ? WHERE id = ?
            """)
        var createdIndices: [Int] = [], updated: [Int] = []
        for (i, c) in items.enumerated() {
            let genres = GenresJSON.encode(c.item.genres)
            if let row = try Row.fetchOne(select, arguments: [c.item.id]) {
                let same = (row["title"] as String) == c.item.title && (row["year"] as Int) == c.item.year
                    && (row["genres"] as String) == genres && (row["description"] as String) == c.item.description
                    && (row["metadata"] as String) == c.metadataJSON
                if same { continue }
                try update.execute(arguments: [c.item.title, c.item.year, genres, c.item.description, c.metadataJSON,
                                               Int64(version), row["id"] as Int64])
                updated.append(i)
            } else {
                try insert.execute(arguments: [c.item.id, c.item.title, c.item.year, genres, c.item.description,
                                               c.metadataJSON, created ?? c.created, Int64(version)])
                refs.created(item: c.item.id, ref: db.lastInsertedRowID)
                createdIndices.append(i)
            }
        }
        if createdIndices.isEmpty && updated.isEmpty {
            return UpsertResult(created: [], updated: [], catalogVersion: current)
        }
        try db.execute(sql: "UPDATE store_meta SET value = ? WHERE key = 'catalog_version'", arguments: ["\(version)"])
        return UpsertResult(created: createdIndices, updated: updated, catalogVersion: version)
    }

    /// Runs `body` in one IMMEDIATE transaction on the writer connection. Ids of users and items that `body` creates
    /// or forgets reach the shared caches only if the transaction commits (a rolled-back row id may be reused).
    private func write<T>(_ body: (Database, Refs) throws -> T) throws -> T {
        try pool.writeWithoutTransaction { db in
            let refs = Refs(users: userRefs, items: itemRefs)
            var result: T?
            try db.inTransaction(.immediate) {
                result = try body(db, refs)
                return .commit
            }
            if userRefs.count > Self.refCacheLimit || itemRefs.count > Self.refCacheLimit {
                userRefs = [:]; itemRefs = [:]
            } else {
                for (u, r) in refs.newUsers { userRefs[u] = r }
                for u in refs.forgotten { userRefs[u] = nil }
                for (i, r) in refs.newItems { itemRefs[i] = r }
            }
            return result!
        }
    }

    /// The writer's view of the ref caches during one transaction.
    final class Refs {
        let users: [String: Int64]
        let items: [String: Int64]
        var newUsers: [String: Int64] = [:]
        var newItems: [String: Int64] = [:]
        var forgotten: Set<String> = []

        init(users: [String: Int64], items: [String: Int64]) { self.users = users; self.items = items }

        func user(_ id: String, _ db: Database, create time: Int64) throws -> Int64 {
            if let r = newUsers[id] ?? (forgotten.contains(id) ? nil : users[id]) { return r }
            if let r = try Int64.fetchOne(db.cachedStatement(sql: "SELECT id FROM users WHERE user_id = ?"), arguments: [id]) {
                newUsers[id] = r
                return r
            }
            try db.cachedStatement(sql: "INSERT INTO users (user_id, created) VALUES (?, ?)").execute(arguments: [id, time])
            let r = db.lastInsertedRowID
            newUsers[id] = r
            forgotten.remove(id)
            return r
        }

        func item(_ id: String, _ db: Database) throws -> Int64? {
            if let r = newItems[id] ?? items[id] { return r }
            guard let r = try Int64.fetchOne(db.cachedStatement(sql: "SELECT id FROM items WHERE item_id = ?"),
                                             arguments: [id]) else { return nil }
            newItems[id] = r
            return r
        }

        func created(item id: String, ref: Int64) { newItems[id] = ref }

        func forget(user id: String) {
            newUsers[id] = nil
            forgotten.insert(id)
        }
    }

    // MARK: Reads

    public func history(of user: String, limit: Int) throws -> UserEvents {
        try run {
            try pool.read { db in
                guard let ref = try Int64.fetchOne(db, sql: "SELECT id FROM users WHERE user_id = ?", arguments: [user]) else {
                    return UserEvents(events: [], total: 0)
                }
                let total = try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE user_ref = ?", arguments: [ref]) ?? 0
                let rows = try Row.fetchAll(db, sql: """
                    SELECT i.item_id, e.time, e.kind, e.rating, e.idempotency_key FROM events e JOIN items i ON i.id = e.item_ref
                    WHERE e.user_ref = ? ORDER BY e.time DESC, e.seq DESC LIMIT ?
                    """, arguments: [ref, limit])
                let events = rows.reversed().map { r in
                    UserEvent(userId: user, itemId: r[0], timestamp: r[1], kind: r[2], rating: Float(r[3] as Double),
                              idempotencyKey: (r[4] as String?) ?? "")
                }
                return UserEvents(events: events, total: total)
            }
        }
    }

    public func items(changedAfter version: UInt64) throws -> (items: [CatalogItem], version: UInt64) {
        try run {
            try pool.read { db in
                let current = UInt64(try String.fetchOne(db, sql: "SELECT value FROM store_meta WHERE key = 'catalog_version'")
                    .flatMap { UInt64($0) } ?? 0)
                let rows = try Row.fetchAll(db, sql: """
                    SELECT item_id, title, year, genres, description, metadata, created FROM items WHERE version > ? ORDER BY id
                    """, arguments: [Int64(version)])
                let items = try rows.map { r in
                    CatalogItem(item: Item(id: r[0], title: r[1], year: r[2], genres: try GenresJSON.decode(r[3]),
                                           description: r[4]),
                                metadataJSON: r[5], created: r[6])
                }
                return (items, current)
            }
        }
    }

    public func forEachEvent(chunk: Int, _ body: ([UserEvent]) throws -> Void) throws {
        try run {
            try pool.read { db in
                let cursor = try Row.fetchCursor(db, sql: """
                    SELECT u.user_id, i.item_id, e.time, e.kind, e.rating, e.idempotency_key
                    FROM events e JOIN users u ON u.id = e.user_ref JOIN items i ON i.id = e.item_ref ORDER BY e.seq
                    """)
                var buffer: [UserEvent] = []
                buffer.reserveCapacity(chunk)
                while let r = try cursor.next() {
                    buffer.append(UserEvent(userId: r[0], itemId: r[1], timestamp: r[2], kind: r[3],
                                            rating: Float(r[4] as Double), idempotencyKey: (r[5] as String?) ?? ""))
                    if buffer.count == chunk { try body(buffer); buffer.removeAll(keepingCapacity: true) }
                }
                if !buffer.isEmpty { try body(buffer) }
            }
        }
    }

    public func info() throws -> StoreInfo {
        try run {
            try pool.read { db in
                let meta = Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT key, value FROM store_meta")
                    .map { ($0[0] as String, $0[1] as String) })
                return StoreInfo(
                    name: meta["name"] ?? "store",
                    items: try Int.fetchOne(db, sql: "SELECT count(*) FROM items") ?? 0,
                    users: try Int.fetchOne(db, sql: "SELECT count(*) FROM users") ?? 0,
                    events: try Int.fetchOne(db, sql: "SELECT count(*) FROM events") ?? 0,
                    catalogVersion: UInt64(meta["catalog_version"] ?? "0") ?? 0,
                    schemaVersion: try Int.fetchOne(db, sql: "SELECT coalesce(max(version), 0) FROM r2ec_migrations") ?? 0)
            }
        }
    }

    // MARK: Errors

    /// Runs a store call, turning SQLite's errors into StoreErrors.
    private func run<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch { throw Self.storeError(error, location: location) }
    }

    static func storeError(_ error: Error, location: String) -> StoreError {
        if let e = error as? StoreError { return e }
        guard let e = error as? DatabaseError else { return .unavailable("\(location): \(error)") }
        let message = "\(location): \(e.message ?? "\(e)")"
        switch e.resultCode {
        case .SQLITE_FULL: return .full(message)
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return .unavailable(message + " (another connection holds the write lock)")
        case .SQLITE_CORRUPT, .SQLITE_NOTADB, .SQLITE_CANTOPEN, .SQLITE_READONLY, .SQLITE_PERM, .SQLITE_SCHEMA:
            return .unusable(message)
        case .SQLITE_CONSTRAINT: return .rejected(field: "", message: message)
        case .SQLITE_IOERR where (e.message ?? "").contains("disk is full"): return .full(message)
        default: return .unavailable(message)
        }
    }
}

/// Genres as the store keeps them: a JSON array of strings (so the sqlite3 shell and psql can use json_each).
enum GenresJSON {
    static func encode(_ genres: [String]) -> String {
        let data = try! JSONSerialization.data(withJSONObject: genres, options: [.withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    static func decode(_ text: String) throws -> [String] {
        guard let array = try? JSONSerialization.jsonObject(with: Foundation.Data(text.utf8)) as? [String] else {
            throw StoreError.unusable("genres \(ClientText.quote(text)) are not a JSON array of strings")
        }
        return array
    }
}
