// The byte-level BPE tokenizer: round trips on arbitrary UTF-8, GPT-2 pre-tokenisation, a hand-checked merge case,
// tokenizer.json save/load, and the trainer.
import Data
import XCTest
@testable import Model

final class TokenizerTests: XCTestCase {
    func testRoundTripOnArbitraryUTF8() throws {
        let tokenizer = try Fixtures.tokenizer()
        var rng = SplitMix64(seed: 1)
        let pool: [Unicode.Scalar] = ["a", "Z", " ", "\n", "\t", "'", "s", "1", "!", "<", ">", "é", "中", "😀", "\u{0}",
                                      "\u{200B}", "\u{3000}", "ß", "٣", "ⅷ", "\r"]
        var samples = ["", " ", "  x", "hello world", "<answer>", "a<answer>b</answer>", "it's we'll they've I'M",
                       "Toy Story (1995)\n  3d 4.5h ago", "\u{10FFFF}\u{E000}", "<|endoftext|><answer>"]
        for _ in 0..<300 {
            var s = String.UnicodeScalarView()
            for _ in 0..<Int(rng.next() % 24) { s.append(pool[Int(rng.next() % UInt64(pool.count))]) }
            samples.append(String(s))
        }
        for text in samples {
            let ids = tokenizer.encode(text)
            XCTAssertTrue(ids.allSatisfy { $0 >= 0 && $0 < tokenizer.vocabularySize })
            XCTAssertEqual(tokenizer.decode(ids), text)
        }
        XCTAssertEqual(tokenizer.encode("x<answer>"), tokenizer.encode("x") + [tokenizer.id(of: "<answer>")!])
    }

    func testPreTokenisationFollowsGPT2() {
        func split(_ s: String) -> [String] {
            ByteLevel.preTokenize(s.unicodeScalars).map { var v = String.UnicodeScalarView(); v.append(contentsOf: $0); return String(v) }
        }
        XCTAssertEqual(split("Hello world"), ["Hello", " world"])
        XCTAssertEqual(split("it's 2024!!"), ["it", "'s", " 2024", "!!"])
        XCTAssertEqual(split("a  b"), ["a", " ", " b"])
        XCTAssertEqual(split("a\n\nb"), ["a", "\n", "\n", "b"])
        XCTAssertEqual(split("end  "), ["end", "  "])
        XCTAssertEqual(split("x \n y"), ["x", " \n", " y"])  // checked against Python's re with the ASCII pattern
        XCTAssertEqual(split("(1995)"), ["(", "1995", ")"])
        XCTAssertEqual(split("中文abc"), ["中文abc"])
    }

    /// Vocabulary: bytes, then "a b" -> "ab", "ab c" -> "abc", "b c" -> "bc" (rank 2, below "ab c").
    func testHandCheckedMerges() throws {
        var tokens = ["<answer>"] + (0..<256).map { String(ByteLevel.unicodeOfByte[$0]) }
        tokens += ["ab", "abc", "bc", "Ġa"]
        let merges = [("a", "b"), ("ab", "c"), ("b", "c"), ("Ġ", "a")]
        let t = try Tokenizer(tokens: tokens, merges: merges, addedTokens: [.init(content: "<answer>", id: 0)])
        let byte = { (c: Character) in 1 + Int(c.asciiValue!) }
        // "abc": a b c -> ab c (rank 0) -> abc (rank 1).
        XCTAssertEqual(t.encode("abc"), [258])
        // "bcab": b c a b -> the best-ranked pair first: "a b" (0) -> b c ab; then "b c" (2) -> bc ab.
        XCTAssertEqual(t.encode("bcab"), [259, 257])
        // " abd": Ġ a b d -> Ġ ab d (rank 0 beats Ġa's rank 3), then nothing applies.
        XCTAssertEqual(t.encode(" abd"), [byte(" ") == 1 + 32 ? t.id(of: "Ġ")! : -1, 257, byte("d")])
        XCTAssertEqual(t.encode(" a<answer>"), [260, 0])
        XCTAssertEqual(t.decode([260, 0, 258]), " a<answer>abc")
    }

    func testHuggingFaceJSONRoundTrip() throws {
        let tokenizer = try Fixtures.tokenizer()
        let json = try tokenizer.huggingFaceJSON()
        let object = try JSONSerialization.jsonObject(with: json) as! [String: Any]
        XCTAssertEqual((object["model"] as! [String: Any])["type"] as? String, "BPE")
        let added = object["added_tokens"] as! [[String: Any]]
        XCTAssertEqual(added.map { $0["content"] as! String }, TokenizerTrainer.defaultSpecialTokens)
        let loaded = try Tokenizer(huggingFaceJSON: json)
        XCTAssertEqual(loaded.tokens, tokenizer.tokens)
        XCTAssertEqual(loaded.merges.map { "\($0.0) \($0.1)" }, tokenizer.merges.map { "\($0.0) \($0.1)" })
        for text in Fixtures.corpus { XCTAssertEqual(loaded.encode(text), tokenizer.encode(text)) }
        XCTAssertEqual(try loaded.huggingFaceJSON(), json)
    }

    func testLoadsPairMergesAndRejectsBadFiles() throws {
        var vocab: [String: Int] = [:]
        for b in 0..<256 { vocab[String(ByteLevel.unicodeOfByte[b])] = b }
        vocab["hi"] = 256
        let good: [String: Any] = ["model": ["type": "BPE", "vocab": vocab, "merges": [["h", "i"]]],
                                   "added_tokens": [["id": 257, "content": "<answer>", "special": true]]]
        let t = try Tokenizer(huggingFaceJSON: JSONSerialization.data(withJSONObject: good))
        XCTAssertEqual(t.encode("hi<answer>"), [256, 257])
        var wordPiece = good; wordPiece["model"] = ["type": "WordPiece", "vocab": vocab]
        XCTAssertThrowsError(try Tokenizer(huggingFaceJSON: JSONSerialization.data(withJSONObject: wordPiece)))
        var missingByte = vocab; missingByte["a"] = nil
        let bad: [String: Any] = ["model": ["type": "BPE", "vocab": missingByte, "merges": [String]()]]
        XCTAssertThrowsError(try Tokenizer(huggingFaceJSON: JSONSerialization.data(withJSONObject: bad))) {
            XCTAssertTrue("\($0)".contains("lacks byte"))
        }
    }

    func testTrainerIsDeterministicAndCompresses() throws {
        let a = try Fixtures.tokenizer(vocab: 300), b = try Fixtures.tokenizer(vocab: 300)
        XCTAssertEqual(a.tokens, b.tokens)
        XCTAssertEqual(Array(a.tokens.prefix(3)), TokenizerTrainer.defaultSpecialTokens)
        let text = Fixtures.corpus[2]
        XCTAssertLessThan(a.encode(text).count, text.utf8.count * 3 / 4)  // 41 merges only
        XCTAssertEqual(a.merges.count, 300 - 3 - 256)
    }
}
