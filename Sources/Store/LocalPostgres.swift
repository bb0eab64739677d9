// A private PostgreSQL server from Debian's `postgresql` package, for the tests and `r2ec bench ingest`: initdb into
// a temporary directory, started by pg_ctl on a free loopback port with its socket in that directory, removed when
// the object goes. PostgreSQL refuses to run as root, so as root (CI) every server command runs as the `postgres`
// user the package creates. `psql` and `sqlite3` are run as independent peers (what did the store really write?).
import Data
import Foundation

/// Running the programs the store is checked and measured against.
public enum Programs {
    /// Runs a program and returns its stdout; fails with its stderr when it exits non-zero. posix_spawn + waitpid
    /// with output in temporary files: Foundation's Process.waitUntilExit hung here after pg_ctl (whose server keeps
    /// running as a grandchild).
    @discardableResult
    public static func run(_ path: String, _ arguments: [String], stdin: String = "/dev/null",
                           allowFailure: Bool = false) throws -> String {
        let base = NSTemporaryDirectory() + "r2ec-run-" + UUID().uuidString
        defer { unlink(base + ".out"); unlink(base + ".err") }
        var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, base + ".out", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, base + ".err", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard spawned == 0 else {
            throw ProgramFailure(command: path, status: -1, stderr: String(cString: strerror(spawned)))
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let out = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
        let exited = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        if exited != 0 && !allowFailure {
            throw ProgramFailure(command: ([path] + arguments).joined(separator: " "), status: exited,
                                 stderr: (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? "")
        }
        return out
    }

    /// A free TCP port on the loopback interface (bound, read, released).
    public static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// The sqlite3 shell on a store file (an independent reader).
    @discardableResult
    public static func sqlite3(_ path: String, _ sql: String) throws -> String {
        try run("/usr/bin/sqlite3", ["-batch", path, sql]).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

public struct ProgramFailure: Error, CustomStringConvertible {
    public let command: String
    public let status: Int32
    public let stderr: String
    public var description: String { "\(command) exited \(status): \(stderr)" }
}

/// A PostgreSQL server of our own, for as long as this object lives.
public final class LocalPostgres: @unchecked Sendable {
    public let directory: String
    public let port: Int
    public let bin: String
    private var databases = 0

    /// The cluster's binaries: the newest /usr/lib/postgresql/N/bin holding initdb.
    public static func binaries() throws -> String {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap { Int($0) }.sorted(by: >)
        for v in versions where FileManager.default.isExecutableFile(atPath: "\(root)/\(v)/bin/initdb") {
            return "\(root)/\(v)/bin"
        }
        throw ProgramFailure(command: "initdb", status: -1,
                             stderr: "no PostgreSQL server under \(root): install Debian's postgresql (make test does)")
    }

    public init() throws {
        bin = try Self.binaries()
        directory = NSTemporaryDirectory() + "r2ec-pg-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if getuid() == 0 { try Programs.run("/bin/chown", ["postgres:", directory]) }
        port = Programs.freePort()
        try asServerUser("\(bin)/initdb", ["-D", "\(directory)/data", "-U", "r2ec", "--auth=trust", "-E", "UTF8",
                                           "--no-sync", "--no-instructions"])
        try start()
    }

    deinit {
        _ = try? asServerUser("\(bin)/pg_ctl", ["-D", "\(directory)/data", "-m", "immediate", "-w", "stop"], allowFailure: true)
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A URI for a new, empty database of this server.
    public func newDatabase() throws -> String {
        databases += 1
        let name = "r2ec_test_\(databases)"
        try psql("CREATE DATABASE \(name)", database: "postgres")
        return uri(database: name)
    }

    public func uri(database: String) -> String { "postgres://r2ec@127.0.0.1:\(port)/\(database)" }

    public func start() throws {
        try asServerUser("\(bin)/pg_ctl", ["-D", "\(directory)/data", "-l", "\(directory)/log", "-w", "-t", "30", "-o",
                                           "-p \(port) -k \(directory) -c listen_addresses=127.0.0.1", "start"])
    }

    /// Stops the server: `fast` (clients disconnected, clean shutdown) or `immediate` (like a crash).
    public func stop(mode: String = "fast") throws {
        try asServerUser("\(bin)/pg_ctl", ["-D", "\(directory)/data", "-m", mode, "-w", "stop"])
    }

    /// Runs SQL through psql (an independent client) and returns its unaligned, tuples-only output.
    @discardableResult
    public func psql(_ sql: String, database: String) throws -> String {
        try Programs.run("/usr/bin/psql", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "r2ec", "-d", database, "-X", "-A",
                                         "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @discardableResult
    private func asServerUser(_ program: String, _ arguments: [String], allowFailure: Bool = false) throws -> String {
        if getuid() == 0 {
            return try Programs.run("/usr/sbin/runuser", ["-u", "postgres", "--", program] + arguments, allowFailure: allowFailure)
        }
        return try Programs.run(program, arguments, allowFailure: allowFailure)
    }
}

