// Training in either prompt format: every shown history line but the first gets its line target (the row of the
// newline before it), whatever lines follow the history (stable-prefix's `Next` line), and the format reaches the
// checkpoint's metadata.
import Data
import Foundation
import Model
import XCTest
@testable import Train

final class PromptFormatTrainingTests: XCTestCase {
    func testEveryShownLineButTheFirstHasItsLineTargetInBothFormats() throws {
        let data = try TrainFixtures.toyDataset()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let dataset = try DatasetLoader.load(data)
        for format in PromptFormat.allCases {
            let corpus = TrainingCorpus(dataset: dataset, split: Splits.make(.loo, dataset), promptFormat: format)
            corpus.use(tokenizer: try corpus.trainTokenizer(vocabularySize: 300, userPrompts: 10, seed: 1), maxPositions: 4096)
            let user = corpus.trainableUsers.max { corpus.sequences[$0].count < corpus.sequences[$1].count }!
            let n = corpus.sequences[user].count
            XCTAssertGreaterThan(n, 6)
            for end in Set([2, 5, n - 1]).sorted() {
                let w = TrainingCorpus.Window(user: user, end: end)
                let e = corpus.example(w)
                let start = Prompts.shownStart(count: end, format: format)
                XCTAssertEqual(e.lineTargets, Array(corpus.sequences[user].items[(start + 1)..<end]), "\(format) end \(end)")
                // Each line row is the newline that ends the line before its target's.
                let newline = corpus.tokenizer!.encode("\n")[0]
                XCTAssertTrue(e.lineRows.allSatisfy { e.tokens[$0] == newline })
            }
        }
        XCTAssertEqual(try TrainConfig.read(.object([:])).promptFormat, .targetRelative)
        XCTAssertEqual(try TrainConfig.read(.object(["prompt_format": .string("stable-prefix")])).promptFormat, .stablePrefix)
        XCTAssertThrowsError(try TrainConfig.read(.object(["prompt_format": .string("relative")]))) {
            XCTAssertTrue("\($0)".contains("prompt_format"), "\($0)")
        }
    }
}
