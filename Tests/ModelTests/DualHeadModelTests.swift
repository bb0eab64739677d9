// The dual-head recommender: the direct path equals readout + cosine / tau, reasoning scores its chains with the same
// head, history items are masked, and the item table is cached beside the checkpoint and rebuilt when weights change.
import Data
import Foundation
import XCTest
@testable import Model
import Tensor

final class DualHeadModelTests: XCTestCase {
    let catalog = Catalog(items: (1...12).map { Item(id: "\($0)", title: "Movie \($0)", year: 1990 + $0, genres: ["Drama"]) })

    func itemPrompts() -> [String] {
        catalog.items.map { Prompts.item($0, stats: ItemStats(count: 3, meanRating: 4)) }
    }

    func testDirectPathIsReadoutCosineOverTau() throws {
        let model = try Fixtures.randomModel(Fixtures.tinyTied, seed: 2)
        let tokenizer = try Fixtures.tokenizer()
        let dual = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: catalog, itemPrompts: itemPrompts(),
                                     progress: false, promptFormat: .targetRelative)
        let histories = [UserHistory(items: [0, 3], timestamps: [100, 5000], ratings: [4, 5]), UserHistory(items: [7])]
        let scores = try dual.scoreAll(histories)
        XCTAssertEqual(scores.count, 2 * catalog.count)
        // By hand: the prompt text, its readout, the item texts' readouts, cosine / tau.
        let text = DualHeadFormat.directText(userPrompt: Prompts.user(history: histories[0], catalog: catalog, targetTime: 5000, format: .targetRelative))
        XCTAssertTrue(text.hasSuffix("\n<answer>"))
        let user = model.readout([tokenizer.encode(text)]).toArray()
        let items = model.readout(itemPrompts().map { tokenizer.encode(DualHeadFormat.itemText(itemPrompt: $0)) })
        for i in 0..<catalog.count {
            var dot: Float = 0
            for j in 0..<32 { dot += user[j] * items.data[i * 32 + j] }
            XCTAssertEqual(scores[i], dot / 0.02, accuracy: 1e-3)
        }
        let similar = try dual.similarities(to: 4)
        XCTAssertEqual(similar[4], 1, accuracy: 1e-5)
        XCTAssertTrue(similar.allSatisfy { $0 <= 1.0001 })
        let top = try dual.recommend(histories, k: 5)
        XCTAssertFalse(top[0].contains { [0, 3].contains($0.index) })
        XCTAssertEqual(top[1].count, 5)
        XCTAssertThrowsError(try dual.scoreAll([UserHistory(items: [99])]))
    }

    /// A bfloat16 network scores with its own readouts against its item table packed in bfloat16: the same cosines /
    /// tau, to bfloat16's rounding of the user vector and the table (within 2^-8 relative of each product).
    func testBFloat16DirectPathIsItsReadoutCosineOverTau() throws {
        try XCTSkipUnless(PackedMatrix.Precision.bfloat16.isSupported, "this CPU lacks AVX512_BF16")
        let model = try Fixtures.randomModel(Fixtures.tinyTied, seed: 2).packedForInference(precision: .bfloat16)
        let tokenizer = try Fixtures.tokenizer()
        let dual = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: catalog, itemPrompts: itemPrompts(),
                                     progress: false, promptFormat: .targetRelative)
        let history = UserHistory(items: [0, 3], timestamps: [100, 5000], ratings: [4, 5])
        let scores = try dual.scoreAll([history])
        let text = DualHeadFormat.directText(userPrompt: Prompts.user(history: history, catalog: catalog, targetTime: 5000, format: .targetRelative))
        let user = model.readout([tokenizer.encode(text)]).toArray()
        let items = dual.itemTable.vectors
        for i in 0..<catalog.count {
            var dot: Float = 0
            for j in 0..<32 { dot += user[j] * items.data[i * 32 + j] }
            XCTAssertEqual(scores[i], dot / 0.02, accuracy: 0.5, "item \(i)")   // unit vectors: |score| <= 50
        }
    }

    /// An int8 item table scores with the same readouts against each item vector quantised here (scale max|v| / 127,
    /// values rounded to nearest even): the float64 cosine with the dequantised vector / tau, to float rounding; the
    /// catalogue update keeps the int8 table.
    func testInt8ItemTableScoresTheDequantisedTable() throws {
        let model = try Fixtures.randomModel(Fixtures.tinyTied, seed: 2)
        let tokenizer = try Fixtures.tokenizer()
        let dual = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: catalog, itemPrompts: itemPrompts(),
                                     progress: false, itemTablePrecision: .int8, promptFormat: .targetRelative)
        XCTAssertEqual(dual.itemTablePrecision, .int8)
        let history = UserHistory(items: [0, 3], timestamps: [100, 5000], ratings: [4, 5])
        let scores = try dual.scoreAll([history])
        let text = DualHeadFormat.directText(userPrompt: Prompts.user(history: history, catalog: catalog, targetTime: 5000, format: .targetRelative))
        let user = model.readout([tokenizer.encode(text)]).toArray()
        let items = dual.itemTable.vectors
        for i in 0..<catalog.count {
            let row = (0..<32).map { items.data[i * 32 + $0] }
            let scale = row.map { abs($0) }.max()! / 127
            var dot = 0.0
            for j in 0..<32 { dot += Double(user[j]) * Double(scale) * Double((row[j] / scale).rounded(.toNearestOrEven)) }
            XCTAssertEqual(Double(scores[i]), dot / 0.02, accuracy: 5e-4, "item \(i)")
        }
        // The ranking path (VNNI with exact re-scoring where the CPU has it) ranks as the exact scores do.
        let histories = [history, UserHistory(items: [1, 2, 5], timestamps: [10, 20, 30], ratings: [3, 4, 5])]
        let exact = try dual.scoreAll(histories)
        let ranked = try dual.recommend(histories, k: 3)
        for (q, h) in histories.enumerated() {
            let row = exact[(q * catalog.count)..<((q + 1) * catalog.count)]
            let expected = row.withUnsafeBufferPointer { Ranking.topK($0, k: 3, masked: Set(h.items)).map(\.index) }
            XCTAssertEqual(ranked[q].map(\.index), expected, "history \(q)")
        }
        let updated = try dual.updatingCatalog(catalog, added: [], changed: [1], itemStats: catalog.items.map { _ in
            ItemStats(count: 3, meanRating: 4) }) as! DualHeadModel
        XCTAssertEqual(updated.itemTablePrecision, .int8)
    }

    func testReasoningScoresEqualTheDirectPathOnTheSameText() throws {
        let model = try Fixtures.randomModel(Fixtures.tinyUntied, seed: 8)
        let tokenizer = try Fixtures.tokenizer()
        let dual = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: catalog, itemPrompts: itemPrompts(),
                                     progress: false, promptFormat: .targetRelative)
        let histories = [UserHistory(items: [1, 2]), UserHistory(items: [5, 6, 9])]
        let results = dual.reason(histories, maxNewTokens: 10)
        for (q, r) in results.enumerated() {
            XCTAssertTrue(r.text.hasSuffix("<answer>"))
            // The chain's readout equals a fresh prefill of prompt + reasoning (which ends in <answer>).
            let text = DualHeadFormat.reasoningText(userPrompt: dual.userPrompt(histories[q]))
            let unit = model.readout([tokenizer.encode(text) + r.tokens])
            var expected = [Float](repeating: 0, count: catalog.count)
            dual.score(userVectors: unit.pointer, count: 1, into: &expected)
            for i in 0..<catalog.count { XCTAssertEqual(r.scores[i], expected[i], accuracy: 2e-3) }
        }
    }

    func testItemTableIsCachedAndRebuiltWhenWeightsChange() throws {
        let model = try Fixtures.randomModel(Fixtures.tinyTied, seed: 4)
        let tokenizer = try Fixtures.tokenizer()
        let dir = Fixtures.temporaryDirectory("itemtable")
        let path = dir + "/" + ItemTable.fileName
        // Without writeCache (serving, evaluation) nothing is written; with it (training) the table is cached.
        _ = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: catalog, itemPrompts: itemPrompts(),
                              cachePath: path, progress: false, promptFormat: .targetRelative)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        let first = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: catalog, itemPrompts: itemPrompts(),
                                      cachePath: path, writeCache: true, progress: false, promptFormat: .targetRelative)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
        let reused = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: catalog, itemPrompts: itemPrompts(),
                                       cachePath: path, progress: false, promptFormat: .targetRelative)
        XCTAssertEqual(reused.itemTable.vectors.toArray(), first.itemTable.vectors.toArray(), "a matching cache is read")
        let cached = try ItemTable.load(path: path, weightsHash: first.itemTable.weightsHash,
                                        promptsHash: first.itemTable.promptsHash, count: catalog.count, dimension: 32)
        XCTAssertEqual(cached?.vectors.toArray(), first.itemTable.vectors.toArray())
        // Change one weight: the stale table is ignored and rebuilt.
        model.parameters.tensor("model.norm.weight")[0] += 0.5
        let second = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: catalog, itemPrompts: itemPrompts(),
                                       cachePath: path, writeCache: true, progress: false, promptFormat: .targetRelative)
        XCTAssertNotEqual(second.itemTable.weightsHash, first.itemTable.weightsHash)
        XCTAssertNotEqual(second.itemTable.vectors.toArray(), first.itemTable.vectors.toArray())
        let reread = try SafetensorsFile(path: path)
        XCTAssertEqual(reread.metadata["weights_hash"], second.itemTable.weightsHash)
    }

    func testChainsPerHistoryEqualRepeatedHistories() throws {
        let model = try Fixtures.randomModel(Fixtures.tinyHead16, seed: 14)
        let tokenizer = try Fixtures.tokenizer()
        let dual = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: catalog, itemPrompts: itemPrompts(),
                                     progress: false, promptFormat: .targetRelative)
        let histories = [UserHistory(items: [1, 2]), UserHistory(items: [3])]
        let sampling = SamplingSettings(temperature: 1.5, topK: 50, seed: 9)
        let grouped = dual.reason(histories, settings: sampling, maxNewTokens: 8, chainsPerHistory: 3)
        let repeated = dual.reason(histories.flatMap { Array(repeating: $0, count: 3) }, settings: sampling, maxNewTokens: 8)
        XCTAssertEqual(grouped.map(\.tokens), repeated.map(\.tokens))
        for (a, b) in zip(grouped, repeated) {
            for i in 0..<catalog.count { XCTAssertEqual(a.scores[i], b.scores[i], accuracy: 2e-3) }
        }
    }
}


/// New items, recommendable at once: a catalogue version encodes the added and changed items into a new table and
/// leaves the old model and table untouched.
final class DualHeadCatalogTests: XCTestCase {
    func testUpdatingTheCatalogueEncodesNewItemsLikeAFullBuild() throws {
        let model = try Fixtures.randomModel(Fixtures.tinyTied, seed: 5)
        let tokenizer = try Fixtures.tokenizer()
        let old = Catalog(items: (1...10).map { Item(id: "\($0)", title: "Movie \($0)", genres: ["Drama"]) })
        let stats = (0..<10).map { ItemStats(count: $0, meanRating: 3.5) }
        let dual = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: old,
                                     itemPrompts: (0..<10).map { Prompts.item(old[$0], stats: stats[$0]) }, progress: false, promptFormat: .targetRelative)
        let before = Array(UnsafeBufferPointer(start: dual.itemTable.vectors.data, count: 10 * 32))
        let (catalog, added, changed) = old.updating(with: [
            Item(id: "new-a", title: "A film nobody trained on", genres: ["Sci-Fi"]),
            Item(id: "3", title: "Movie 3, re-titled", genres: ["Comedy"]),
            Item(id: "new-b", title: "Another", description: "Long description of a new item."),
        ])
        XCTAssertEqual(added, [10, 11])
        XCTAssertEqual(changed, [2])
        let newStats = stats + [ItemStats(count: 0, meanRating: 0), ItemStats(count: 0, meanRating: 0)]
        let next = try XCTUnwrap(try dual.updatingCatalog(catalog, added: added, changed: changed, itemStats: newStats) as? DualHeadModel)
        XCTAssertEqual(next.catalog.count, 12)
        XCTAssertEqual(next.recommendableItems, 12)
        // The reference: a table built from scratch over the new catalogue.
        let full = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: catalog,
                                     itemPrompts: (0..<12).map { Prompts.item(catalog[$0], stats: newStats[$0]) }, progress: false, promptFormat: .targetRelative)
        for row in 0..<12 {
            for j in 0..<32 {
                XCTAssertEqual(next.itemTable.vectors.data[row * 32 + j], full.itemTable.vectors.data[row * 32 + j], accuracy: 1e-5,
                               "row \(row)")
            }
        }
        let history = [UserHistory(items: [0, 10], timestamps: [10, 20], ratings: [4, 5])]
        let a = try next.scoreAll(history), b = try full.scoreAll(history)
        for i in 0..<12 { XCTAssertEqual(a[i], b[i], accuracy: 1e-3) }
        // The old version is untouched: same catalogue, same table bytes.
        XCTAssertEqual(dual.catalog.count, 10)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: dual.itemTable.vectors.data, count: 10 * 32)), before)
    }
}
