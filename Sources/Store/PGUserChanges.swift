// Cross-replica cache invalidation for a shared PostgreSQL store. Each server caches user histories written through
// only by its own RecordEvents calls; the store's triggers (Schema migration 2) NOTIFY channel r2ec_users with
// "<instance> <user id>" for every user a committed statement recorded events for or deleted. The follower LISTENs
// on a connection of its own and hands those users on (the server drops them from its cache), skipping the ones its
// own store instance wrote (already written through). Notifications sent while it was not listening are lost: the
// follower reconnects with backoff and reports a gap (drop every cached user) each time it listens anew.
import Data
import Foundation

final class PGUserChanges: @unchecked Sendable {
    static let channel = "r2ec_users"

    private let uri: String
    private let location: String
    private let instance: String
    private let changed: @Sendable ([String]) -> Void
    private let gap: @Sendable () -> Void
    private let state = NSCondition()
    private var stopping = false
    private var running = true

    init(uri: String, location: String, instance: String, changed: @escaping @Sendable ([String]) -> Void,
         gap: @escaping @Sendable () -> Void) {
        self.uri = uri; self.location = location; self.instance = instance
        self.changed = changed; self.gap = gap
        let t = Thread { [self] in run() }
        t.name = "r2ec-pg-listen"
        t.start()
    }

    /// The users of NOTIFY payloads that another writer sent ("<instance> <user id>"; the user id may hold spaces).
    static func users(_ payloads: [String], except instance: String) -> [String] {
        payloads.compactMap { p in
            guard let space = p.firstIndex(of: " ") else { return nil }
            return p[..<space] == instance ? nil : String(p[p.index(after: space)...])
        }
    }

    /// Stops listening; returns once the listening thread has ended (within about 250 ms).
    func stop() {
        state.lock()
        stopping = true
        state.broadcast()
        while running { state.wait() }
        state.unlock()
    }

    private var isStopping: Bool {
        state.lock(); defer { state.unlock() }
        return stopping
    }

    private func run() {
        var backoff = 0.05
        while !isStopping {
            do {
                let c = try PGConnection(uri: uri, location: location)
                try c.execute("LISTEN \(Self.channel)")
                gap()  // whatever changed before LISTEN took effect was not heard
                backoff = 0.05
                while !isStopping {
                    let users = Self.users(try c.notifications(waitingUpTo: 250), except: instance)
                    if !users.isEmpty { changed(users) }
                }
            } catch {
                // No gap yet: while the store is down nobody writes, and cached users keep being served; what
                // others wrote while we were not listening is dropped by the gap reported once we listen again.
                FileHandle.standardError.write(Data("r2ec: \(location): listening for other replicas' writes: \(error); retrying in \(backoff) s\n".utf8))
                state.lock()
                if !stopping { _ = state.wait(until: Date(timeIntervalSinceNow: backoff)) }
                state.unlock()
                backoff = min(backoff * 2, 5)
            }
        }
        state.lock()
        running = false
        state.broadcast()
        state.unlock()
    }
}
