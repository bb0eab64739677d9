// One writing r2ec per SQLite file. SQLite's own locks already keep two processes from corrupting the file (writes
// are serialised, WAL readers see consistent snapshots); what they cannot keep consistent is a server's in-memory
// state (user-history cache, catalogue) when another process writes behind it. So a writer takes an exclusive
// flock on PATH.lock, held until the process exits (a killed process releases it with its descriptors), and a
// second server or import on the same file is refused with the holder's pid. Readers (export, train) need no lock.
// A separate lock file, not the database: closing any descriptor of the database file would drop SQLite's POSIX
// locks held by this process.
import Data
import Foundation

final class WriterLock {
    let path: String
    private let fd: Int32

    init(database: String) throws {
        path = database + ".lock"
        fd = Foundation.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError.unusable("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            Foundation.close(fd)
            throw StoreError.unusable("\(database) is in use by another r2ec (pid \(holder ?? "?"), lock \(path)); "
                + "one server writes a SQLite store: stop it, or share a PostgreSQL store between servers")
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { write(fd, $0, strlen($0)) }
    }

    deinit { Foundation.close(fd) }
}
