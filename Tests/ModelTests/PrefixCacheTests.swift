// Per-user KV caches of the direct path: the stable-prefix prompt's tokens extend each other line by line (the
// tokenizer splits at the newline), a request extending a cached prompt scores as the full prefill does (float
// rounding), a moved window misses, and the cache's LRU budget, user removal and epoch hold.
import Data
import Foundation
import XCTest
@testable import Model

final class PrefixCacheTests: XCTestCase {
    let catalog = Catalog(items: (1...40).map { Item(id: "\($0)", title: "Movie \($0)", year: 1990 + $0 % 20, genres: ["Drama"]) })

    func history(_ n: Int, user: Int = 0) -> UserHistory {
        UserHistory(items: (0..<n).map { ($0 * 7 + user * 3) % 40 },
                    timestamps: (0..<n).map { Int64(880_000_000 + $0 * 86_400 + ($0 * 977 + user * 31) % 5000) },
                    ratings: (0..<n).map { Float(1 + ($0 + user) % 5) })
    }

    /// A tokenizer trained on prompts of both formats (its merges are what a checkpoint's would be), besides the
    /// fixtures' general one.
    func tokenizers() throws -> [Tokenizer] {
        var texts: [String] = []
        for f in PromptFormat.allCases {
            for n in [1, 5, 20, 27] {
                texts.append(DualHeadFormat.directText(userPrompt: Prompts.user(history: history(n), catalog: catalog,
                                                                               targetTime: 890_000_000, format: f)))
            }
        }
        return [try Fixtures.tokenizer(), try TokenizerTrainer.train(texts: texts, vocabularySize: 600, minFrequency: 1)]
    }

    func testStablePrefixWindowStartsAtMultiplesOfTen() {
        XCTAssertEqual([0, 5, 19, 20, 29, 30, 39, 40, 45].map { Prompts.shownStart(count: $0, format: .stablePrefix) },
                       [0, 0, 0, 0, 0, 10, 10, 20, 20])
        XCTAssertEqual([0, 5, 20, 25].map { Prompts.shownStart(count: $0, format: .targetRelative) }, [0, 0, 0, 5])
        let lines = Prompts.userLines(history: history(3), catalog: catalog, targetTime: 0, format: .stablePrefix)
        XCTAssertEqual(lines[1], "+0s: [Movie 1 (1991)] (1)")
        XCTAssertEqual(lines[2], "+1d 0.3h: [Movie 8 (1998)] (2)")   // 86,400 + 977 s after the first line
        // One more event appends a line and changes none before it; only the last line shows the target time.
        for n in [1, 20, 28, 31] {
            let a = Prompts.userLines(history: history(n), catalog: catalog, targetTime: 1, format: .stablePrefix)
            let b = Prompts.userLines(history: history(n + 1), catalog: catalog, targetTime: 2, format: .stablePrefix)
            XCTAssertEqual(Array(b.prefix(a.count - 1)), Array(a.dropLast()), "\(n) -> \(n + 1) events")
            XCTAssertEqual(a.last, "Next: 0s later", "the time to the target (here before the last event: 0 s), last")
            XCTAssertEqual(b.count, a.count + 1)
        }
        // The 30th event moves the window 10 lines on.
        XCTAssertEqual(Prompts.userLines(history: history(30), catalog: catalog, targetTime: 0, format: .stablePrefix).count, 22)
        XCTAssertEqual(lines.last, "Next: ?")
    }

    /// Line-by-line tokens are the whole text's tokens, and the tokens of every prefix of lines are a prefix of them.
    func testDirectTokensAreTheTextsTokensAndExtendLineByLine() throws {
        for tokenizer in try tokenizers() {
            for format in PromptFormat.allCases {
                for n in [0, 1, 2, 20, 21, 29, 33] {
                    var h = history(n)
                    if n == 21 { h.timestamps[4] = 0 }   // an unknown time: "?"
                    let lines = Prompts.userLines(history: h, catalog: catalog, targetTime: 890_000_000, format: format)
                    let (tokens, ends) = DualHeadFormat.directTokens(lines: lines, tokenizer: tokenizer, limit: 100_000)
                    let text = DualHeadFormat.directText(userPrompt: lines.joined(separator: "\n"))
                    XCTAssertEqual(tokens, tokenizer.encode(text), "\(format) \(n)")
                    XCTAssertEqual(ends.count, lines.count)
                    for k in lines.indices {
                        let prefix = tokenizer.encode(lines[0...k].joined(separator: "\n"))
                        XCTAssertEqual(prefix, Array(tokens[0..<ends[k]]), "\(format) \(n) line \(k)")
                    }
                }
            }
        }
        // Over the limit: the tail is kept, and there are no line ends to cache at.
        let lines = Prompts.userLines(history: history(20), catalog: catalog, targetTime: 0, format: .stablePrefix)
        let cut = DualHeadFormat.directTokens(lines: lines, tokenizer: try Fixtures.tokenizer(), limit: 50)
        XCTAssertEqual(cut.tokens.count, 50)
        XCTAssertTrue(cut.lineEnds.isEmpty)
    }

    func dualHead(cache: PrefixCache?, latentSteps: Int = 0) throws -> DualHeadModel {
        var c = Fixtures.tinyTied
        c.maxPositionEmbeddings = 4096
        c.latentSteps = latentSteps
        let model = try Fixtures.randomModel(c, seed: 5)
        let dual = try DualHeadModel(model: model, tokenizer: try Fixtures.tokenizer(), catalog: catalog,
                                     itemPrompts: catalog.items.map { Prompts.item($0, stats: ItemStats(count: 3, meanRating: 4)) },
                                     progress: false, promptFormat: .stablePrefix)
        dual.prefixCache = cache
        return dual
    }

    func assertClose(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(worst, 2e-3, "\(what): scores (|score| <= 50) differ by \(worst)", file: file, line: line)
    }

    /// Cached and uncached paths score alike (float rounding): a first request (miss), one new event (a hit that
    /// prefills one line), the same history again (a hit that prefills only `\n<answer>`), the 30th event (the window
    /// moves: a miss), and a batch mixing hits and misses of several users. With latent steps too: they run after
    /// the prompt and are never cached (a cached latent position would shift every later hit's scores).
    func testCachedScoresEqualTheFullPrefill() throws {
        try checkCachedScoresEqualTheFullPrefill(latentSteps: 0)
    }

    func testCachedScoresEqualTheFullPrefillWithLatentSteps() throws {
        try checkCachedScoresEqualTheFullPrefill(latentSteps: 2)
        // The steps change the scores (so the check above ran them).
        let plain = try dualHead(cache: nil), latent = try dualHead(cache: nil, latentSteps: 2)
        let a = try plain.scoreAll([history(20)]), b = try latent.scoreAll([history(20)])
        XCTAssertGreaterThan(zip(a, b).map { abs($0 - $1) }.max()!, 0.1)
    }

    func checkCachedScoresEqualTheFullPrefill(latentSteps: Int) throws {
        let cache = PrefixCache(budget: 64 << 20)
        let cached = try dualHead(cache: cache, latentSteps: latentSteps), full = try dualHead(cache: nil, latentSteps: latentSteps)
        var expected = (hits: 0, misses: 0)
        func check(_ hs: [UserHistory], hits: Int, misses: Int, _ what: String) throws {
            assertClose(try cached.scoreAll(hs), try full.scoreAll(hs), what)
            expected.hits += hits; expected.misses += misses
            XCTAssertEqual(cache.statistics.hits, expected.hits, what)
            XCTAssertEqual(cache.statistics.misses, expected.misses, what)
        }
        try check([history(20)], hits: 0, misses: 1, "first request")
        try check([history(21)], hits: 1, misses: 0, "one new event")
        try check([history(21)], hits: 1, misses: 0, "the same history again")
        // Several events at once extend the cached prompt as well.
        for n in [23, 26, 29] { try check([history(n)], hits: 1, misses: 0, "events up to \(n)") }
        try check([history(30)], hits: 0, misses: 1, "the window moved")
        // The 29-event prompt's entry stays (least recently used, evicted first) beside the moved window's.
        XCTAssertEqual(cache.statistics.entries, 2)
        try check([history(31), history(5, user: 1), history(12, user: 2), history(31)],
                  hits: 1, misses: 3, "a batch of hits and misses (one user twice: the second misses)")
        try check([history(6, user: 1), history(13, user: 2), history(32)], hits: 3, misses: 0, "all three return")
        // Batches larger than directBatchSize go in chunks, each through the cache.
        cached.directBatchSize = 2
        try check((3..<8).map { history(25, user: $0) }, hits: 0, misses: 5, "chunks")
        XCTAssertGreaterThan(cache.statistics.lines, 20, "the scores above were computed from remembered line tokens")
    }

    func kv(_ tokens: Int) -> KVCache {
        let c = KVCache(configuration: Fixtures.tinyTied, reservingCapacity: tokens)
        for _ in 0..<tokens {
            let zeros = [Float](repeating: 0, count: c.width)
            for l in 0..<c.layerCount { c.store(layer: l, position: c.offset, key: zeros, value: zeros) }
            c.advance(by: 1)
        }
        return c
    }

    func testLeastRecentlyUsedGoFirstWithinTheBudget() {
        let size = kv(10).byteCount
        let cache = PrefixCache(budget: size * 5 / 2)
        cache.put([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], cache: kv(10), users: ["a"], since: 0)
        cache.put(Array(11...20), cache: kv(10), users: ["b"], since: 0)
        // a is used (taken and put back extended): b is now the least recently used.
        let a = cache.take(Array(1...12), boundaries: [5, 10, 12])
        XCTAssertEqual(a?.length, 10)
        XCTAssertEqual(a?.users, ["a"])
        XCTAssertNil(cache.take(Array(1...12), boundaries: [5, 10, 12]), "taken out: a second request misses")
        cache.put(Array(1...10), cache: a!.cache, users: ["a"], since: 0)
        cache.put(Array(21...30), cache: kv(10), users: ["c"], since: 0)
        let s = cache.statistics
        XCTAssertEqual(s.entries, 2)
        XCTAssertEqual(s.evictions, 1)
        XCTAssertLessThanOrEqual(s.bytes, cache.budget)
        XCTAssertNil(cache.take(Array(11...20), boundaries: [10]), "b was evicted")
        XCTAssertNotNil(cache.take(Array(21...30) + [5], boundaries: [10]))
        // A prefix not at a given boundary, or different tokens, misses.
        XCTAssertNil(cache.take(Array(1...10), boundaries: [5, 9]))
        XCTAssertNil(cache.take([1, 2, 3, 4, 5, 6, 7, 8, 9, 11], boundaries: [10]))
        // An entry larger than the whole budget is not kept.
        cache.put(Array(1...40), cache: kv(40), users: [], since: cache.epoch)
        XCTAssertNil(cache.take(Array(1...40), boundaries: [40]))
    }

    /// A line's tokens are encoded once and then remembered; a removal forgets every line, and a line read before a
    /// removal is not remembered after it.
    func testLineTokensAreRememberedUntilARemoval() throws {
        let cache = PrefixCache(budget: 1 << 20)
        let tokenizer = try Fixtures.tokenizer()
        var encoded: [String] = []
        func tokens(_ text: String, since epoch: UInt64) -> [Int] {
            cache.lineTokens(text, since: epoch) { encoded.append($0); return tokenizer.encode($0) }
        }
        let line = "\n+2d 3h: [Toy Story (1995)] (5)"
        XCTAssertEqual(tokens(line, since: cache.epoch), tokenizer.encode(line))
        XCTAssertEqual(tokens(line, since: cache.epoch), tokenizer.encode(line))
        XCTAssertEqual(encoded, [line], "encoded once")
        XCTAssertEqual(cache.statistics.lines, 1)
        let before = cache.epoch
        cache.remove(user: "nobody")
        XCTAssertEqual(cache.statistics.lines, 0, "a removal forgets every line")
        XCTAssertEqual(tokens(line, since: before), tokenizer.encode(line))
        XCTAssertEqual(cache.statistics.lines, 0, "read before the removal: not remembered")
        _ = tokens(line, since: cache.epoch)
        XCTAssertEqual(encoded, [line, line, line])
        XCTAssertEqual(cache.statistics.lines, 1)
        cache.removeAll()
        XCTAssertEqual(cache.statistics.lines, 0)
    }

    func testRememberedLinesStayWithinTheirByteLimit() {
        // Lines of the longest titles a catalogue accepts (512 bytes): the memo must not grow past its byte limit.
        let cache = PrefixCache(budget: 1 << 20)
        let title = String(repeating: "x", count: 512)
        let perLine = PrefixCache.lineCost("\n+1d: [\(title) 0000000] (5)", Array(repeating: 0, count: 40))
        let fit = PrefixCache.lineByteLimit / perLine
        var most = 0
        for i in 0..<(fit + fit / 2) {
            let text = "\n+1d: [\(title) \(String(format: "%07d", i))] (5)"
            _ = cache.lineTokens(text, since: cache.epoch) { _ in Array(repeating: 0, count: 40) }
            most = max(most, cache.statistics.lines)
        }
        XCTAssertEqual(most, fit, "every line that fits is kept, and no more")
        XCTAssertLessThan(cache.statistics.lines, fit, "the memo was dropped once full and refilled")
        XCTAssertGreaterThan(cache.statistics.lines, 0)
        // One line longer than the whole limit is encoded but never kept.
        let huge = String(repeating: "y", count: PrefixCache.lineByteLimit)
        let before = cache.statistics.lines
        XCTAssertEqual(cache.lineTokens(huge, since: cache.epoch) { _ in [7] }, [7])
        XCTAssertEqual(cache.statistics.lines, before)
    }

    func testRemovingAUserRemovesEveryEntryTaggedWithItAndFencesReadsBeforeIt() {
        let cache = PrefixCache(budget: 1 << 20)
        cache.put([1, 2], cache: kv(2), users: ["a"], since: 0)
        cache.put([3, 4], cache: kv(2), users: ["a", "b"], since: 0)   // made by b, extended by a
        cache.put([5, 6], cache: kv(2), users: ["b"], since: 0)
        cache.put([7, 8], cache: kv(2), users: [], since: 0)
        let before = cache.epoch
        XCTAssertEqual(cache.remove(user: "a"), 2)
        XCTAssertEqual(cache.statistics.entries, 2)
        XCTAssertNotNil(cache.take([5, 6, 9], boundaries: [2]))
        // A request that read its history before the removal is not cached.
        cache.put([1, 2], cache: kv(2), users: ["a"], since: before)
        XCTAssertNil(cache.take([1, 2, 9], boundaries: [2]))
        cache.removeAll()
        XCTAssertEqual(cache.statistics.entries, 0)
        XCTAssertEqual(cache.statistics.bytes, 0)
    }
}
