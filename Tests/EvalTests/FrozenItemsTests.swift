// Popularity, WALS and BPR over a catalogue that grew after they were fitted: the items they know keep their scores,
// the new ones get none (NaN, never recommended) until a refit; history events naming new items are left out.
import Data
import Eval
import XCTest

final class FrozenItemsTests: XCTestCase {
    let catalog = Catalog(items: (1...6).map { Item(id: "\($0)", title: "Movie \($0)") })
    var interactions: [Interaction] {
        [(0, 2), (0, 0), (1, 2), (1, 4), (2, 2), (2, 0), (2, 1), (3, 3), (3, 5)].map { Interaction(user: $0.0, item: $0.1) }
    }

    func testNewItemsHaveNoScoreUntilARefit() throws {
        let models: [Recommender] = [
            Popularity(training: interactions, catalog: catalog),
            try WALS.train(interactions, catalog: catalog, numUsers: 4, config: WALSConfig()),
        ]
        let (grown, added, changed) = catalog.updating(with: [Item(id: "7", title: "New"), Item(id: "2", title: "Renamed")])
        XCTAssertEqual(added, [6])
        XCTAssertEqual(changed, [1])
        for base in models {
            let next = try base.updatingCatalog(grown, added: added, changed: changed,
                                                itemStats: Array(repeating: ItemStats(count: 0, meanRating: 0), count: 7))
            XCTAssertEqual(next.catalog.count, 7)
            XCTAssertEqual(next.recommendableItems, 6, base.kind)
            let histories = [UserHistory(items: [0, 6]), UserHistory(items: [2])]
            let scores = try next.scoreAll(histories)
            // The known items score as the base model scores the history without the new item.
            let expected = try base.scoreAll([UserHistory(items: [0]), UserHistory(items: [2])])
            for q in 0..<2 {
                XCTAssertEqual(Array(scores[(q * 7)..<(q * 7 + 6)]), Array(expected[(q * 6)..<(q * 6 + 6)]), base.kind)
                XCTAssertTrue(scores[q * 7 + 6].isNaN, base.kind)
            }
            let top = scores.withUnsafeBufferPointer { Ranking.topK(UnsafeBufferPointer(rebasing: $0[0..<7]), k: 7) }
            XCTAssertEqual(top.count, 6)
            XCTAssertFalse(top.contains { $0.index == 6 })
            XCTAssertThrowsError(try next.similarities(to: 6))
            // A second version wraps the fitted model, not the wrapper.
            let third = try next.updatingCatalog(grown.updating(with: [Item(id: "8")]).catalog, added: [7], changed: [],
                                                 itemStats: Array(repeating: ItemStats(count: 0, meanRating: 0), count: 8))
            XCTAssertTrue((third as? FrozenItems)?.base === base)
        }
    }
}
