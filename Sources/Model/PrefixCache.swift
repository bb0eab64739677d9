// Per-user KV caches of the direct path (docs/architecture.md, Returning users): the keys and values of a user
// prompt's instruction and history lines, kept after a request so that the next request whose prompt extends them
// prefills only its new tokens. Keyed by the tokens themselves (a hash of the prefix, checked token by token), so a
// Recommend(user_id) and a request that sends the same history find the same entry, and nothing but the tokens can
// make a hit wrong. Least recently used entries go first when the byte budget is reached. An entry is tagged with the
// users whose requests made or extended it: DeleteUser removes every entry tagged with the user, and an entry made
// from data read before a deletion is never stored (`epoch`). One cache belongs to one network's weights: a model
// swap drops it. The cache also remembers the tokens of the prompt lines it has seen, so that a returning call
// tokenises only its new lines (byte-level BPE of a whole 20-29-line prompt cost ~0.33 ms of a cached call's ~0.87,
// measured: docs/benchmarks.md, Returning users); that memo is emptied by every removal too.
import Data
import Foundation

public final class PrefixCache: @unchecked Sendable {
    /// Whose request an entry serves, and the cache's epoch when the request read its history.
    public struct Tag: Sendable, Equatable {
        public var user: String
        public var epoch: UInt64
        public init(user: String, epoch: UInt64) { self.user = user; self.epoch = epoch }
    }

    /// A cached prefix taken out of the cache (a request owns it until it puts it back).
    public struct Hit {
        public let cache: KVCache
        /// Tokens the cache holds (the matched prefix's length).
        public let length: Int
        public let users: Set<String>
    }

    public struct Stats: Sendable, Equatable {
        public var entries = 0, bytes = 0, hits = 0, misses = 0, evictions = 0
        /// Prompt lines whose tokens are remembered.
        public var lines = 0
        public init() {}
    }

    /// Most bytes the remembered prompt lines may take (text, token ids and a dictionary slot's overhead each, so a
    /// catalogue of 512-byte titles cannot make the memo outgrow it); all are dropped when it would be passed.
    public static let lineByteLimit = 32 << 20

    private struct Entry {
        var tokens: [Int]
        var cache: KVCache
        var users: Set<String>
        var used: UInt64
    }

    /// Bytes of KV storage the entries may hold together.
    public let budget: Int
    private let lock = NSLock()
    private var entries: [UInt64: Entry] = [:]
    private var clock: UInt64 = 0
    private var stats = Stats()
    private var removals: UInt64 = 0
    /// Tokens of prompt lines (the text a line is encoded as, its newline included).
    private var lines: [String: [Int]] = [:]
    private var lineBytes = 0

    public init(budget: Int) {
        precondition(budget >= 0)
        self.budget = budget
    }

    /// Moves on at every removal: an entry made from a history read at an earlier epoch is not stored.
    public var epoch: UInt64 { lock.lock(); defer { lock.unlock() }; return removals }

    public var statistics: Stats {
        lock.lock(); defer { lock.unlock() }
        var s = stats
        s.entries = entries.count
        s.lines = lines.count
        return s
    }

    /// The tokens of one prompt line's text: remembered ones, or `encode`'s, remembered unless a removal happened
    /// since `epoch` (a line shows a user's event: it is not kept past a DeleteUser that its request read before).
    public func lineTokens(_ text: String, since epoch: UInt64, encode: (String) -> [Int]) -> [Int] {
        lock.lock()
        if let known = lines[text] { lock.unlock(); return known }
        lock.unlock()
        let tokens = encode(text)
        lock.lock(); defer { lock.unlock() }
        guard epoch == removals else { return tokens }
        let bytes = Self.lineCost(text, tokens)
        guard lines[text] == nil, bytes <= Self.lineByteLimit else { return tokens }
        if lineBytes + bytes > Self.lineByteLimit { forgetLines() }
        lines[text] = tokens
        lineBytes += bytes
        return tokens
    }

    /// What one remembered line is counted as: its text, its token ids and a dictionary slot (two words each).
    static func lineCost(_ text: String, _ tokens: [Int]) -> Int {
        text.utf8.count + tokens.count * MemoryLayout<Int>.stride + 4 * MemoryLayout<Int>.stride
    }

    private func forgetLines() {
        lines.removeAll()
        lineBytes = 0
    }

    /// The key of a token prefix: FNV-1a over the token ids, one step per id.
    static func key(_ tokens: ArraySlice<Int>) -> UInt64 {
        var h = FNV1a()
        for t in tokens { h.mix(UInt64(bitPattern: Int64(t))) }
        return h.value
    }

    /// Takes out the entry holding the longest prefix of `tokens` that ends at one of `boundaries` (token counts,
    /// ascending), or nil (a miss). The caller continues the returned cache and may put it back.
    public func take(_ tokens: [Int], boundaries: [Int]) -> Hit? {
        // One pass over the tokens: the key of each boundary's prefix continues the one before.
        var keys: [(length: Int, key: UInt64)] = []
        var h = FNV1a(), done = 0
        for b in boundaries where b > done && b <= tokens.count {
            for t in tokens[done..<b] { h.mix(UInt64(bitPattern: Int64(t))) }
            done = b
            keys.append((b, h.value))
        }
        lock.lock(); defer { lock.unlock() }
        for (length, key) in keys.reversed() {
            guard let e = entries[key], e.tokens.count == length, e.tokens[...] == tokens[0..<length] else { continue }
            entries[key] = nil
            stats.bytes -= e.cache.byteCount
            stats.hits += 1
            return Hit(cache: e.cache, length: length, users: e.users)
        }
        stats.misses += 1
        return nil
    }

    /// Stores `cache` (holding exactly `tokens`) for the requests of `tags`, evicting the least recently used entries
    /// to stay within the budget. Not stored when a removal happened since any tag's epoch, or when it alone exceeds
    /// the budget.
    public func put(_ tokens: [Int], cache: KVCache, users: Set<String>, since epoch: UInt64) {
        precondition(cache.offset == tokens.count, "PrefixCache.put: the cache holds \(cache.offset) tokens, not \(tokens.count)")
        let size = cache.byteCount
        let key = Self.key(tokens[...])
        lock.lock(); defer { lock.unlock() }
        guard epoch == removals, size <= budget, !tokens.isEmpty else { return }
        if let old = entries.removeValue(forKey: key) { stats.bytes -= old.cache.byteCount }
        while stats.bytes + size > budget, let oldest = entries.min(by: { $0.value.used < $1.value.used }) {
            entries[oldest.key] = nil
            stats.bytes -= oldest.value.cache.byteCount
            stats.evictions += 1
        }
        clock += 1
        entries[key] = Entry(tokens: tokens, cache: cache, users: users, used: clock)
        stats.bytes += size
    }

    /// Removes every entry a request of `user` made or extended; how many.
    @discardableResult
    public func remove(user: String) -> Int {
        lock.lock(); defer { lock.unlock() }
        removals += 1
        let gone = entries.filter { $0.value.users.contains(user) }
        for (key, e) in gone { entries[key] = nil; stats.bytes -= e.cache.byteCount }
        // Lines are not tagged by user: every one goes (removals are rare; the next calls tokenise in full again).
        forgetLines()
        return gone.count
    }

    /// Removes every entry (the model it belongs to is swapped out).
    public func removeAll() {
        lock.lock(); defer { lock.unlock() }
        removals += 1
        entries.removeAll()
        forgetLines()
        stats.bytes = 0
    }
}
