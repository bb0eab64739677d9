// New items' content prior: the genre centroids of the trained items and the blend, against cases worked by hand, and
// a catalogue update that blends the items it adds (and no trained item).
import Data
import Foundation
import XCTest
@testable import Model
import Tensor

final class ContentPriorTests: XCTestCase {
    func table(_ rows: [[Float]]) -> FloatBuffer {
        let t = FloatBuffer(shape: [rows.count, rows[0].count])
        for (i, r) in rows.enumerated() { for (j, x) in r.enumerated() { t.data[i * r.count + j] = x } }
        return t
    }

    func row(_ t: FloatBuffer, _ i: Int) -> [Float] { (0..<t.rowLength).map { t.data[i * t.rowLength + $0] } }

    /// Trained: 0 [A] (1,0), 1 [A,B] (0,1), 2 [B] (.6,.8); 3 [C] (0,-1) is untrained, so C has no centroid.
    /// centroid(A) = (.5,.5), centroid(B) = (.3,.9).
    /// Item 4 [A,B], text (-1,0), W .5: .5(-1,0) + .5(.4,.7) = (-.3,.35) -> /sqrt(.2125) = (-.650791, .759257).
    /// Item 5 [C]: no trained item of its genre, keeps (0,-1). Item 6 [B,Z], text (.8,-.6), W .25 (Z unknown,
    /// skipped): .75(.8,-.6) + .25(.3,.9) = (.675,-.225) = (3,-1)/sqrt(10) after normalising = (.948683, -.316228).
    func testBlendMatchesHandWorkedCases() {
        let catalog = Catalog(items: [
            Item(id: "0", genres: ["A"]), Item(id: "1", genres: ["A", "B"]), Item(id: "2", genres: ["B"]),
            Item(id: "3", genres: ["C"]), Item(id: "4", genres: ["A", "B"]), Item(id: "5", genres: ["C"]),
            Item(id: "6", genres: ["B", "Z"]),
        ])
        let t = table([[1, 0], [0, 1], [0.6, 0.8], [0, -1], [-1, 0], [0, -1], [0.8, -0.6]])
        let trained = [true, true, true, false, false, false, false]
        let half = ContentPrior(weight: 0.5, table: t, catalog: catalog, trained: trained)
        XCTAssertEqual(half.centroids.keys.sorted(), ["A", "B"])
        for (a, b) in zip(half.centroids["A"]!, [0.5, 0.5] as [Float]) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        for (a, b) in zip(half.centroids["B"]!, [0.3, 0.9] as [Float]) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        XCTAssertNil(half.prior(genres: ["C"]))
        XCTAssertEqual(half.apply(to: t, rows: [4, 5], catalog: catalog), 1)
        for (a, b) in zip(row(t, 4), [-0.650791, 0.759257] as [Float]) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        XCTAssertEqual(row(t, 5), [0, -1])
        let quarter = ContentPrior(weight: 0.25, dimension: 2, centroids: half.centroids)
        XCTAssertEqual(quarter.apply(to: t, rows: [6], catalog: catalog), 1)
        for (a, b) in zip(row(t, 6), [0.948683, -0.316228] as [Float]) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        // The rows not listed, and every row at W 0, are left as they are.
        XCTAssertEqual(row(t, 0), [1, 0])
        XCTAssertEqual(row(t, 3), [0, -1])
        let zero = ContentPrior(weight: 0, dimension: 2, centroids: half.centroids)
        XCTAssertEqual(zero.apply(to: t, rows: [4, 6], catalog: catalog), 0)
        for (a, b) in zip(row(t, 4), [-0.650791, 0.759257] as [Float]) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    /// UpsertItems' path: a model with a prior blends the added items (no training interaction) into
    /// unit((1-W) readout + W prior), the readout taken here from the network directly, and re-encodes a changed item
    /// that has interactions from its text alone.
    func testCatalogueUpdateBlendsTheAddedItems() throws {
        let model = try Fixtures.randomModel(Fixtures.tinyTied, seed: 5)
        let tokenizer = try Fixtures.tokenizer()
        let genres = ["Drama", "Comedy", "Sci-Fi"]
        let old = Catalog(items: (1...9).map { Item(id: "\($0)", title: "Movie \($0)", genres: [genres[$0 % 3]]) })
        let stats = (0..<9).map { ItemStats(count: 1 + $0, meanRating: 3.5) }
        let dual = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: old,
                                     itemPrompts: (0..<9).map { Prompts.item(old[$0], stats: stats[$0]) }, progress: false, promptFormat: .targetRelative)
        let d = 32
        // The centroids by hand (float64 over the table's rows).
        var centroid: [String: [Double]] = [:]
        for g in genres {
            let members = (0..<9).filter { old[$0].genres == [g] }
            centroid[g] = (0..<d).map { j in members.map { Double(dual.itemTable.vectors.data[$0 * d + j]) }.reduce(0, +) / Double(members.count) }
        }
        dual.contentPrior = ContentPrior(weight: 0.4, table: dual.itemTable.vectors, catalog: old, trained: [Bool](repeating: true, count: 9))
        let (catalog, added, changed) = old.updating(with: [
            Item(id: "new-a", title: "A film nobody trained on", genres: ["Sci-Fi", "Drama"]),
            Item(id: "new-b", title: "Another", genres: ["Western"]),
            Item(id: "3", title: "Movie 3, re-titled", genres: ["Comedy"]),
        ])
        XCTAssertEqual(added, [9, 10])
        let newStats = stats + [ItemStats(count: 0, meanRating: 0), ItemStats(count: 0, meanRating: 0)]
        let next = try XCTUnwrap(try dual.updatingCatalog(catalog, added: added, changed: changed, itemStats: newStats) as? DualHeadModel)
        XCTAssertNotNil(next.contentPrior, "later updates blend too")
        let readouts = model.readout(next.itemTokens([9, 10, 2].map { Prompts.item(catalog[$0], stats: newStats[$0]) }))
        let text = { (k: Int) in (0..<d).map { Double(readouts.data[k * d + $0]) } }
        var expected = zip(text(0), zip(centroid["Sci-Fi"]!, centroid["Drama"]!)).map { 0.6 * $0 + 0.4 * ($1.0 + $1.1) / 2 }
        let n = expected.map { $0 * $0 }.reduce(0, +).squareRoot()
        expected = expected.map { $0 / n }
        for j in 0..<d { XCTAssertEqual(Double(next.itemTable.vectors.data[9 * d + j]), expected[j], accuracy: 1e-5) }
        // "Western" has no trained item, and item 3 (index 2) has interactions: both keep their text read-out.
        for j in 0..<d {
            XCTAssertEqual(Double(next.itemTable.vectors.data[10 * d + j]), text(1)[j], accuracy: 1e-5)
            XCTAssertEqual(Double(next.itemTable.vectors.data[2 * d + j]), text(2)[j], accuracy: 1e-5)
        }
    }
}
