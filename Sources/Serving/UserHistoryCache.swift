// The live loop's user-history cache: for each cached user, the latest events (oldest first, at most
// `eventsPerUser`) and how many the store holds in all, under a byte budget with least-recently-used eviction.
// Written through (RecordEvents adds a batch's events after their commit), filled from the store on a miss, dropped
// by DeleteUser. A fill that raced a write or a delete of the same user is not installed: it may have read the store
// before that write committed.
import Data
import Foundation

public final class UserHistoryCache: @unchecked Sendable {
    /// One event as the cache keeps it (the user is the key).
    public struct Event: Sendable, Equatable {
        public var itemId: String
        public var timestamp: Int64
        public var kind: String
        public var rating: Float
        public var idempotencyKey: String

        public init(_ e: UserEvent) {
            itemId = e.itemId; timestamp = e.timestamp; kind = e.kind; rating = e.rating; idempotencyKey = e.idempotencyKey
        }

        public func userEvent(_ user: String) -> UserEvent {
            UserEvent(userId: user, itemId: itemId, timestamp: timestamp, kind: kind, rating: rating,
                      idempotencyKey: idempotencyKey)
        }

        /// Bytes held: the struct, plus the heap copies of strings too long to be stored inline (over 15 bytes).
        var bytes: Int {
            MemoryLayout<Event>.stride + [itemId, kind, idempotencyKey].reduce(0) { $0 + ($1.utf8.count > 15 ? $1.utf8.count + 32 : 0) }
        }
    }

    public struct Entry: Sendable, Equatable {
        /// The latest events, oldest first; ties in time keep the order they were recorded in.
        public var events: [Event]
        /// Events the store holds for the user (>= events.count).
        public var total: Int

        public init(events: [Event], total: Int) { self.events = events; self.total = total }

        /// True when the cached events are every event the store holds for the user.
        public var isComplete: Bool { total == events.count }
    }

    public let eventsPerUser: Int
    public let budgetBytes: Int

    private struct Slot {
        var user: String
        var entry: Entry
        var bytes: Int
        var newer: Int  // towards the most recently used; -1 at the head
        var older: Int  // towards the least recently used; -1 at the tail
    }

    private let lock = NSLock()
    private var index: [String: Int] = [:]
    private var slots: [Slot] = []
    private var free: [Int] = []
    private var newest = -1, oldest = -1
    private var used = 0
    private var loading: [String: Int] = [:]
    private var stale: Set<String> = []
    private var counters = (hits: 0, misses: 0, evictions: 0)

    public init(eventsPerUser: Int = 1000, budgetBytes: Int = 256 << 20) {
        precondition(eventsPerUser >= 1 && budgetBytes >= 0)
        self.eventsPerUser = eventsPerUser
        self.budgetBytes = budgetBytes
    }

    // MARK: Reads

    /// The user's cached history, counted as a hit (and made most recent) or a miss.
    public func lookup(_ user: String) -> Entry? {
        lock.lock(); defer { lock.unlock() }
        guard let s = index[user] else { counters.misses += 1; return nil }
        counters.hits += 1
        touch(s)
        return slots[s].entry
    }

    public var stats: (users: Int, bytes: Int, hits: Int, misses: Int, evictions: Int) {
        lock.lock(); defer { lock.unlock() }
        return (index.count, used, counters.hits, counters.misses, counters.evictions)
    }

    // MARK: Fills from the store

    /// Call before reading a user's history from the store for `finishFill`.
    public func beginFill(_ user: String) {
        lock.lock(); defer { lock.unlock() }
        loading[user, default: 0] += 1
    }

    /// Installs what the store returned (the latest `eventsPerUser` events and the total), unless the user was
    /// written or deleted since `beginFill`, or is cached already. Returns whether it was installed.
    @discardableResult
    public func finishFill(_ user: String, _ entry: Entry) -> Bool {
        lock.lock(); defer { lock.unlock() }
        let n = (loading[user] ?? 1) - 1
        loading[user] = n > 0 ? n : nil
        let raced = stale.contains(user)
        if n <= 0 { stale.remove(user) }
        // A budget of 0 holds nothing: every read goes to the store (replicas sharing a store, which write
        // through only their own RecordEvents calls).
        guard !raced, index[user] == nil, budgetBytes > 0 else { return false }
        var e = entry
        if e.events.count > eventsPerUser { e.events.removeFirst(e.events.count - eventsPerUser) }
        insert(user, e)
        return true
    }

    /// Ends a fill that read nothing (the store failed).
    public func cancelFill(_ user: String) {
        lock.lock(); defer { lock.unlock() }
        let n = (loading[user] ?? 1) - 1
        loading[user] = n > 0 ? n : nil
        if n <= 0 { stale.remove(user) }
    }

    // MARK: Write-through

    /// Adds events committed for `user` (in the order recorded) to a cached history. An uncached user stays
    /// uncached (the next read fills it from the store), but a fill in flight for it is marked stale.
    public func recorded(_ user: String, _ events: [Event]) {
        lock.lock(); defer { lock.unlock() }
        guard let s = index[user] else {
            if loading[user] != nil { stale.insert(user) }
            return
        }
        var entry = slots[s].entry
        for e in events {
            // A history cut to its latest events gains one older than all of them only in its total.
            let truncated = entry.events.count < entry.total
            entry.total += 1
            if truncated, let first = entry.events.first, e.timestamp < first.timestamp { continue }
            // After every event at or before its time: ties keep the recorded order.
            var at = entry.events.count
            while at > 0 && entry.events[at - 1].timestamp > e.timestamp { at -= 1 }
            entry.events.insert(e, at: at)
        }
        if entry.events.count > eventsPerUser { entry.events.removeFirst(entry.events.count - eventsPerUser) }
        replace(s, entry)
        touch(s)
        evictOver(keeping: s)
    }

    /// Forgets a user (DeleteUser), and makes any fill in flight for it stale.
    public func remove(_ user: String) {
        lock.lock(); defer { lock.unlock() }
        if loading[user] != nil { stale.insert(user) }
        if let s = index[user] { unlink(s); release(s) }
    }

    public func removeAll() {
        lock.lock(); defer { lock.unlock() }
        for user in loading.keys { stale.insert(user) }
        index.removeAll(); slots.removeAll(); free.removeAll()
        newest = -1; oldest = -1; used = 0
    }

    // MARK: LRU list (lock held)

    private static func bytes(_ user: String, _ entry: Entry) -> Int {
        96 + user.utf8.count + entry.events.reduce(0) { $0 + $1.bytes }
    }

    private func insert(_ user: String, _ entry: Entry) {
        let slot = Slot(user: user, entry: entry, bytes: Self.bytes(user, entry), newer: -1, older: -1)
        let s: Int
        if let f = free.popLast() { slots[f] = slot; s = f } else { slots.append(slot); s = slots.count - 1 }
        index[user] = s
        used += slot.bytes
        linkNewest(s)
        evictOver(keeping: s)
    }

    private func replace(_ s: Int, _ entry: Entry) {
        used -= slots[s].bytes
        slots[s].entry = entry
        slots[s].bytes = Self.bytes(slots[s].user, entry)
        used += slots[s].bytes
    }

    private func touch(_ s: Int) {
        guard newest != s else { return }
        unlink(s)
        linkNewest(s)
    }

    private func linkNewest(_ s: Int) {
        slots[s].newer = -1
        slots[s].older = newest
        if newest >= 0 { slots[newest].newer = s }
        newest = s
        if oldest < 0 { oldest = s }
    }

    private func unlink(_ s: Int) {
        let (newer, older) = (slots[s].newer, slots[s].older)
        if newer >= 0 { slots[newer].older = older } else { newest = older }
        if older >= 0 { slots[older].newer = newer } else { oldest = newer }
        slots[s].newer = -1; slots[s].older = -1
    }

    private func release(_ s: Int) {
        used -= slots[s].bytes
        index[slots[s].user] = nil
        slots[s].entry = Entry(events: [], total: 0)
        slots[s].user = ""
        free.append(s)
    }

    /// Evicts least recently used users until the budget holds (never `keeping`, the entry just written).
    private func evictOver(keeping: Int) {
        while used > budgetBytes, oldest >= 0, oldest != keeping {
            let s = oldest
            unlink(s)
            release(s)
            counters.evictions += 1
        }
    }
}
