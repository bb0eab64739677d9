// The store contract against a real PostgreSQL server (started per test class by LocalPostgres, one database per
// test), plus what only a server can do to us: go away and come back.
import Data
import Foundation
@testable import Store
import XCTest

final class PostgresStoreTests: XCTestCase {
    static var server: LocalPostgres?

    override class func setUp() {
        super.setUp()
        do { server = try LocalPostgres() } catch { server = nil; print("cannot start PostgreSQL: \(error)") }
    }

    override class func tearDown() {
        server = nil
        super.tearDown()
    }

    func pg() throws -> LocalPostgres {
        guard let s = Self.server else { throw ProgramFailure(command: "LocalPostgres", status: -1, stderr: "not started") }
        return s
    }

    func contract(_ body: (StoreContract) throws -> Void) throws {
        let server = try pg()
        let uri = try server.newDatabase()
        let database = String(uri.split(separator: "/").last!)
        let store = try Stores.open(uri)
        defer { store.close() }
        try body(StoreContract(store: store, peer: { try server.psql($0, database: database) }))
    }

    func testRecordThenHistory() throws { try contract { try $0.recordThenHistoryOldestFirstWithTies() } }
    func testIdempotencyKeys() throws { try contract { try $0.idempotencyKeysMakeRetriesNoOps() } }
    func testUnknownItemRefusesItsBatchAlone() throws { try contract { try $0.unknownItemRefusesItsBatchAlone() } }
    func testConcurrentBatches() throws { try contract { try $0.concurrentBatchesAllLand() } }
    func testUpsertAndCatalogueVersions() throws { try contract { try $0.upsertCreatesUpdatesAndVersionsTheCatalogue() } }
    func testDeleteUser() throws { try contract { try $0.deleteUserErasesOnlyThatUser() } }
    func testForEachEvent() throws { try contract { try $0.forEachEventStreamsInRecordedOrder() } }
    func testImportExportRoundTrip() throws { try contract { try $0.importExportRoundTrip() } }

    func testSchemaIsMigratedOnceEvenWhenServersStartTogether() throws {
        let server = try pg()
        let uri = try server.newDatabase()
        let database = String(uri.split(separator: "/").last!)
        let opened = ResultsList<EventStore>()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            do { opened.append(try Stores.open(uri)) } catch { XCTFail("\(error)") }
        }
        for s in opened.all { s.close() }
        XCTAssertEqual(try server.psql("SELECT version, name FROM r2ec_migrations ORDER BY version", database: database),
                       "1|items, users, events\n2|user change notifications")
        let indexes = try server.psql("SELECT indexname FROM pg_indexes WHERE tablename = 'events' ORDER BY indexname",
                                      database: database)
        XCTAssertEqual(indexes.split(separator: "\n"), ["events_idempotency_key_key", "events_pkey", "events_user_time"])
    }

    func testNewerSchemaIsRefused() throws {
        let server = try pg()
        let uri = try server.newDatabase()
        try Stores.open(uri).close()
        try server.psql("INSERT INTO r2ec_migrations VALUES (99, 'from the future', 0)", database: String(uri.split(separator: "/").last!))
        XCTAssertThrowsError(try Stores.open(uri)) { error in
            guard case .unusable(let m) = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertTrue(m.contains("schema version 99"), m)
        }
    }

    /// Two stores on one database (two replicas): each hears the users the other recorded events for or deleted,
    /// and those a third writer (psql) changed, never its own writes; in commit order, so once a later change is
    /// heard, an earlier own write would have been too.
    func testEachStoreHearsTheUsersOthersChanged() throws {
        let server = try pg()
        let pair = try FollowedPair(server, items: ["1", "2"])
        defer { pair.close() }
        let (one, other, heard, gaps) = (pair.one, pair.other, pair.heard, pair.gaps)

        _ = try other.recordAndWait([UserEvent(userId: "own write", itemId: "1", timestamp: 1)])
        _ = try one.recordAndWait([UserEvent(userId: "u 1", itemId: "1", timestamp: 1),
                                   UserEvent(userId: "u 1", itemId: "2", timestamp: 2),
                                   UserEvent(userId: "u2", itemId: "2", timestamp: 3)])
        XCTAssertTrue(wait(until: { Set(heard.all) == ["u 1", "u2"] }), "heard \(heard.all)")
        XCTAssertEqual(heard.all.count, 2, "one notification per user and transaction: \(heard.all)")

        XCTAssertEqual(try one.deleteUser("u2"), 1)
        XCTAssertTrue(wait(until: { heard.all.count == 3 }), "heard \(heard.all)")
        XCTAssertEqual(heard.all.last, "u2")

        try server.psql("INSERT INTO users (user_id) VALUES ('from psql');" +
                        "INSERT INTO events (user_ref, item_ref, time, kind) SELECT u.id, i.id, 5, 'view' " +
                        "FROM users u, items i WHERE u.user_id = 'from psql' AND i.item_id = '1'", database: pair.database)
        XCTAssertTrue(wait(until: { heard.all.count == 4 }), "heard \(heard.all)")
        XCTAssertEqual(heard.all.last, "from psql")
        XCTAssertFalse(heard.all.contains("own write"))
        XCTAssertEqual(gaps.all.count, 1)
    }

    /// The listening connection is cut (its backend terminated): the follower listens again, reports a gap once
    /// it does (what was written meanwhile was not heard), and hears later changes.
    func testALostListenerReportsGapsAndListensAgain() throws {
        let server = try pg()
        let pair = try FollowedPair(server, items: ["1"])
        defer { pair.close() }
        let (one, heard, gaps) = (pair.one, pair.heard, pair.gaps)
        try server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN r2ec_users'",
                        database: pair.database)
        XCTAssertTrue(wait(until: { gaps.all.count >= 2 }), "gaps \(gaps.all.count)")
        Thread.sleep(forTimeInterval: 0.2)
        _ = try one.recordAndWait([UserEvent(userId: "after", itemId: "1", timestamp: 1)])
        XCTAssertTrue(wait(until: { heard.all.contains("after") }), "heard \(heard.all)")
    }

    func testNotificationPayloadsSplitAtTheFirstSpace() {
        XCTAssertEqual(PGUserChanges.users(["abc u1", "me u2", " u 3", "junk"], except: "me"), ["u1", "u 3"])
    }

    /// One statement of another writer (psql) recording events for 300 users is heard whole.
    func testManyUsersInOneStatementAreHeard() throws {
        let server = try pg()
        let pair = try FollowedPair(server, items: ["1"])
        defer { pair.close() }
        let heard = pair.heard
        let users = (0..<300).map { "user-\($0)-" + String(repeating: "x", count: 60) }  // ~20,000 bytes of ids
        let values = users.map { "('\($0)')" }.joined(separator: ",")
        _ = try server.psql("""
            INSERT INTO users (user_id) VALUES \(values);
            INSERT INTO events (user_ref, item_ref, time, kind) SELECT u.id, i.id, 1, 'interaction' FROM users u, items i;
            """, database: pair.database)
        XCTAssertTrue(wait(until: { Set(heard.all).isSuperset(of: users) }), "heard \(Set(heard.all).intersection(users).count) of 300")
    }

    /// Two stores on one new database holding `items`; `other` follows the user changes and has reported its first
    /// gap, so it listens (the gap is reported after LISTEN).
    final class FollowedPair {
        let one: EventStore, other: EventStore, database: String
        let heard = ResultsList<String>(), gaps = ResultsList<Int>()

        init(_ server: LocalPostgres, items: [String]) throws {
            let uri = try server.newDatabase()
            database = String(uri.split(separator: "/").last!)
            one = try Stores.open(uri)
            other = try Stores.open(uri)
            _ = try one.upsertItems(StoreContract.catalog(items))
            let (heard, gaps) = (heard, gaps)
            other.followUserChanges(changed: { for u in $0 { heard.append(u) } }, gap: { gaps.append(1) })
            XCTAssertTrue(PostgresStoreTests.wait(until: { gaps.all.count >= 1 }), "no gap reported once listening")
            Thread.sleep(forTimeInterval: 0.2)  // LISTEN has reached the server
        }

        func close() { one.close(); other.close() }
    }

    private func wait(until condition: () -> Bool, seconds: Double = 10) -> Bool {
        Self.wait(until: condition, seconds: seconds)
    }

    static func wait(until condition: () -> Bool, seconds: Double = 10) -> Bool {
        let end = Date(timeIntervalSinceNow: seconds)
        while Date() < end {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return condition()
    }

    /// Nobody listening: UNAVAILABLE at once, not a hang.
    func testServerDownIsUnavailable() {
        let started = Date()
        XCTAssertThrowsError(try Stores.open("postgres://r2ec@127.0.0.1:\(Programs.freePort())/postgres")) { error in
            guard case .unavailable = error as? StoreError else { return XCTFail("\(error)") }
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
    }

    /// PostgreSQL restarted in the middle of a load: writes while it is down fail UNAVAILABLE (retryable), writes
    /// after it is back succeed on new connections, reads too, and every acknowledged event is in the database.
    func testRestartInTheMiddleOfALoad() throws {
        let server = try pg()
        let uri = try server.newDatabase()
        let database = String(uri.split(separator: "/").last!)
        let store = try Stores.open(uri)
        defer { store.close() }
        _ = try store.upsertItems(StoreContract.catalog(["1", "2", "3"]))
        let acknowledged = Counter(), failed = Counter(), keys = KeySet()
        let stop = Flag()
        let writers = DispatchGroup()
        for w in 0..<4 {
            DispatchQueue.global().async(group: writers) {
                var b = 0
                while !stop.isSet {
                    let events = (0..<50).map { i in
                        UserEvent(userId: "w\(w)-\(i % 7)", itemId: "2", timestamp: Int64(b), idempotencyKey: "w\(w)-b\(b)-\(i)")
                    }
                    do {
                        acknowledged.add(try store.recordAndWait(events).recorded)
                        keys.add(events.map(\.idempotencyKey))
                    } catch StoreError.unavailable {
                        failed.add(1)
                        Thread.sleep(forTimeInterval: 0.01)
                    } catch {
                        XCTFail("unexpected \(error)")
                    }
                    b += 1
                }
            }
        }
        Thread.sleep(forTimeInterval: 0.5)
        try server.stop(mode: "fast")
        Thread.sleep(forTimeInterval: 0.3)
        XCTAssertThrowsError(try store.history(of: "w0-0", limit: 1))
        try server.start()
        let before = acknowledged.value
        Thread.sleep(forTimeInterval: 1.0)
        stop.set()
        writers.wait()
        XCTAssertGreaterThan(failed.value, 0, "no write saw the server down")
        XCTAssertGreaterThan(acknowledged.value, before, "no write succeeded after the restart")
        XCTAssertGreaterThan(try store.history(of: "w0-0", limit: 1).total, 0)
        // Every acknowledged event is there (a batch whose connection died during its commit may be there too
        // without an acknowledgement: its outcome was unknown, which is what idempotency keys are for).
        let stored = Set(try server.psql("SELECT idempotency_key FROM events", database: database).split(separator: "\n").map(String.init))
        XCTAssertEqual(keys.all.subtracting(stored), [])
        XCTAssertEqual(keys.all.count, acknowledged.value)
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add(_ k: Int) { lock.lock(); n += k; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}

final class KeySet: @unchecked Sendable {
    private let lock = NSLock()
    private var keys = Set<String>()
    func add(_ k: [String]) { lock.lock(); keys.formUnion(k); lock.unlock() }
    var all: Set<String> { lock.lock(); defer { lock.unlock() }; return keys }
}

final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var on = false
    func set() { lock.lock(); on = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return on }
}

/// A list appended to from several threads.
final class ResultsList<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [T] = []
    func append(_ s: T) { lock.lock(); items.append(s); lock.unlock() }
    var all: [T] { lock.lock(); defer { lock.unlock() }; return items }
}
