// One PostgreSQL connection over libpq: statements with text parameters and text results, errors classified by
// SQLSTATE into StoreErrors, and a liveness check before use that notices a server restart (the server's goodbye
// sits unread on the idle socket) so the next statement goes to a fresh connection instead of failing.
import CLibPQ
import Data
import Foundation

final class PGConnection {
    private let conn: OpaquePointer
    let location: String

    /// Connects with libpq's URI (or key=value) syntax; a connect timeout of 5 s unless the URI sets one.
    init(uri: String, location: String) throws {
        self.location = location
        let timed = uri.contains("connect_timeout") ? uri : uri + (uri.contains("?") ? "&" : "?") + "connect_timeout=5"
        guard let c = PQconnectdb(timed) else { throw StoreError.unavailable("\(location): out of memory connecting") }
        guard PQstatus(c) == CONNECTION_OK else {
            let message = Self.text(PQerrorMessage(c))
            PQfinish(c)  // before `conn` is set: a throwing init that set every property would also run deinit
            throw StoreError.unavailable("\(location): cannot connect: \(message)")
        }
        conn = c
        // Server messages (NOTICEs) are not for our stderr.
        PQsetNoticeProcessor(c, { _, _ in }, nil)
    }

    deinit { PQfinish(conn) }

    /// False when the connection is known to be broken: a closed socket, or a message the server sent while we
    /// were idle (a restart's "terminating connection" FATAL) that leaves the connection unusable.
    var isUsable: Bool {
        guard PQstatus(conn) == CONNECTION_OK else { return false }
        let fd = PQsocket(conn)
        guard fd >= 0 else { return false }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 0) > 0 else { return true }  // nothing pending: presumed alive
        if PQconsumeInput(conn) == 0 { return false }
        while let n = PQnotifies(conn) { PQfreemem(n) }
        return PQstatus(conn) == CONNECTION_OK
    }

    /// Waits up to `milliseconds` for NOTIFY messages on the channels this connection LISTENs to and returns their
    /// payloads, oldest first (none when the wait ended quietly). Throws when the connection is lost.
    func notifications(waitingUpTo milliseconds: Int32) throws -> [String] {
        let fd = PQsocket(conn)
        guard fd >= 0 else { throw connectionError("LISTEN") }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        if poll(&p, 1, milliseconds) < 0 && errno != EINTR { throw connectionError("LISTEN") }
        guard PQconsumeInput(conn) == 1, PQstatus(conn) == CONNECTION_OK else { throw connectionError("LISTEN") }
        var payloads: [String] = []
        while let n = PQnotifies(conn) {
            payloads.append(String(cString: n.pointee.extra))
            PQfreemem(n)
        }
        return payloads
    }

    /// Runs one statement (parameters as text, nil for NULL) and returns its rows as text.
    @discardableResult
    func query(_ sql: String, _ params: [String?] = []) throws -> PGRows {
        let result: OpaquePointer? = withCStrings(params) { values in
            PQexecParams(conn, sql, Int32(params.count), nil, values, nil, nil, 0)
        }
        return try check(result, sql: sql)
    }

    /// Runs statements without parameters (several may be given separated by semicolons).
    func execute(_ sql: String) throws {
        try check(PQexec(conn, sql), sql: sql)
    }

    /// Streams rows into `COPY table (columns) FROM STDIN` in text format (bulk loads).
    func copyIn(_ sql: String, rows: [String]) throws {
        try check(PQexec(conn, sql), sql: sql, expect: PGRES_COPY_IN)
        for chunk in stride(from: 0, to: rows.count, by: 4096) {
            let text = rows[chunk..<min(rows.count, chunk + 4096)].joined()
            let sent = text.withCString { PQputCopyData(conn, $0, Int32(strlen($0))) }
            guard sent == 1 else { throw connectionError("COPY data") }
        }
        guard PQputCopyEnd(conn, nil) == 1 else { throw connectionError("COPY end") }
        try check(PQgetResult(conn), sql: sql)
        while let extra = PQgetResult(conn) { PQclear(extra) }
    }

    @discardableResult
    private func check(_ result: OpaquePointer?, sql: String, expect: ExecStatusType? = nil) throws -> PGRows {
        guard let result else { throw connectionError(sql) }
        let status = PQresultStatus(result)
        if status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || (expect != nil && status == expect!) {
            return PGRows(result)
        }
        let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
        let message = Self.text(PQresultErrorMessage(result))
        PQclear(result)
        if PQstatus(conn) != CONNECTION_OK { throw connectionError(sql) }
        throw Self.classify(state: state, message: "\(location): \(message)")
    }

    private func connectionError(_ what: String) -> StoreError {
        .unavailable("\(location): connection lost (\(Self.text(PQerrorMessage(conn))))")
    }

    /// SQLSTATE classes (PostgreSQL's appendix A) as store errors.
    static func classify(state: String, message: String) -> StoreError {
        switch state {
        case "53100": return .full(message)                                      // disk_full
        case "23503", "23502": return .rejected(field: "", message: message)     // foreign key / not null
        case _ where state.hasPrefix("23"): return .rejected(field: "", message: message)
        case _ where state.hasPrefix("08"), _ where state.hasPrefix("57"),       // connection, operator intervention
             _ where state.hasPrefix("53"), _ where state.hasPrefix("40"),       // resources, rollback (serialisation)
             "55P03":                                                            // lock not available
            return .unavailable(message)
        case _ where state.hasPrefix("42"), _ where state.hasPrefix("3D"), _ where state.hasPrefix("28"):
            return .unusable(message)                                            // schema, database, authorisation
        default: return .unavailable(message)
        }
    }

    static func text(_ p: UnsafePointer<CChar>?) -> String {
        p.map { String(cString: $0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
    }
}

/// The rows of one result, as text (nil for NULL).
final class PGRows {
    private let result: OpaquePointer
    let count: Int
    let columns: Int

    init(_ result: OpaquePointer) {
        self.result = result
        count = Int(PQntuples(result))
        columns = Int(PQnfields(result))
    }

    deinit { PQclear(result) }

    subscript(row: Int, column: Int) -> String? {
        PQgetisnull(result, Int32(row), Int32(column)) == 1 ? nil : String(cString: PQgetvalue(result, Int32(row), Int32(column)))
    }

    func string(_ row: Int, _ column: Int) -> String { self[row, column] ?? "" }
    func int(_ row: Int, _ column: Int) -> Int64 { Int64(self[row, column] ?? "") ?? 0 }
    func float(_ row: Int, _ column: Int) -> Float { Float(self[row, column] ?? "") ?? 0 }
}

/// Calls `body` with C strings for `values` (NULL for nil), valid during the call.
private func withCStrings<T>(_ values: [String?], _ body: ([UnsafePointer<CChar>?]) -> T) -> T {
    var pointers: [UnsafeMutablePointer<CChar>?] = values.map { $0.map { strdup($0) } ?? nil }
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeMutableBufferPointer { buffer in
        body(buffer.map { UnsafePointer($0) })
    }
}

/// PostgreSQL array literals in text format, for the `unnest($1::text[], ...)` statements that move a whole batch
/// in one parameter per column.
enum PGArray {
    static func text(_ values: [String?]) -> String {
        var out = "{"
        out.reserveCapacity(values.count * 12)
        for (i, v) in values.enumerated() {
            if i > 0 { out.append(",") }
            guard let v else { out.append("NULL"); continue }
            out.append("\"")
            for ch in v.unicodeScalars {
                if ch == "\"" || ch == "\\" { out.append("\\") }
                out.unicodeScalars.append(ch)
            }
            out.append("\"")
        }
        out.append("}")
        return out
    }

    static func numbers<T>(_ values: [T]) -> String { "{" + values.map { "\($0)" }.joined(separator: ",") + "}" }
}
