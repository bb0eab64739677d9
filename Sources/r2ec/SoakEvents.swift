// The soak's Events traffic (`r2ec bench soak` against `serve --store sqlite:PATH`) and its bookkeeping: every
// RecordEvents the server acknowledged is remembered by its events' idempotency keys, every user whose DeleteUser was
// acknowledged by name. After the server has exited, the sqlite3 shell (a reader independent of r2ec's store code)
// reads the file: an acknowledged key missing, or an event left for a deleted user, is a lost call.
// Requests are written here byte by byte from events.proto (field numbers and wire types), not with r2ec's codec.
import ArgumentParser
import Foundation

enum SoakWire {
    static func varint(_ v: UInt64) -> [UInt8] {
        var v = v, out: [UInt8] = []
        while v >= 0x80 { out.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
        return out + [UInt8(v)]
    }

    /// A length-delimited field (wire type 2): strings and sub-messages.
    static func bytes(_ field: UInt64, _ value: [UInt8]) -> [UInt8] {
        varint(field << 3 | 2) + varint(UInt64(value.count)) + value
    }

    static func string(_ field: UInt64, _ value: String) -> [UInt8] { bytes(field, Array(value.utf8)) }

    static func uint(_ field: UInt64, _ value: UInt64) -> [UInt8] { varint(field << 3) + varint(value) }

    /// The varint fields of a message (field number -> value; other wire types skipped), for the small responses.
    static func varints(_ payload: [UInt8]) -> [UInt64: UInt64] {
        var out: [UInt64: UInt64] = [:]
        var i = 0
        func next() -> UInt64? {
            var v: UInt64 = 0, shift: UInt64 = 0
            while i < payload.count, shift < 64 {
                let b = payload[i]
                i += 1
                v |= UInt64(b & 0x7f) << shift
                if b < 0x80 { return v }
                shift += 7
            }
            return nil
        }
        while i < payload.count, let key = next() {
            switch key & 7 {
            case 0: guard let v = next() else { return out }; out[key >> 3] = v
            case 1: i += 8
            case 2: guard let n = next() else { return out }; i += Int(n)
            case 5: i += 4
            default: return out
            }
        }
        return out
    }

    // Events (Protos/r2ec/v1/events.proto).

    /// RecordEventsRequest: one Event (user_id 1, item_id 2, kind 4, idempotency_key 6) per (user, item, key).
    static func recordEvents(_ events: [(user: String, item: String, key: String)]) -> [UInt8] {
        events.flatMap { e in
            bytes(1, string(1, e.user) + string(2, e.item) + string(4, "view") + string(6, e.key))
        }
    }

    /// UpsertItemsRequest of one ItemRecord (item_id 1, title 2, year 3, genres 4).
    static func upsertItem(id: String, title: String, year: Int) -> [UInt8] {
        bytes(1, string(1, id) + string(2, title) + uint(3, UInt64(year)) + string(4, "Soak"))
    }

    static func getUserHistory(_ user: String, limit: Int) -> [UInt8] { string(1, user) + uint(2, UInt64(limit)) }
    static func deleteUser(_ user: String) -> [UInt8] { string(1, user) }
}

/// What the server acknowledged, across the client threads.
final class SoakLedger: @unchecked Sendable {
    private let lock = NSLock()
    private var acknowledgedKeys: [String] = []
    private var deletedUsers: [String] = []

    func acknowledged(_ keys: [String]) { lock.lock(); acknowledgedKeys += keys; lock.unlock() }
    func deleted(_ user: String) { lock.lock(); deletedUsers.append(user); lock.unlock() }

    struct Check {
        var acknowledgedEvents = 0, missingEvents = 0, deletedUsers = 0, eventsOfDeletedUsers = 0, storedSoakEvents = 0
        var lost: Int { missingEvents + eventsOfDeletedUsers }
    }

    /// Reads the store with the sqlite3 shell (after the server has exited) and compares.
    func check(sqlitePath: String) throws -> Check {
        lock.lock(); defer { lock.unlock() }
        let keys = Set(try Self.sqlite3(sqlitePath, "SELECT idempotency_key FROM events WHERE idempotency_key LIKE 'soak-%';"))
        let leftOfDeleted = Set(try Self.sqlite3(sqlitePath, """
            SELECT DISTINCT u.user_id FROM events e JOIN users u ON u.id = e.user_ref WHERE u.user_id LIKE 'soak-d-%';
            """))
        var c = Check()
        c.acknowledgedEvents = acknowledgedKeys.count
        c.missingEvents = acknowledgedKeys.filter { !keys.contains($0) }.count
        c.deletedUsers = deletedUsers.count
        c.eventsOfDeletedUsers = deletedUsers.filter { leftOfDeleted.contains($0) }.count
        c.storedSoakEvents = keys.count
        return c
    }

    /// The rows of `sql`, one string per line, from `sqlite3 PATH SQL`.
    static func sqlite3(_ path: String, _ sql: String) throws -> [String] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["sqlite3", path, sql]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw ValidationError("sqlite3 \(path) exited with code \(p.terminationStatus) (is the sqlite3 shell installed?)")
        }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}
