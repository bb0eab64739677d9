// The shared store: PostgreSQL through libpq. The group committer owns one connection and sends each group as ONE
// statement (users created and events inserted from arrays: one round trip, one transaction, whatever the group's
// size); other calls share a small pool. A connection found broken (server restarted) is replaced at the next
// call; a call that fails because the server is down answers UNAVAILABLE and nothing is retried behind the
// caller's back except reads. Acknowledged = committed with the server's synchronous_commit (on by default:
// flushed to its WAL on disk).
import CLibPQ
import Data
import Foundation

public final class PostgresStore: EventStore, @unchecked Sendable {
    public let location: String
    private let uri: String
    /// Names this store's writes in the user change notifications (`r2ec.instance` on each of its connections), so
    /// that its own follower skips them.
    private let instance: String
    private let pool: PGPool
    private let writer: PGPool
    private var committer: GroupCommitter?
    private var followers: [PGUserChanges] = []
    private let followersLock = NSLock()

    public init(uri: String, poolSize: Int = 4) throws {
        self.uri = uri
        location = StoreURL.postgres(uri: uri).redacted
        let instance = String(UInt64.random(in: 1...UInt64.max), radix: 16)
        self.instance = instance
        let session = "SELECT set_config('r2ec.instance', '\(instance)', false)"
        pool = PGPool(uri: uri, location: location, size: poolSize, session: session)
        writer = PGPool(uri: uri, location: location, size: 1, session: session)
        try pool.with(retry: false) { try self.migrate($0) }
        committer = GroupCommitter(name: "r2ec-postgres-writer") { [unowned self] in self.commit($0) }
    }

    deinit { committer?.close() }

    public var writeStats: WriteStats { committer?.stats ?? WriteStats(commits: 0, batches: 0) }

    public func followUserChanges(changed: @escaping @Sendable ([String]) -> Void, gap: @escaping @Sendable () -> Void) {
        let follower = PGUserChanges(uri: uri, location: location, instance: instance, changed: changed, gap: gap)
        followersLock.lock(); followers.append(follower); followersLock.unlock()
    }

    public func close() {
        followersLock.lock(); let stopping = followers; followers = []; followersLock.unlock()
        for f in stopping { f.stop() }
        committer?.close()
        committer = nil
        pool.closeAll()
        writer.closeAll()
    }

    // MARK: Schema

    private func migrate(_ c: PGConnection) throws {
        while true {
            try c.execute("BEGIN")
            do {
                // Servers starting together migrate one at a time.
                try c.execute("SELECT pg_advisory_xact_lock(7282435)")
                try c.execute(Schema.migrationsTable)
                let current = Int(try c.query("SELECT coalesce(max(version), 0) FROM r2ec_migrations").int(0, 0))
                guard let m = try Schema.pending(after: current, location: location).first else {
                    try c.execute("COMMIT")
                    return
                }
                for statement in m.statements(.postgres) { try c.execute(statement) }
                try c.query("INSERT INTO r2ec_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                            ["\(m.version)", m.name, "\(Int64(Date().timeIntervalSince1970))"])
                try c.execute("COMMIT")
            } catch {
                try? c.execute("ROLLBACK")
                throw error
            }
        }
    }

    // MARK: Writes

    public func record(_ events: [UserEvent], completion: @escaping @Sendable (Result<RecordResult, StoreError>) -> Void) {
        guard let committer else { return completion(.failure(.unavailable("\(location) is closed"))) }
        committer.submit(events, completion: completion)
    }

    /// Creates the group's new users and inserts its events in one statement. RETURNING gives the keys of the
    /// events stored; an event with a key is a duplicate unless it is that key's first occurrence among them.
    static let insertEvents = """
        WITH e AS (
          SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::real[], $6::text[]) WITH ORDINALITY
            AS e (user_id, item_id, time, kind, rating, key, ord)),
        new_users AS (
          INSERT INTO users (user_id, created) SELECT DISTINCT user_id, $7::bigint FROM e
          ON CONFLICT (user_id) DO NOTHING RETURNING id, user_id)
        INSERT INTO events (user_ref, item_ref, time, kind, rating, idempotency_key)
        SELECT coalesce(n.id, u.id), i.id, e.time, e.kind, e.rating, e.key
        FROM e LEFT JOIN new_users n ON n.user_id = e.user_id LEFT JOIN users u ON u.user_id = e.user_id
               LEFT JOIN items i ON i.item_id = e.item_id
        ORDER BY e.ord
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING idempotency_key
        """

    static func eventParams(_ events: [UserEvent], created: Int64) -> [String?] {
        [PGArray.text(events.map(\.userId)), PGArray.text(events.map(\.itemId)), PGArray.numbers(events.map(\.timestamp)),
         PGArray.text(events.map(\.kind)), PGArray.numbers(events.map(\.rating)),
         PGArray.text(events.map { $0.idempotencyKey.isEmpty ? nil : $0.idempotencyKey }), "\(created)"]
    }

    private func commit(_ group: [[UserEvent]]) -> Result<[RecordResult], StoreError> {
        let all = group.flatMap { $0 }
        do {
            let rows = try writer.with(retry: false) { c in
                try c.query(Self.insertEvents, Self.eventParams(all, created: Int64(Date().timeIntervalSince1970)))
            }
            var storedKeys: [String: Int] = [:]
            var keyless = 0
            for r in 0..<rows.count {
                if let k = rows[r, 0] { storedKeys[k, default: 0] += 1 } else { keyless += 1 }
            }
            var results: [RecordResult] = []
            var recordedTotal = 0
            for batch in group {
                var duplicates: [Int] = []
                for (i, e) in batch.enumerated() where !e.idempotencyKey.isEmpty {
                    if let n = storedKeys[e.idempotencyKey], n > 0 { storedKeys[e.idempotencyKey] = n - 1 } else { duplicates.append(i) }
                }
                results.append(RecordResult(recorded: batch.count - duplicates.count, duplicates: duplicates))
                recordedTotal += batch.count - duplicates.count
            }
            guard recordedTotal == rows.count else {
                return .failure(.unavailable("\(location): stored \(rows.count) events, expected \(recordedTotal)"))
            }
            _ = keyless
            return .success(results)
        } catch let e as StoreError {
            if case .rejected(_, let m) = e, group.count == 1 {
                return .failure(.rejected(field: "", message: m))
            }
            return .failure(e)
        } catch {
            return .failure(.unavailable("\(location): \(error)"))
        }
    }

    public func upsertItems(_ items: [CatalogItem]) throws -> UpsertResult {
        try pool.with(retry: false) { c in
            try transaction(c) { try Self.upsert(items, c, created: Int64(Date().timeIntervalSince1970)) }
        }
    }

    /// Creates or replaces items under one new catalogue version (kept only when something changed). Several
    /// items with one id: the last one counts. `created` stamps new items; nil keeps the items' own.
    static func upsert(_ items: [CatalogItem], _ c: PGConnection, created: Int64?) throws -> UpsertResult {
        let current = UInt64(try c.query("SELECT value FROM store_meta WHERE key = 'catalog_version' FOR UPDATE").int(0, 0))
        let version = current + 1
        var last: [String: Int] = [:]
        for (i, x) in items.enumerated() { last[x.item.id] = i }
        let chosen = items.indices.filter { last[items[$0].item.id] == $0 }
        let rows = try c.query("""
            INSERT INTO items (item_id, title, year, genres, description, metadata, created, version)
            SELECT item_id, title, year, genres::json, description, metadata::json, created, $8::bigint
            FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::bigint[]) WITH ORDINALITY
              AS x (item_id, title, year, genres, description, metadata, created, ord)
            ORDER BY ord
            ON CONFLICT (item_id) DO UPDATE SET title = excluded.title, year = excluded.year, genres = excluded.genres,
              description = excluded.description, metadata = excluded.metadata, version = excluded.version
            WHERE (items.title, items.year, items.genres::text, items.description, items.metadata::text)
              IS DISTINCT FROM (excluded.title, excluded.year, excluded.genres::text, excluded.description, excluded.metadata::text)
            RETURNING item_id, (xmax = 0)
            """, [PGArray.text(chosen.map { items[$0].item.id }), PGArray.text(chosen.map { items[$0].item.title }),
                  PGArray.numbers(chosen.map { items[$0].item.year }),
                  PGArray.text(chosen.map { GenresJSON.encode(items[$0].item.genres) }),
                  PGArray.text(chosen.map { items[$0].item.description }), PGArray.text(chosen.map { items[$0].metadataJSON }),
                  PGArray.numbers(chosen.map { created ?? items[$0].created }), "\(version)"])
        var createdIndices: [Int] = [], updated: [Int] = []
        for r in 0..<rows.count {
            let index = last[rows.string(r, 0)]!
            if rows.string(r, 1) == "t" { createdIndices.append(index) } else { updated.append(index) }
        }
        guard !createdIndices.isEmpty || !updated.isEmpty else {
            return UpsertResult(created: [], updated: [], catalogVersion: current)
        }
        try c.query("UPDATE store_meta SET value = $1 WHERE key = 'catalog_version'", ["\(version)"])
        return UpsertResult(created: createdIndices.sorted(), updated: updated.sorted(), catalogVersion: version)
    }

    public func deleteUser(_ user: String) throws -> Int {
        try pool.with(retry: false) { c in
            try transaction(c) {
                let ref = try c.query("SELECT id FROM users WHERE user_id = $1 FOR UPDATE", [user])
                guard ref.count == 1 else { return 0 }
                let count = try c.query("SELECT count(*) FROM events WHERE user_ref = $1", [ref[0, 0]]).int(0, 0)
                try c.query("DELETE FROM users WHERE id = $1", [ref[0, 0]])  // cascades to the events
                return Int(count)
            }
        }
    }

    public func importRows(items: [CatalogItem], events: [UserEvent], name: String) throws {
        try pool.with(retry: false) { c in
            try transaction(c) {
                try c.query("UPDATE store_meta SET value = $1 WHERE key = 'name' AND value = 'store'", [name])
                if !items.isEmpty { _ = try Self.upsert(items, c, created: nil) }
                guard !events.isEmpty else { return }
                let version = try c.query("SELECT value FROM store_meta WHERE key = 'catalog_version'").int(0, 0) + 1
                let added = try c.query("""
                    INSERT INTO items (item_id, version) SELECT DISTINCT unnest($1::text[]), $2::bigint
                    ON CONFLICT (item_id) DO NOTHING
                    """, [PGArray.text(events.map(\.itemId)), "\(version)"])
                _ = added
                try c.query("""
                    UPDATE store_meta SET value = $1 WHERE key = 'catalog_version'
                      AND EXISTS (SELECT 1 FROM items WHERE version = $1::bigint)
                    """, ["\(version)"])
                try c.query(Self.insertEvents, Self.eventParams(events, created: 0))
            }
        }
    }

    private func transaction<T>(_ c: PGConnection, _ body: () throws -> T) throws -> T {
        try c.execute("BEGIN")
        do {
            let result = try body()
            try c.execute("COMMIT")
            return result
        } catch {
            if c.isUsable { try? c.execute("ROLLBACK") }
            throw error
        }
    }

    // MARK: Reads (retried once on a fresh connection when the old one was lost)

    public func history(of user: String, limit: Int) throws -> UserEvents {
        try pool.with(retry: true) { c in
            let rows = try c.query("""
                SELECT i.item_id, e.time, e.kind, e.rating, e.idempotency_key, count(*) OVER ()
                FROM events e JOIN items i ON i.id = e.item_ref
                WHERE e.user_ref = (SELECT id FROM users WHERE user_id = $1)
                ORDER BY e.time DESC, e.seq DESC LIMIT $2
                """, [user, "\(limit)"])
            let events = (0..<rows.count).reversed().map { r in
                UserEvent(userId: user, itemId: rows.string(r, 0), timestamp: rows.int(r, 1), kind: rows.string(r, 2),
                          rating: rows.float(r, 3), idempotencyKey: rows.string(r, 4))
            }
            let total = rows.count > 0 ? Int(rows.int(0, 5)) : 0
            if total > 0 || limit > 0 { return UserEvents(events: events, total: total) }
            let count = try c.query("SELECT count(*) FROM events WHERE user_ref = (SELECT id FROM users WHERE user_id = $1)", [user])
            return UserEvents(events: [], total: Int(count.int(0, 0)))
        }
    }

    public func items(changedAfter version: UInt64) throws -> (items: [CatalogItem], version: UInt64) {
        try pool.with(retry: true) { c in
            try transaction(c) {
                let current = UInt64(try c.query("SELECT value FROM store_meta WHERE key = 'catalog_version'").int(0, 0))
                let rows = try c.query("""
                    SELECT item_id, title, year, genres::text, description, metadata::text, created FROM items
                    WHERE version > $1 ORDER BY id
                    """, ["\(version)"])
                let items = try (0..<rows.count).map { r in
                    CatalogItem(item: Item(id: rows.string(r, 0), title: rows.string(r, 1), year: Int(rows.int(r, 2)),
                                           genres: try GenresJSON.decode(rows.string(r, 3)), description: rows.string(r, 4)),
                                metadataJSON: rows.string(r, 5), created: rows.int(r, 6))
                }
                return (items, current)
            }
        }
    }

    public func forEachEvent(chunk: Int, _ body: ([UserEvent]) throws -> Void) throws {
        try pool.with(retry: false) { c in
            try c.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            do {
                try c.execute("""
                    DECLARE r2ec_events NO SCROLL CURSOR FOR
                    SELECT u.user_id, i.item_id, e.time, e.kind, e.rating, e.idempotency_key
                    FROM events e JOIN users u ON u.id = e.user_ref JOIN items i ON i.id = e.item_ref ORDER BY e.seq
                    """)
                while true {
                    let rows = try c.query("FETCH FORWARD \(chunk) FROM r2ec_events")
                    if rows.count == 0 { break }
                    try body((0..<rows.count).map { r in
                        UserEvent(userId: rows.string(r, 0), itemId: rows.string(r, 1), timestamp: rows.int(r, 2),
                                  kind: rows.string(r, 3), rating: rows.float(r, 4), idempotencyKey: rows.string(r, 5))
                    })
                }
                try c.execute("COMMIT")
            } catch {
                if c.isUsable { try? c.execute("ROLLBACK") }
                throw error
            }
        }
    }

    public func info() throws -> StoreInfo {
        try pool.with(retry: true) { c in
            let meta = try c.query("SELECT key, value FROM store_meta")
            var values: [String: String] = [:]
            for r in 0..<meta.count { values[meta.string(r, 0)] = meta.string(r, 1) }
            let counts = try c.query("""
                SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM users), (SELECT count(*) FROM events),
                       (SELECT coalesce(max(version), 0) FROM r2ec_migrations)
                """)
            return StoreInfo(name: values["name"] ?? "store", items: Int(counts.int(0, 0)), users: Int(counts.int(0, 1)),
                             events: Int(counts.int(0, 2)), catalogVersion: UInt64(values["catalog_version"] ?? "0") ?? 0,
                             schemaVersion: Int(counts.int(0, 3)))
        }
    }
}

/// Up to `size` connections, made when needed and replaced when found broken.
final class PGPool: @unchecked Sendable {
    private let uri: String
    private let location: String
    private let size: Int
    private let session: String
    private let condition = NSCondition()
    private var idle: [PGConnection] = []
    private var open = 0

    /// `session`: a statement run on every new connection (its settings).
    init(uri: String, location: String, size: Int, session: String) {
        self.uri = uri; self.location = location; self.size = size; self.session = session
    }

    /// Runs `body` on a live connection. With `retry`, a call that failed because the connection was lost runs
    /// once more on a new one (for reads only: a write's outcome is unknown once its connection is gone).
    func with<T>(retry: Bool, _ body: (PGConnection) throws -> T) throws -> T {
        let c = try checkout()
        do {
            let result = try body(c)
            checkin(c)
            return result
        } catch let e as StoreError {
            let lost = !c.isUsable
            checkin(lost ? nil : c)
            guard lost, retry, case .unavailable = e else { throw e }
            let fresh = try checkout()
            do {
                let result = try body(fresh)
                checkin(fresh)
                return result
            } catch {
                checkin(fresh.isUsable ? fresh : nil)
                throw error
            }
        } catch {
            checkin(c.isUsable ? c : nil)
            throw error
        }
    }

    private func checkout() throws -> PGConnection {
        condition.lock()
        while true {
            while let c = idle.popLast() {
                if c.isUsable { condition.unlock(); return c }
                open -= 1  // broken (server restarted): dropped, replaced below
            }
            if open < size { break }
            condition.wait()
        }
        open += 1
        condition.unlock()
        do {
            let c = try PGConnection(uri: uri, location: location)
            try c.execute(session)
            return c
        } catch {
            condition.lock(); open -= 1; condition.signal(); condition.unlock()
            throw error
        }
    }

    /// Returns a connection to the pool, or nil for one that was dropped.
    private func checkin(_ c: PGConnection?) {
        condition.lock()
        if let c { idle.append(c) } else { open -= 1 }
        condition.signal()
        condition.unlock()
    }

    func closeAll() {
        condition.lock()
        open -= idle.count
        idle.removeAll()
        condition.unlock()
    }
}
