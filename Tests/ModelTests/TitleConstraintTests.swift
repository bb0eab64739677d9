// Constrained decoding of quoted titles against a tiny byte-level vocabulary whose merges straddle the brackets
// ("Ġ[", "[H", ")]", "]Ġ"): random logits biased towards opening brackets, many sampled chains; every span a chain
// closes must be a catalogue title (checked by a bracket scan written here, independent of the trie). The same
// chains without the constraint close spans that are not titles, so the check can fail.
import Data
import Foundation
@testable import Model
import XCTest

final class TitleConstraintTests: XCTestCase {
    let titles = ["Heat (1995)", "Heart (1999)", "Alien (1979)", "Ali"]

    func tinyTokenizer() throws -> Tokenizer {
        func bl(_ s: String) -> String { String(s.utf8.map { ByteLevel.unicodeOfByte[Int($0)] }) }
        let pairs: [(String, String)] = [(" ", "["), ("[", "H"), ("e", "a"), (")", "]"), ("]", " "), ("1", "9"),
                                         ("A", "l"), ("Al", "i"), ("t", " "), ("r", "t")]
        let merges = pairs.map { (bl($0.0), bl($0.1)) }
        let tokens = ["<answer>"] + (0..<256).map { String(ByteLevel.unicodeOfByte[$0]) } + merges.map { $0.0 + $0.1 }
        return try Tokenizer(tokens: tokens, merges: merges, addedTokens: [.init(content: "<answer>", id: 0)])
    }

    /// Closed "[...]" spans, by a plain scan (a "[" restarts a span, a newline ends it).
    func spans(_ text: String) -> [String] {
        var out: [String] = [], current: String?
        for c in text {
            if c == "[" { current = "" } else if c == "]" { if let s = current { out.append(s) }; current = nil }
            else if c == "\n" { current = nil } else { current?.append(c) }
        }
        return out
    }

    /// `only`: a trie of these titles built over the catalogue trie's vocabulary (one user's history).
    func chains(constrained: Bool, only: [String]? = nil) throws -> [String] {
        let tokenizer = try tinyTokenizer()
        let catalogue = TitleTrie(titles: titles, tokenizer: tokenizer)
        let trie = only.map { TitleTrie(titles: $0, vocabularyOf: catalogue) } ?? catalogue
        let vocab = tokenizer.vocabularySize
        var rng = SplitMix64(seed: 11)
        var texts: [String] = []
        for c in 0..<60 {
            var decoder = ChainDecoder(tokenizer: tokenizer, settings: SamplingSettings(temperature: 1, seed: UInt64(c)),
                                       maxNewTokens: 200, titles: constrained ? trie : nil)
            while !decoder.isFinishing {
                var logits = (0..<vocab).map { _ in rng.nextGaussian() }
                logits[0] = -.infinity   // no early <answer>: chains run to the limit
                for t in 1..<vocab {
                    let s = tokenizer.decode([t])
                    if s.contains("[") { logits[t] += 4 }
                    if s.contains("]") { logits[t] += 3 }
                }
                _ = logits.withUnsafeBufferPointer { decoder.next(logits: $0.baseAddress!, vocab: vocab) }
            }
            texts.append(tokenizer.decode(decoder.tokens))
        }
        return texts
    }

    func testOnlyCatalogueTitlesAreClosedInsideBrackets() throws {
        let texts = try chains(constrained: true)
        let quoted = texts.flatMap(spans)
        XCTAssertGreaterThan(quoted.count, 100, "fixture: too few closed spans to test anything")
        for q in quoted { XCTAssertTrue(titles.contains(q), "a closed span that is not a title: [\(q)]") }
        // Every title can be reached, including the one that is a prefix of another ("Ali" / "Alien (1979)").
        XCTAssertEqual(Set(quoted), Set(titles))
    }

    func testAHistoryTrieAllowsOnlyItsOwnTitles() throws {
        let history = ["Heart (1999)", "Ali"]
        let quoted = try chains(constrained: true, only: history).flatMap(spans)
        XCTAssertGreaterThan(quoted.count, 100, "fixture: too few closed spans to test anything")
        XCTAssertEqual(Set(quoted), Set(history))
    }

    func testWithoutTheConstraintSpansAreNotTitles() throws {
        let quoted = try chains(constrained: false).flatMap(spans)
        XCTAssertGreaterThan(quoted.filter { !titles.contains($0) }.count, 50)
    }
}
