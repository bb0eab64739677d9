import Foundation
import XCTest
@testable import Data

final class SplitTests: XCTestCase {
    /// 3 users; user 0 has a tie on its last two timestamps (file order decides), user 2 has 2 interactions.
    func toy() -> Dataset {
        let xs = [
            Interaction(user: 0, item: 0, rating: 4, timestamp: 10),
            Interaction(user: 1, item: 1, rating: 3, timestamp: 5),
            Interaction(user: 0, item: 2, rating: 5, timestamp: 30),  // tie with the next: file order -> 2 then 3
            Interaction(user: 0, item: 3, rating: 1, timestamp: 30),
            Interaction(user: 0, item: 1, rating: 2, timestamp: 20),
            Interaction(user: 1, item: 0, rating: 3, timestamp: 1),
            Interaction(user: 1, item: 2, rating: 3, timestamp: 9),
            Interaction(user: 2, item: 4, rating: 3, timestamp: 7),
            Interaction(user: 2, item: 0, rating: 3, timestamp: 3),
        ]
        return Dataset(name: "toy", catalog: Catalog(items: (0..<5).map { Item(id: String($0)) }),
                       userIds: ["a", "b", "c"], interactions: xs)
    }

    func testSequencesAreStableOnTies() {
        let s = toy().sequences()
        XCTAssertEqual(s[0].items, [0, 1, 2, 3])
        XCTAssertEqual(s[0].timestamps, [10, 20, 30, 30])
        XCTAssertEqual(s[1].items, [0, 1, 2])
    }

    func testLeaveOneOut() {
        let d = toy()
        let s = Splits.leaveOneOut(d)
        XCTAssertEqual(s.test.map(\.target), [3, 2, 4])
        XCTAssertEqual(s.validation.map(\.target), [2, 1])  // user 2 has only two interactions: no validation
        XCTAssertEqual(s.validation.map(\.user), [0, 1])
        XCTAssertEqual(s.test[0].history.items, [0, 1, 2])
        XCTAssertEqual(s.test[0].masked, [0, 1, 2])  // training items and the validation item
        XCTAssertEqual(s.validation[0].masked, [0, 1])  // training items only
        XCTAssertEqual(s.test[2].history.items, [0])
        XCTAssertEqual(s.train.count + s.validation.count + s.test.count, d.interactions.count)
        // Train keeps file order and holds exactly the non-held-out rows.
        XCTAssertEqual(s.train, [d.interactions[0], d.interactions[4], d.interactions[5], d.interactions[8]])
        // Every user's last item is its test target; every history ends before its target.
        let seqs = d.sequences()
        for t in s.test { XCTAssertEqual(seqs[t.user].items.last, t.target) }
        for v in s.validation { XCTAssertEqual(seqs[v.user].items[seqs[v.user].count - 2], v.target) }
    }

    func testTargetSeenBeforeIsNotMasked() {
        let xs = [Interaction(user: 0, item: 1, timestamp: 1), Interaction(user: 0, item: 0, timestamp: 2),
                  Interaction(user: 0, item: 1, timestamp: 3), Interaction(user: 0, item: 1, timestamp: 4)]
        let d = Dataset(name: "r", catalog: Catalog(items: [Item(id: "0"), Item(id: "1")]), userIds: ["u"], interactions: xs)
        let s = Splits.leaveOneOut(d)
        XCTAssertEqual(s.test[0].masked, [0])
        XCTAssertEqual(s.test[0].history.items, [1, 0, 1])
    }

    func testTemporalSplit() {
        // 4 users x 6 interactions at distinct times: 20 samples -> 16 / 2 / 2.
        var xs: [Interaction] = []
        for u in 0..<4 { for p in 0..<6 { xs.append(Interaction(user: u, item: (u + p) % 7, rating: 3, timestamp: Int64(p * 10 + u))) } }
        let d = Dataset(name: "t", catalog: Catalog(items: (0..<7).map { Item(id: String($0)) }),
                        userIds: ["0", "1", "2", "3"], interactions: xs)
        let s = Splits.temporal(d, historyLength: 3)
        XCTAssertEqual([s.validation.count, s.test.count], [2, 2])
        let all = s.validation + s.test
        XCTAssertEqual(all.map(\.targetTime), all.map(\.targetTime).sorted())
        // The last 4 samples are the 4 users' last positions (times 50..53).
        XCTAssertEqual(all.map(\.targetTime), [50, 51, 52, 53])
        for e in all {
            XCTAssertEqual(e.history.count, 3)
            XCTAssertTrue(e.history.timestamps.allSatisfy { $0 <= e.targetTime })
            XCTAssertEqual(e.masked.count, Set(e.masked).count)
        }
        XCTAssertEqual(s.test[0].masked, [2, 3, 4, 5, 6])  // all 5 earlier items of user 2, not just the 3 shown
        // Training interactions: first interactions and the 16 training targets; nothing at or after time 50.
        XCTAssertEqual(s.train.count, 20)
        XCTAssertTrue(s.train.allSatisfy { $0.timestamp < 50 })
        // Training samples of the split: every position >= 1 of the training sequences.
        XCTAssertEqual(s.trainingSamples(historyLength: 3).count, 16)
    }

    func testTemporalTiesKeepUserOrder() {
        let xs = [Interaction(user: 1, item: 0, timestamp: 0), Interaction(user: 1, item: 1, timestamp: 5),
                  Interaction(user: 0, item: 0, timestamp: 0), Interaction(user: 0, item: 2, timestamp: 5)]
        let d = Dataset(name: "t", catalog: Catalog(items: (0..<3).map { Item(id: String($0)) }), userIds: ["a", "b"],
                        interactions: xs)
        let s = Splits.temporal(d, fractions: (0.5, 0.0))
        XCTAssertEqual(s.test.map(\.user), [1])  // user 0's sample comes first at equal time
    }

    func testKCore() throws {
        // Item 3 has one interaction; removing it drops user 2 below 2, which then drops item 2 below 2.
        let xs = [Interaction(user: 0, item: 0), Interaction(user: 0, item: 1), Interaction(user: 1, item: 0),
                  Interaction(user: 1, item: 1), Interaction(user: 2, item: 2), Interaction(user: 2, item: 3),
                  Interaction(user: 0, item: 2)]
        let d = Dataset(name: "k", catalog: Catalog(items: (0..<4).map { Item(id: String($0)) }),
                        userIds: ["0", "1", "2"], interactions: xs)
        let c = try Splits.kCore(d, k: 2)
        XCTAssertEqual(c.catalog.items.map(\.id), ["0", "1"])
        XCTAssertEqual(c.userIds, ["0", "1"])
        XCTAssertEqual(c.interactions.count, 4)
        XCTAssertThrowsError(try Splits.kCore(d, k: 10))
    }

    /// The real ml-100k split (skipped when scripts/fetch-data.sh has not been run).
    func testMovieLens100KLeaveOneOut() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../data/ml-100k").path
        try XCTSkipUnless(FileManager.default.fileExists(atPath: dir + "/ml-100k.inter"), "data/ml-100k absent")
        let d = try DatasetLoader.load(dir)
        XCTAssertEqual([d.numUsers, d.catalog.count, d.interactions.count], [943, 1682, 100_000])
        let s = Splits.leaveOneOut(d)
        XCTAssertEqual([s.train.count, s.validation.count, s.test.count], [98_114, 943, 943])
        let seqs = d.sequences()
        let tied = seqs.filter { $0.timestamps[$0.count - 1] == $0.timestamps[$0.count - 2] }.count
        XCTAssertEqual(tied, 415)  // docs/evaluation.md: why the stable sort matters
    }
}
