import XCTest
@testable import Data

final class PromptTests: XCTestCase {
    func testElapsedFormatting() {
        XCTAssertEqual(Prompts.elapsed(3 * 86_400 + 4 * 3600 + 1800), "3d 4.5h")
        XCTAssertEqual(Prompts.elapsed(86_400), "1d 0.0h")
        XCTAssertEqual(Prompts.elapsed(720), "12.0min")
        XCTAssertEqual(Prompts.elapsed(5400), "1.5h")
        XCTAssertEqual(Prompts.elapsed(59), "59s")
        XCTAssertEqual(Prompts.elapsed(-5), "0s")
    }

    func testUserPromptShowsTheLast20ItemsOldestFirst() {
        let catalog = Catalog(items: (0..<30).map { Item(id: String($0), title: "Film \($0)", year: 1990) })
        let items = Array(0..<25)
        let h = UserHistory(items: items, timestamps: items.map { Int64(1000 + $0 * 3600) },
                            ratings: items.map { $0 == 24 ? 3.5 : 4 })
        let target = Int64(1000 + 24 * 3600 + 720)
        let lines = Prompts.user(history: h, catalog: catalog, targetTime: target, format: .targetRelative).split(separator: "\n")
        XCTAssertEqual(lines.count, 21)
        XCTAssertEqual(String(lines[0]), Prompts.userInstruction)
        XCTAssertEqual(String(lines[1]), "19.2h ago: [Film 5 (1990)] (4)")
        XCTAssertEqual(String(lines[20]), "12.0min ago: [Film 24 (1990)] (3.5)")
    }

    /// A checkpoint without `prompt_format` is target-relative (every one from before formats were recorded); an
    /// unknown name is refused naming the field.
    func testRecordedPromptFormats() throws {
        XCTAssertEqual(try PromptFormat.recorded(nil), .targetRelative)
        XCTAssertEqual(try PromptFormat.recorded("stable-prefix"), .stablePrefix)
        XCTAssertThrowsError(try PromptFormat.recorded("stable")) {
            XCTAssertTrue("\($0)".contains("prompt_format: unknown format 'stable'"), "\($0)")
        }
    }

    func testItemPrompt() {
        let long = (1...150).map { "w\($0)" }.joined(separator: " ")
        let p = Prompts.item(Item(id: "7", title: "Heat", year: 1995, genres: ["Action"], description: long),
                             stats: ItemStats(count: 12, meanRating: 3.96))
        let lines = p.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines[0...3], ["Summarise the item.", "Title: Heat (1995)", "Average rating: 4.0", "Raters: 12"])
        XCTAssertTrue(lines[4].hasPrefix("Description: w1 w2 "))
        XCTAssertTrue(lines[4].hasSuffix("w100 ..."))
        let g = Prompts.item(Item(id: "B0X", genres: ["Drama", "War"]), stats: ItemStats(count: 0, meanRating: 0))
        XCTAssertEqual(g, "Summarise the item.\nTitle: B0X\nAverage rating: none\nRaters: 0\nGenres: Drama, War")
        XCTAssertEqual(Prompts.answerTag, "<answer>")
    }
}
