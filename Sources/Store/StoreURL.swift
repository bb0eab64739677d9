// `--store URL`: which store, where, and its settings.
//   sqlite:PATH[?synchronous=full|normal&max_bytes=N&busy_timeout_ms=N]
//   postgres://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE[?connect_timeout=S&...]   (postgresql:// too; libpq's URI)
import Data
import Foundation

/// How a SQLite commit reaches the disk (`PRAGMA synchronous` in WAL mode).
public enum SQLiteSync: String, Sendable, CaseIterable {
    /// The WAL is fsynced at every commit: an acknowledged write survives a process kill and a power loss.
    case full
    /// The WAL is written at every commit and fsynced at checkpoints: an acknowledged write survives a process kill
    /// (the OS holds the written pages), but a power loss or OS crash may roll back the last commits.
    case normal
}

public enum StoreURL: Sendable, Equatable {
    case sqlite(path: String, sync: SQLiteSync, maxBytes: Int64?, busyTimeoutMs: Int)
    /// A libpq connection URI, passed to libpq as given.
    case postgres(uri: String)

    public static let usage = "sqlite:PATH[?synchronous=full|normal&max_bytes=N] or postgres://USER@HOST:PORT/DATABASE"

    public init(_ text: String) throws {
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(uri: text)
            return
        }
        guard text.hasPrefix("sqlite:") else {
            throw StoreError.unusable("'\(text)' is not a store URL (\(StoreURL.usage))")
        }
        var rest = String(text.dropFirst("sqlite:".count))
        if rest.hasPrefix("//") { rest.removeFirst(2) }  // sqlite:///abs/path and sqlite://rel/path read as paths
        var sync = SQLiteSync.full, maxBytes: Int64?, busy = 5000
        if let q = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: q)...].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2 else { throw StoreError.unusable("store URL option '\(pair)' is not key=value") }
                switch kv[0] {
                case "synchronous":
                    guard let s = SQLiteSync(rawValue: kv[1].lowercased()) else {
                        throw StoreError.unusable("synchronous=\(kv[1]): expected full or normal")
                    }
                    sync = s
                case "max_bytes":
                    guard let n = Int64(kv[1]), n > 0 else { throw StoreError.unusable("max_bytes=\(kv[1]): expected a positive integer") }
                    maxBytes = n
                case "busy_timeout_ms":
                    guard let n = Int(kv[1]), n >= 0 else { throw StoreError.unusable("busy_timeout_ms=\(kv[1]): expected an integer >= 0") }
                    busy = n
                default:
                    throw StoreError.unusable("unknown store URL option '\(kv[0])' (synchronous, max_bytes, busy_timeout_ms)")
                }
            }
            rest = String(rest[..<q])
        }
        guard !rest.isEmpty else { throw StoreError.unusable("sqlite: needs a file path (\(StoreURL.usage))") }
        self = .sqlite(path: rest, sync: sync, maxBytes: maxBytes, busyTimeoutMs: busy)
    }

    /// The URL without a password, for logs and messages.
    public var redacted: String {
        switch self {
        case let .sqlite(path, sync, maxBytes, _):
            return "sqlite:\(path)" + (sync == .full ? "" : "?synchronous=\(sync.rawValue)") + (maxBytes.map { " (max \($0) bytes)" } ?? "")
        case .postgres(let uri):
            guard var c = URLComponents(string: uri) else { return "postgres://(unparsed)" }
            if c.password != nil { c.password = "***" }
            return c.string ?? "postgres://(unparsed)"
        }
    }
}

/// Opening a store by URL.
public enum Stores {
    /// Opens (creating a SQLite file when missing) and migrates the store at `url`. `writer` takes the SQLite
    /// file's writer lock, so that a second server on the same file is refused (read-only users pass false).
    public static func open(_ url: String, writer: Bool = true) throws -> EventStore {
        switch try StoreURL(url) {
        case let .sqlite(path, sync, maxBytes, busy):
            return try SQLiteStore(path: path, sync: sync, maxBytes: maxBytes, busyTimeoutMs: busy, writer: writer)
        case .postgres(let uri):
            return try PostgresStore(uri: uri)
        }
    }
}
