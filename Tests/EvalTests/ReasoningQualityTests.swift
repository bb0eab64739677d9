import Eval
import Foundation
import XCTest

final class ReasoningQualityTests: XCTestCase {
    /// Worked by hand: 2 quoted titles (the third bracket is never closed), 1 in the catalogue and the history;
    /// the second chain "a b c d a b c d" has 5 4-grams, 4 distinct.
    func testHandWorkedExample() {
        let q = ReasoningQuality.measure(
            chains: ["1d ago: [Toy Story (1995)] [Nope]", "a b c d a b c d", "[Heat (1995)"],
            histories: [["Toy Story (1995)"], [], ["Heat (1995)"]],
            catalogue: ["Toy Story (1995)", "Heat (1995)", "Nope 2"])
        XCTAssertEqual(q.chains, 3)
        XCTAssertEqual(q.quotedTitles, 2, "an unclosed bracket quotes nothing")
        XCTAssertEqual(q.titlesInCatalogue, 0.5)
        XCTAssertEqual(q.titlesInHistory, 0.5)
        // Words: chain 1 "1d ago: [Toy Story (1995)] [Nope]" = 6 words (5 bigrams), chain 2 = 8 words (7 bigrams,
        // distinct: ab bc cd da = 4), chain 3 = 2 words (1 bigram); total 13 bigrams, 5 + 4 + 1 = 10 distinct.
        XCTAssertEqual(q.distinct2!, 10.0 / 13.0, accuracy: 1e-12)
        // Repetition-4: chain 1 has 3 distinct of 3 (0), chain 2 has 4 distinct of 5 (0.2); chain 3 has no 4-gram.
        XCTAssertEqual(q.repetition4!, 0.1, accuracy: 1e-12)
        XCTAssertEqual(q.meanWords, 16.0 / 3.0, accuracy: 1e-12)
    }

    func testEmptyAndDegenerate() {
        let none = ReasoningQuality.measure(chains: [], histories: [], catalogue: [])
        XCTAssertNil(none.distinct2); XCTAssertNil(none.titlesInCatalogue); XCTAssertEqual(none.meanWords, 0)
        let loop = ReasoningQuality.measure(chains: [String(repeating: "One ", count: 40)], histories: [[]], catalogue: [])
        XCTAssertEqual(loop.distinct2!, 1.0 / 39.0, accuracy: 1e-12)
        XCTAssertEqual(loop.repetition4!, 1 - 1.0 / 37.0, accuracy: 1e-12)
        XCTAssertEqual(ReasoningQuality.quotedTitles("[a [b] c]\n[x\ny] [ z ]"), ["b", "z"])
    }

    /// Random chains over a small vocabulary of words and bracketed titles, against the Python reference.
    func testMatchesPythonReference() throws {
        var rng = SystemRandomNumberGenerator()
        let titles = ["Toy Story (1995)", "Heat (1995)", "Fargo (1996)", "Alien (1979)", "Made Up (2000)"]
        let pieces = ["the", "user", "likes", "[", "]", "\n", "One", "52", "ago:"] + titles.map { "[\($0)]" }
        var chains: [String] = [], histories: [[String]] = []
        for _ in 0..<60 {
            let n = Int.random(in: 0..<30, using: &rng)
            chains.append((0..<n).map { _ in pieces.randomElement(using: &rng)! }.joined(separator: Bool.random(using: &rng) ? " " : ""))
            histories.append(Array(titles.shuffled(using: &rng).prefix(2)))
        }
        let catalogue = Array(titles.prefix(4))
        let q = ReasoningQuality.measure(chains: chains, histories: histories, catalogue: Set(catalogue))
        let request = try JSONSerialization.data(withJSONObject: ["chains": chains, "histories": histories, "catalogue": catalogue])
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("reference/reasoning_quality.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(request)
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "python3 reference failed")
        let ref = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(q.quotedTitles, ref["quoted"] as? Int)
        func check(_ mine: Double?, _ key: String) {
            if let r = ref[key] as? Double { XCTAssertEqual(mine ?? -1, r, accuracy: 1e-12, key) } else { XCTAssertNil(mine, key) }
        }
        check(q.titlesInCatalogue, "in_catalogue")
        check(q.titlesInHistory, "in_history")
        check(q.distinct2, "distinct2")
        check(q.repetition4, "repetition4")
        check(q.meanWords, "mean_words")
    }
}
