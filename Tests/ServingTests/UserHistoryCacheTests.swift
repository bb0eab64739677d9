import Data
import Foundation
@testable import Serving
import XCTest

final class UserHistoryCacheTests: XCTestCase {
    func ev(_ item: String, _ t: Int64, key: String = "") -> UserHistoryCache.Event {
        UserHistoryCache.Event(UserEvent(userId: "", itemId: item, timestamp: t, idempotencyKey: key))
    }

    func fill(_ cache: UserHistoryCache, _ user: String, _ events: [UserHistoryCache.Event], total: Int? = nil) {
        cache.beginFill(user)
        XCTAssertTrue(cache.finishFill(user, .init(events: events, total: total ?? events.count)))
    }

    func testWriteThroughKeepsTimeOrderWithTiesInRecordedOrder() {
        let cache = UserHistoryCache(eventsPerUser: 10)
        fill(cache, "u", [ev("a", 10), ev("b", 20)])
        cache.recorded("u", [ev("c", 15), ev("d", 20), ev("e", 5)])
        let e = cache.lookup("u")!
        XCTAssertEqual(e.events.map(\.itemId), ["e", "a", "c", "b", "d"])
        XCTAssertEqual(e.total, 5)
    }

    /// A history cut to its latest N: an older event only counts; newer ones push the oldest out.
    func testTruncatedHistoryKeepsTheLatest() {
        let cache = UserHistoryCache(eventsPerUser: 3)
        fill(cache, "u", [ev("x", 10), ev("y", 20), ev("z", 30)], total: 7)
        cache.recorded("u", [ev("old", 1)])
        XCTAssertEqual(cache.lookup("u")!.events.map(\.itemId), ["x", "y", "z"])
        XCTAssertEqual(cache.lookup("u")!.total, 8)
        cache.recorded("u", [ev("new", 40), ev("mid", 25)])
        XCTAssertEqual(cache.lookup("u")!.events.map(\.itemId), ["mid", "z", "new"])
        XCTAssertEqual(cache.lookup("u")!.total, 10)
        // A complete history grows until it is cut.
        fill(cache, "v", [ev("a", 5)])
        cache.recorded("v", [ev("b", 1), ev("c", 2), ev("d", 9)])
        XCTAssertEqual(cache.lookup("v")!.events.map(\.itemId), ["c", "a", "d"])
        XCTAssertFalse(cache.lookup("v")!.isComplete)
    }

    func testUncachedUserStaysUncachedAndARacingFillIsNotInstalled() {
        let cache = UserHistoryCache()
        cache.recorded("u", [ev("a", 1)])
        XCTAssertNil(cache.lookup("u"))
        // A fill that read the store before a write committed must not be installed.
        cache.beginFill("u")
        cache.recorded("u", [ev("b", 2)])
        XCTAssertFalse(cache.finishFill("u", .init(events: [ev("a", 1)], total: 1)))
        XCTAssertNil(cache.lookup("u"))
        // The next fill is installed.
        fill(cache, "u", [ev("a", 1), ev("b", 2)])
        XCTAssertEqual(cache.lookup("u")!.events.count, 2)
        // Nor after a delete.
        cache.beginFill("w")
        cache.remove("w")
        XCTAssertFalse(cache.finishFill("w", .init(events: [ev("a", 1)], total: 1)))
    }

    /// Budget 0 (replicas sharing a store): nothing is installed, so every read goes to the store.
    func testZeroBudgetHoldsNothing() {
        let cache = UserHistoryCache(budgetBytes: 0)
        cache.beginFill("u")
        XCTAssertFalse(cache.finishFill("u", .init(events: [ev("a", 1)], total: 1)))
        cache.recorded("u", [ev("b", 2)])
        XCTAssertNil(cache.lookup("u"))
        XCTAssertEqual(cache.stats.users, 0)
        XCTAssertEqual(cache.stats.bytes, 0)
    }

    func testRemoveForgetsTheUser() {
        let cache = UserHistoryCache()
        fill(cache, "u", [ev("a", 1)])
        cache.remove("u")
        XCTAssertNil(cache.lookup("u"))
        XCTAssertEqual(cache.stats.users, 0)
        XCTAssertEqual(cache.stats.bytes, 0)
    }

    /// Under a byte budget the least recently used users go first.
    func testLRUEvictionUnderBudget() {
        let cache = UserHistoryCache(eventsPerUser: 100, budgetBytes: 4000)
        let events = (0..<10).map { ev("item-\($0)", Int64($0)) }
        for u in 0..<20 { fill(cache, "user-\(u)", events) }
        let s = cache.stats
        XCTAssertLessThanOrEqual(s.bytes, 4000)
        XCTAssertGreaterThan(s.evictions, 0)
        XCTAssertNotNil(cache.lookup("user-19"))
        XCTAssertNil(cache.lookup("user-0"))
        // Reading a user makes it recent: the next insertions evict others first.
        let kept = (0..<20).last { cache.lookup("user-\($0)") != nil && $0 < 19 }!
        XCTAssertNotNil(cache.lookup("user-\(kept)"))
        for u in 20..<23 { fill(cache, "user-\(u)", events) }
        XCTAssertNotNil(cache.lookup("user-\(kept)"))
    }

    /// Many threads writing and reading: the byte count stays exact and every write lands in order.
    func testConcurrentUse() {
        let cache = UserHistoryCache(eventsPerUser: 1000)
        for u in 0..<8 { fill(cache, "u\(u)", []) }
        DispatchQueue.concurrentPerform(iterations: 8) { u in
            for t in 0..<200 {
                cache.recorded("u\(u)", [ev("i\(t)", Int64(t))])
                _ = cache.lookup("u\((u + 1) % 8)")
            }
        }
        for u in 0..<8 {
            let e = cache.lookup("u\(u)")!
            XCTAssertEqual(e.events.map(\.timestamp), (0..<200).map { Int64($0) })
            XCTAssertEqual(e.total, 200)
        }
    }
}
