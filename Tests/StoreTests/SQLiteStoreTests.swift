import Data
import Foundation
import GRDB
@testable import Store
import XCTest

final class SQLiteStoreTests: XCTestCase {
    var directory = ""
    var path: String { directory + "/store.sqlite" }

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "r2ec-sqlite-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: directory) }

    func contract(_ body: (StoreContract) throws -> Void) throws {
        let store = try Stores.open("sqlite:\(path)")
        defer { store.close() }
        try body(StoreContract(store: store, peer: { try Programs.sqlite3(self.path, $0) }))
    }

    func testRecordThenHistory() throws { try contract { try $0.recordThenHistoryOldestFirstWithTies() } }
    func testIdempotencyKeys() throws { try contract { try $0.idempotencyKeysMakeRetriesNoOps() } }
    func testUnknownItemRefusesItsBatchAlone() throws { try contract { try $0.unknownItemRefusesItsBatchAlone() } }
    func testConcurrentBatches() throws { try contract { try $0.concurrentBatchesAllLand() } }
    func testUpsertAndCatalogueVersions() throws { try contract { try $0.upsertCreatesUpdatesAndVersionsTheCatalogue() } }
    func testDeleteUser() throws { try contract { try $0.deleteUserErasesOnlyThatUser() } }
    func testForEachEvent() throws { try contract { try $0.forEachEventStreamsInRecordedOrder() } }
    func testImportExportRoundTrip() throws { try contract { try $0.importExportRoundTrip() } }

    /// The file is a real WAL-mode SQLite database with our schema, as the sqlite3 shell sees it.
    func testFileIsWALWithVersionedSchema() throws {
        let store = try Stores.open("sqlite:\(path)?synchronous=normal")
        store.close()
        XCTAssertEqual(try Programs.sqlite3(path, "PRAGMA journal_mode"), "wal")
        XCTAssertEqual(try Programs.sqlite3(path, "SELECT version, name FROM r2ec_migrations ORDER BY version"),
                       "1|items, users, events\n2|user change notifications")
        XCTAssertEqual(try Programs.sqlite3(path, "PRAGMA integrity_check"), "ok")
        let indexes = try Programs.sqlite3(path, "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        XCTAssertEqual(indexes.split(separator: "\n"), ["events_user_time", "items_version"])
        // The latest-N query uses the (user, time, seq) index, not a scan.
        let plan = try Programs.sqlite3(path, "EXPLAIN QUERY PLAN SELECT * FROM events WHERE user_ref = 1 ORDER BY time DESC, seq DESC LIMIT 10")
        XCTAssertTrue(plan.contains("USING INDEX events_user_time"), plan)
    }

    /// The durability setting reaches every connection.
    func testSynchronousSetting() throws {
        for (option, expected) in [("", "2"), ("?synchronous=normal", "1"), ("?synchronous=full", "2")] {
            let store = try SQLiteStore(path: path, sync: try syncOf("sqlite:\(path)\(option)"))
            XCTAssertEqual(try store.pool.read { try Int.fetchOne($0, sql: "PRAGMA synchronous") }, Int(expected), option)
            XCTAssertEqual(try store.pool.write { try Int.fetchOne($0, sql: "PRAGMA synchronous") }, Int(expected), option)
            store.close()
        }
    }

    private func syncOf(_ url: String) throws -> SQLiteSync {
        guard case let .sqlite(_, sync, _, _) = try StoreURL(url) else { throw StoreError.unusable(url) }
        return sync
    }

    /// Two writers on one file: the second is refused with the holder's pid; readers are not; the lock goes with
    /// the first store.
    func testSecondWriterIsRefused() throws {
        let first = try Stores.open("sqlite:\(path)")
        XCTAssertThrowsError(try Stores.open("sqlite:\(path)")) { error in
            guard case .unusable(let m) = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertTrue(m.contains("in use by another r2ec (pid \(getpid())"), m)
        }
        let reader = try Stores.open("sqlite:\(path)", writer: false)
        XCTAssertEqual(try reader.info().events, 0)
        reader.close()
        first.close()
        try Stores.open("sqlite:\(path)").close()
    }

    /// The lock also holds across processes: flock(1) from util-linux cannot take it while a store is open.
    func testWriterLockHoldsAgainstOtherProcesses() throws {
        let store = try Stores.open("sqlite:\(path)")
        XCTAssertThrowsError(try Programs.run("/usr/bin/flock", ["-n", path + ".lock", "true"]),
                             "flock -n must fail while the store holds the lock")
        store.close()
        try Programs.run("/usr/bin/flock", ["-n", path + ".lock", "true"])
    }

    /// A full database (here its size limit, the same SQLITE_FULL a full disk gives): the batch is refused with a
    /// `full` error, every batch acknowledged before is there, reads go on, and writes work again once there is room.
    func testFullStoreRefusesWithoutLosingAcknowledgedEvents() throws {
        do {
            let store = try Stores.open("sqlite:\(path)?max_bytes=400000")
            defer { store.close() }
            _ = try store.upsertItems(StoreContract.catalog(["1", "2"]))
            var acknowledged = 0, full = false
            for b in 0..<10_000 where !full {
                let events = (0..<100).map { i in
                    UserEvent(userId: "user-\(b)-\(i)", itemId: "1", timestamp: Int64(i), idempotencyKey: "key-\(b)-\(i)")
                }
                do {
                    acknowledged += try store.recordAndWait(events).recorded
                } catch StoreError.full(let m) {
                    XCTAssertTrue(m.contains("full"), m)
                    full = true
                }
            }
            XCTAssertTrue(full, "the size limit was never reached")
            XCTAssertGreaterThan(acknowledged, 0)
            XCTAssertEqual(try store.info().events, acknowledged)
            XCTAssertEqual(try Programs.sqlite3(path, "SELECT count(*) FROM events"), "\(acknowledged)")
            XCTAssertEqual(try store.history(of: "user-0-0", limit: 5).total, 1)
        }
        // More room: the same store takes writes again.
        let store = try Stores.open("sqlite:\(path)")
        defer { store.close() }
        XCTAssertEqual(try store.recordAndWait([UserEvent(userId: "later", itemId: "2", timestamp: 1)]).recorded, 1)
        XCTAssertEqual(try Programs.sqlite3(path, "PRAGMA integrity_check"), "ok")
    }

    func testNotADatabaseIsUnusable() throws {
        try "hello, this is not SQLite\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Stores.open("sqlite:\(path)")) { error in
            guard case .unusable = error as? StoreError else { return XCTFail("\(error)") }
        }
    }

    func testNewerSchemaIsRefused() throws {
        try Stores.open("sqlite:\(path)").close()
        try Programs.sqlite3(path, "INSERT INTO r2ec_migrations VALUES (99, 'from the future', 0)")
        XCTAssertThrowsError(try Stores.open("sqlite:\(path)")) { error in
            guard case .unusable(let m) = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertTrue(m.contains("schema version 99"), m)
        }
    }

    func testReadOnlyOpenNeedsAStore() throws {
        XCTAssertThrowsError(try Stores.open("sqlite:\(path)", writer: false))
        XCTAssertThrowsError(try Stores.open("sqlite:\(directory)/no/such/dir/x.sqlite"))
    }

    func testURLs() throws {
        XCTAssertEqual(try StoreURL("sqlite:data/r2ec.sqlite"), .sqlite(path: "data/r2ec.sqlite", sync: .full, maxBytes: nil, busyTimeoutMs: 5000))
        XCTAssertEqual(try StoreURL("sqlite:///tmp/x.db?synchronous=NORMAL&max_bytes=10"),
                       .sqlite(path: "/tmp/x.db", sync: .normal, maxBytes: 10, busyTimeoutMs: 5000))
        XCTAssertEqual(try StoreURL("postgres://u:secret@h:5432/db").redacted, "postgres://u:***@h:5432/db")
        for bad in ["mysql://x", "sqlite:", "sqlite:x?synchronous=off", "sqlite:x?max_bytes=-1", "sqlite:x?color=red"] {
            XCTAssertThrowsError(try StoreURL(bad), bad)
        }
    }
}
