// Stats dropout in the rec stage (`new_item_share`): the new-item rendering of an item prompt is the text a new
// item gets (checked against hand-written prompts), the draw renders about the configured share of (step, item)
// pairs, each item in some steps and not in others, and a run with the share trains on different inputs than one
// without (its parameters differ), so the setting reaches the step.
import Data
import Foundation
import Model
import XCTest
@testable import Train

final class NewItemShareTests: XCTestCase {
    func testNewItemPromptsAreTheTextOfAnItemWithoutRatings() throws {
        let data = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let dataset = try DatasetLoader.load(data)
        let corpus = TrainingCorpus(dataset: dataset, split: Splits.make(.loo, dataset), promptFormat: .current)
        // Item "1": title "Film number 1", year 1981, genre ["Drama", "Comedy", "Action"][1 % 3].
        XCTAssertEqual(corpus.newItemPrompt(0),
                       "Summarise the item.\nTitle: Film number 1 (1981)\nAverage rating: none\nRaters: 0\nGenres: Comedy")
        XCTAssertTrue(corpus.itemPrompts[0].hasPrefix("Summarise the item.\nTitle: Film number 1 (1981)\nAverage rating: "))
        XCTAssertFalse(corpus.itemPrompts[0].contains("Raters: 0\n"), corpus.itemPrompts[0])
        let tokenizer = try corpus.trainTokenizer(vocabularySize: 300, userPrompts: 10, seed: 1)
        corpus.use(tokenizer: tokenizer, maxPositions: 512)
        // The last item too: renderings are made per item on demand, not only for the first.
        let last = dataset.catalog.count - 1
        XCTAssertEqual(tokenizer.decode(corpus.newItemTokens(last)),
                       DualHeadFormat.itemText(itemPrompt: Prompts.item(dataset.catalog[last], stats: ItemStats(count: 0, meanRating: 0))))
        XCTAssertEqual(tokenizer.decode(corpus.newItemTokens(0)),
                       DualHeadFormat.itemText(itemPrompt: corpus.newItemPrompt(0)))
    }

    func testTheDrawRendersTheShareEachItemSometimes() {
        var stage = RecStage()
        XCTAssertFalse((0..<1000).contains { stage.rendersAsNew(item: $0, step: 3, seed: 1) })
        stage.newItemShare = 1
        XCTAssertTrue((0..<1000).allSatisfy { stage.rendersAsNew(item: $0, step: 3, seed: 1) })
        stage.newItemShare = 0.3
        let items = 200, steps = 200
        var perItem = [Int](repeating: 0, count: items), total = 0
        for step in 0..<steps { for item in 0..<items where stage.rendersAsNew(item: item, step: step, seed: 1) {
            perItem[item] += 1; total += 1
        } }
        // 40,000 Bernoulli(.3) draws: standard deviation .0023, so +-.012 is five of them.
        XCTAssertEqual(Double(total) / Double(items * steps), 0.3, accuracy: 0.012)
        // Per item, 200 draws: sd .032; every item lies within +-.17 (five sd) of .3, so none is always or never new.
        for (item, n) in perItem.enumerated() { XCTAssertEqual(Double(n) / Double(steps), 0.3, accuracy: 0.17, "item \(item)") }
        // The same (seed, step, item) always draws the same; another seed draws another pattern.
        let a = (0..<500).map { stage.rendersAsNew(item: $0, step: 7, seed: 1) }
        XCTAssertEqual(a, (0..<500).map { stage.rendersAsNew(item: $0, step: 7, seed: 1) })
        XCTAssertNotEqual(a, (0..<500).map { stage.rendersAsNew(item: $0, step: 7, seed: 2) })
        XCTAssertNotEqual(a, (0..<500).map { stage.rendersAsNew(item: $0, step: 8, seed: 1) })
    }

    func testTheShareReachesTheTrainingStep() throws {
        let data = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: data) }
        func train(share: Float, name: String) throws -> [Float] {
            try TrainFixtures.embeddingAfterToyRecStage(dataset: data, name: name) { $0.newItemShare = share }
        }
        let plain = try train(share: 0, name: "plain"), again = try train(share: 0, name: "again")
        XCTAssertEqual(plain, again, "fixture: two runs of one config must train identically")
        XCTAssertNotEqual(plain, try train(share: 0.5, name: "half"))
    }
}
