// Title dropout in the rec stage (`title_dropout`): the title-less rendering is the item's year and genres only
// (checked against hand-written prompts), its draw takes the configured share independently of stats dropout's, and a
// run with it trains on different inputs than one without (its parameters differ), so the setting reaches the step.
import Data
import Foundation
import Model
import XCTest
@testable import Train

final class TitleDropoutTests: XCTestCase {
    func testTitlelessPromptsKeepYearAndGenresOnly() throws {
        XCTAssertEqual(Prompts.itemWithoutTitle(Item(id: "7", title: "Heat", year: 1995, genres: ["Action", "Crime"])),
                       "Summarise the item.\nYear: 1995\nGenres: Action, Crime")
        XCTAssertEqual(Prompts.itemWithoutTitle(Item(id: "8", title: "Untitled", genres: ["Drama"])),
                       "Summarise the item.\nGenres: Drama")
        XCTAssertEqual(Prompts.itemWithoutTitle(Item(id: "9", title: "A book", year: 2001, genres: ["Books"], description: "A long tale.")),
                       "Summarise the item.\nYear: 2001\nDescription: A long tale.")
        let data = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let dataset = try DatasetLoader.load(data)
        let corpus = TrainingCorpus(dataset: dataset, split: Splits.make(.loo, dataset), promptFormat: .current)
        // Item "1": title "Film number 1", year 1981, genre ["Drama", "Comedy", "Action"][1 % 3].
        XCTAssertEqual(corpus.titlelessItemPrompt(0), "Summarise the item.\nYear: 1981\nGenres: Comedy")
        let tokenizer = try corpus.trainTokenizer(vocabularySize: 300, userPrompts: 10, seed: 1)
        corpus.use(tokenizer: tokenizer, maxPositions: 512)
        XCTAssertEqual(tokenizer.decode(corpus.titlelessItemTokens(0)),
                       DualHeadFormat.itemText(itemPrompt: corpus.titlelessItemPrompt(0)))
    }

    func testTheDrawTakesTheShareIndependentlyOfStatsDropout() {
        var stage = RecStage()
        XCTAssertFalse((0..<1000).contains { stage.rendersWithoutTitle(item: $0, step: 3, seed: 1) })
        stage.titleDropout = 1
        XCTAssertTrue((0..<1000).allSatisfy { stage.rendersWithoutTitle(item: $0, step: 3, seed: 1) })
        stage.titleDropout = 0.3
        stage.newItemShare = 0.5
        var titleless = 0, both = 0
        let items = 200, steps = 200
        for step in 0..<steps { for item in 0..<items where stage.rendersWithoutTitle(item: item, step: step, seed: 1) {
            titleless += 1
            if stage.rendersAsNew(item: item, step: step, seed: 1) { both += 1 }
        } }
        // 40,000 Bernoulli(.3) draws: sd .0023, +-.012 is five. Independent of the stats draw: half of them are
        // also drawn as new (12,000 Bernoulli(.5) draws: sd .0046, +-.023 is five).
        XCTAssertEqual(Double(titleless) / Double(items * steps), 0.3, accuracy: 0.012)
        XCTAssertEqual(Double(both) / Double(titleless), 0.5, accuracy: 0.023)
        let a = (0..<500).map { stage.rendersWithoutTitle(item: $0, step: 7, seed: 1) }
        XCTAssertEqual(a, (0..<500).map { stage.rendersWithoutTitle(item: $0, step: 7, seed: 1) })
        XCTAssertNotEqual(a, (0..<500).map { stage.rendersWithoutTitle(item: $0, step: 7, seed: 2) })
    }

    func testTheShareReachesTheTrainingStep() throws {
        let data = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: data) }
        func train(share: Float, name: String) throws -> [Float] {
            try TrainFixtures.embeddingAfterToyRecStage(dataset: data, name: name) { $0.titleDropout = share }
        }
        let plain = try train(share: 0, name: "plain")
        XCTAssertNotEqual(plain, try train(share: 0.5, name: "half"))
    }
}
