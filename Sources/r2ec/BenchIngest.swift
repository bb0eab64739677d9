// `r2ec bench ingest`: RecordEvents throughput, closed loop (C clients, each sending a batch of B events and waiting
// for its acknowledgement = commit), into SQLite and PostgreSQL, beside each database's own bulk load of the same
// rows in the same run: the sqlite3 shell's .import, and psql's \copy (COPY FROM STDIN). The yardsticks load into
// the same schema and indexes in one transaction; RecordEvents acknowledges every batch of B on its own.
import ArgumentParser
import Data
import Foundation
import Store

struct BenchIngest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "RecordEvents into SQLite and PostgreSQL (closed loop) beside sqlite3 .import and psql \\copy of the same rows.")

    @Option(help: "Events recorded per store.") var events = 200_000
    @Option(help: "Events per RecordEvents batch.") var batch = 100
    @Option(help: "Clients, each with one batch in flight.") var clients = 16
    @Option(help: "Distinct users the events spread over.") var users = 20_000
    @Option(help: "Catalogue items.") var items = 1682
    @Option(help: "SQLite durability: full (fsync at every commit) or normal.") var synchronous = "full"
    @Option(help: "Stores to load: sqlite, postgres.") var stores: [String] = ["sqlite", "postgres"]
    @Option(help: "A PostgreSQL database to use (schemas r2ec_bench_* are created and dropped in it); default: a private server started for the run.")
    var postgres: String?
    @Option(help: "Directory for the SQLite files and the load files (default: a temporary one).") var workDir: String?
    @Option(help: "Write the results as JSON here.") var json: String?

    func validate() throws {
        guard (1...100_000_000).contains(events) else { throw ValidationError("--events: expected 1...100000000, got \(events)") }
        guard (1...100_000).contains(batch) else { throw ValidationError("--batch: expected 1...100000, got \(batch)") }
        guard (1...1024).contains(clients) else { throw ValidationError("--clients: expected 1...1024, got \(clients)") }
        guard users >= 1 else { throw ValidationError("--users: expected at least 1, got \(users)") }
        guard items >= 1 else { throw ValidationError("--items: expected at least 1, got \(items)") }
        guard SQLiteSync(rawValue: synchronous) != nil else { throw ValidationError("--synchronous: full or normal") }
        if let bad = stores.first(where: { !["sqlite", "postgres"].contains($0) }) {
            throw ValidationError("--stores: sqlite or postgres, got '\(bad)'")
        }
    }

    func run() throws {
        let dir = workDir ?? NSTemporaryDirectory() + "r2ec-bench-ingest-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if workDir == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let load = IngestLoad(events: events, users: users, items: items)
        try load.writeCSV(to: dir)
        Console.status("bench ingest: \(events) events over \(users) users and \(items) items, batches of \(batch), "
            + "\(clients) clients")
        print("| store | load | events/s | batch p50 ms | batch p99 ms | batches per commit | vs bulk load |")
        print("|---|---|---|---|---|---|---|")
        var rows: [[String: Any]] = []
        if stores.contains("sqlite") {
            let record = try recordEvents(url: "sqlite:\(dir)/record.sqlite?synchronous=\(synchronous)", load: load)
            let bulk = try sqliteImport(path: "\(dir)/import.sqlite", dir: dir, load: load)
            rows += report("SQLite (synchronous=\(synchronous))", record, bulk: bulk, bulkName: "sqlite3 shell .import")
        }
        if stores.contains("postgres") {
            var server: LocalPostgres?
            let base: String
            if let postgres { base = postgres } else {
                Console.status("starting a private PostgreSQL server")
                server = try LocalPostgres()
                base = server!.uri(database: "postgres")
            }
            let record = try withSchema(base, "r2ec_bench_record") { try recordEvents(url: $0, load: load) }
            let bulk = try withSchema(base, "r2ec_bench_copy") { try postgresCopy(url: $0, dir: dir, load: load) }
            rows += report("PostgreSQL \(server == nil ? "(--postgres)" : "(private server, fsync on)")", record, bulk: bulk,
                           bulkName: "psql \\copy")
            withExtendedLifetime(server) {}
        }
        if let json {
            let body = try JSONSerialization.data(withJSONObject: ["bench": "ingest", "rows": rows], options: [.prettyPrinted, .sortedKeys])
            try body.write(to: URL(fileURLWithPath: json))
        }
    }

    struct Outcome {
        var seconds: Double
        var latencies: [Double] = []
        var batchesPerCommit: Double = 0
        func percentile(_ p: Double) -> Double {
            guard !latencies.isEmpty else { return .nan }
            let s = latencies.sorted()
            return s[min(s.count - 1, Int(Double(s.count) * p / 100))]
        }
    }

    private func report(_ store: String, _ record: Outcome, bulk: Outcome, bulkName: String) -> [[String: Any]] {
        let rate = Double(events) / record.seconds, bulkRate = Double(events) / bulk.seconds
        print(String(format: "| %@ | RecordEvents, %d x %d in flight | %.0f | %.2f | %.2f | %.1f | %.2fx |", store, clients, batch,
                     rate, record.percentile(50) * 1e3, record.percentile(99) * 1e3, record.batchesPerCommit, rate / bulkRate))
        print(String(format: "| %@ | %@, one transaction | %.0f | - | - | - | 1 |", store, bulkName, bulkRate))
        return [["store": store, "load": "RecordEvents", "events_per_s": rate, "p50_ms": record.percentile(50) * 1e3,
                 "p99_ms": record.percentile(99) * 1e3, "batches_per_commit": record.batchesPerCommit],
                ["store": store, "load": bulkName, "events_per_s": bulkRate]]
    }

    /// The closed loop: every client takes the next batch of the load, records it, waits for the commit, repeats.
    private func recordEvents(url: String, load: IngestLoad) throws -> Outcome {
        let store = try Stores.open(url)
        defer { store.close() }
        _ = try store.upsertItems(load.catalog)
        let next = Counter(), failures = Counter()
        let latencies = LatencyLog()
        let group = DispatchGroup()
        let started = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<clients {
            let thread = Thread {
                var mine: [Double] = []
                while true {
                    let start = next.add(batch) - batch
                    if start >= load.events.count { break }
                    let slice = Array(load.events[start..<min(load.events.count, start + batch)])
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    do { _ = try store.recordAndWait(slice) } catch { failures.add(1); Console.status("RecordEvents: \(error)") }
                    mine.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                }
                latencies.append(mine)
                group.leave()
            }
            group.enter()
            thread.start()
        }
        group.wait()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        guard failures.value == 0 else { throw ValidationError("\(failures.value) RecordEvents batches failed") }
        let stored = try store.info().events
        guard stored == load.events.count else { throw ValidationError("\(url): \(stored) events stored, \(load.events.count) sent") }
        return Outcome(seconds: seconds, latencies: latencies.all, batchesPerCommit: store.writeStats.batchesPerCommit)
    }

    /// The same rows through the sqlite3 shell: users and events CSVs .import-ed into a fresh store file.
    private func sqliteImport(path: String, dir: String, load: IngestLoad) throws -> Outcome {
        let store = try Stores.open("sqlite:\(path)")
        _ = try store.upsertItems(load.catalog)
        store.close()
        let script = "\(dir)/import.sql"
        try """
            PRAGMA synchronous = \(synchronous.uppercased());
            BEGIN;
            .import --csv \(dir)/users.csv users
            .import --csv \(dir)/events.csv events
            COMMIT;

            """.write(toFile: script, atomically: true, encoding: .utf8)
        let t0 = DispatchTime.now().uptimeNanoseconds
        try Programs.run("/usr/bin/sqlite3", ["-batch", "-bail", path], stdin: script)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let stored = try Programs.sqlite3(path, "SELECT count(*) FROM events")
        guard stored == "\(load.events.count)" else { throw ValidationError("sqlite3 .import stored \(stored) events") }
        return Outcome(seconds: seconds)
    }

    /// The same rows through psql's \copy into a fresh schema.
    private func postgresCopy(url: String, dir: String, load: IngestLoad) throws -> Outcome {
        let store = try Stores.open(url)
        _ = try store.upsertItems(load.catalog)
        store.close()
        let script = "\(dir)/copy.sql"
        try """
            BEGIN;
            \\copy users (id, user_id, created) FROM '\(dir)/users.csv' WITH (FORMAT csv)
            \\copy events (seq, user_ref, item_ref, time, kind, rating, idempotency_key) FROM '\(dir)/events.csv' WITH (FORMAT csv)
            COMMIT;

            """.write(toFile: script, atomically: true, encoding: .utf8)
        let t0 = DispatchTime.now().uptimeNanoseconds
        try Programs.run("/usr/bin/psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", script])
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let count = try Programs.run("/usr/bin/psql", ["-X", "-A", "-t", "-d", url, "-c", "SELECT count(*) FROM events"])
        guard count.trimmingCharacters(in: .whitespacesAndNewlines) == "\(load.events.count)" else {
            throw ValidationError("psql \\copy stored \(count) events")
        }
        return Outcome(seconds: seconds)
    }

    /// Runs `body` with a URL whose tables live in a fresh schema `name` of `base`'s database, dropped afterwards.
    private func withSchema<T>(_ base: String, _ name: String, _ body: (String) throws -> T) throws -> T {
        try Programs.run("/usr/bin/psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", base, "-c",
                                           "DROP SCHEMA IF EXISTS \(name) CASCADE; CREATE SCHEMA \(name)"])
        defer { _ = try? Programs.run("/usr/bin/psql", ["-X", "-q", "-d", base, "-c", "DROP SCHEMA IF EXISTS \(name) CASCADE"]) }
        let separator = base.contains("?") ? "&" : "?"
        return try body(base + separator + "options=-csearch_path%3D\(name)")
    }
}

/// The rows both loads store: items, users and events with unique idempotency keys, as store calls and as CSV.
struct IngestLoad {
    let catalog: [CatalogItem]
    let userIds: [String]
    let events: [UserEvent]
    /// Dense user and item numbers of each event (the CSVs' row ids: 1-based).
    let userOf: [Int]
    let itemOf: [Int]

    init(events count: Int, users: Int, items: Int) {
        catalog = (0..<items).map { CatalogItem(item: Item(id: "item-\($0)", title: "Item \($0)")) }
        userIds = (0..<users).map { "user-\($0)" }
        var rng = SplitMix64(seed: 7)
        var userOf: [Int] = [], itemOf: [Int] = [], events: [UserEvent] = []
        userOf.reserveCapacity(count); itemOf.reserveCapacity(count); events.reserveCapacity(count)
        for i in 0..<count {
            let u = Int(rng.next() % UInt64(users)), it = Int(rng.next() % UInt64(items))
            userOf.append(u); itemOf.append(it)
            events.append(UserEvent(userId: "user-\(u)", itemId: "item-\(it)", timestamp: 1_700_000_000 + Int64(i),
                                    rating: Float(1 + i % 5), idempotencyKey: "ingest-\(i)"))
        }
        self.userOf = userOf; self.itemOf = itemOf; self.events = events
    }

    /// users.csv (id, user_id, created) and events.csv (seq, user_ref, item_ref, time, kind, rating, key): the rows
    /// RecordEvents creates, with row ids in order of first appearance (items got ids 1... from upsertItems).
    func writeCSV(to dir: String) throws {
        var firstSeen: [Int: Int] = [:]
        var users = "", events = ""
        for (i, e) in self.events.enumerated() {
            let ref: Int
            if let r = firstSeen[userOf[i]] { ref = r } else {
                ref = firstSeen.count + 1
                firstSeen[userOf[i]] = ref
                users += "\(ref),\(e.userId),0\n"
            }
            events += "\(i + 1),\(ref),\(itemOf[i] + 1),\(e.timestamp),\(e.kind),\(e.rating),\(e.idempotencyKey)\n"
        }
        try users.write(toFile: dir + "/users.csv", atomically: true, encoding: .utf8)
        try events.write(toFile: dir + "/events.csv", atomically: true, encoding: .utf8)
    }
}

/// A shared counter whose `add` returns the new value.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    @discardableResult
    func add(_ k: Int) -> Int { lock.lock(); defer { lock.unlock() }; n += k; return n }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}

final class LatencyLog: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Double] = []
    func append(_ v: [Double]) { lock.lock(); values += v; lock.unlock() }
    var all: [Double] { lock.lock(); defer { lock.unlock() }; return values }
}
