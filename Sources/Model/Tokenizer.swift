// Byte-level BPE tokenizer (GPT-2's byte-to-unicode alphabet, ranked merges, literal added/special tokens) that
// loads and saves Hugging Face tokenizer.json. decode(encode(s)) == s for every string.
//
// Pre-tokenisation is a hand-written scanner equal to GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (Unicode letters, numbers and White_Space by scalar properties; no regex engine). Checkpoints whose
// tokenizer.json names another split pattern (e.g. Qwen2's) still decode exactly; their encodings may split
// some words differently from Hugging Face's.
import Foundation

public final class Tokenizer: @unchecked Sendable {
    /// A token matched literally in the input before BPE (e.g. `<answer>`, `<|endoftext|>`).
    public struct AddedToken: Sendable, Equatable {
        public var content: String
        public var id: Int
        public var special: Bool
        public init(content: String, id: Int, special: Bool = true) {
            self.content = content; self.id = id; self.special = special
        }
    }

    /// Token strings by id, in the byte-unicode alphabet (added tokens as their literal content).
    public let tokens: [String]
    public let merges: [(String, String)]
    public let addedTokens: [AddedToken]
    private let idByToken: [String: Int]
    private let idByByte: [Int]
    /// Packed (left, right) ids -> (rank, merged id).
    private let mergeTable: [UInt64: (rank: Int, merged: Int)]
    /// Added tokens, longest first, as scalars for literal matching.
    private let addedByLength: [(scalars: [Unicode.Scalar], id: Int)]
    private let addedIds: Set<Int>
    private var wordCache: [String: [Int]] = [:]
    private let cacheLock = NSLock()

    public var vocabularySize: Int { tokens.count }

    /// The id of `token` (a vocabulary string or an added token's content).
    public func id(of token: String) -> Int? { idByToken[token] }

    public init(tokens: [String], merges: [(String, String)], addedTokens: [AddedToken]) throws {
        var idByToken: [String: Int] = [:]
        for (i, t) in tokens.enumerated() where !t.isEmpty { idByToken[t] = i }
        for a in addedTokens {
            guard a.id >= 0 && a.id < tokens.count else {
                throw CheckpointError.invalidTokenizer("added token \(a.content) has id \(a.id) outside the vocabulary")
            }
            idByToken[a.content] = a.id
        }
        var idByByte = [Int](repeating: -1, count: 256)
        for b in 0..<256 {
            guard let id = idByToken[String(ByteLevel.unicodeOfByte[b])] else {
                throw CheckpointError.invalidTokenizer("the vocabulary lacks byte \(b) (byte-level BPE needs all 256)")
            }
            idByByte[b] = id
        }
        var table: [UInt64: (Int, Int)] = [:]
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = idByToken[a], let ib = idByToken[b], let im = idByToken[a + b] else {
                throw CheckpointError.invalidTokenizer("merge \"\(a) \(b)\" uses tokens not in the vocabulary")
            }
            let key = UInt64(ia) << 32 | UInt64(ib)
            if table[key] == nil { table[key] = (rank, im) }
        }
        self.tokens = tokens
        self.merges = merges
        self.addedTokens = addedTokens
        self.idByToken = idByToken
        self.idByByte = idByByte
        self.mergeTable = table.mapValues { (rank: $0.0, merged: $0.1) }
        self.addedByLength = addedTokens.map { (Array($0.content.unicodeScalars), $0.id) }
            .filter { !$0.0.isEmpty }.sorted { $0.0.count > $1.0.count }
        self.addedIds = Set(addedTokens.map(\.id))
    }

    // MARK: Encoding

    public func encode(_ text: String) -> [Int] {
        var out: [Int] = []
        let scalars = Array(text.unicodeScalars)
        var segmentStart = 0
        var i = 0
        while i < scalars.count {
            if let (length, id) = addedTokenMatch(scalars, at: i) {
                encodeOrdinary(scalars[segmentStart..<i], into: &out)
                out.append(id)
                i += length
                segmentStart = i
            } else {
                i += 1
            }
        }
        encodeOrdinary(scalars[segmentStart..<scalars.count], into: &out)
        return out
    }

    private func addedTokenMatch(_ s: [Unicode.Scalar], at i: Int) -> (Int, Int)? {
        for (pattern, id) in addedByLength where pattern.count <= s.count - i && s[i] == pattern[0] {
            var ok = true
            for k in 1..<pattern.count where s[i + k] != pattern[k] { ok = false; break }
            if ok { return (pattern.count, id) }
        }
        return nil
    }

    private func encodeOrdinary(_ scalars: ArraySlice<Unicode.Scalar>, into out: inout [Int]) {
        if scalars.isEmpty { return }
        for piece in ByteLevel.preTokenize(scalars) {
            var word = String.UnicodeScalarView()
            word.append(contentsOf: piece)
            out += bpe(String(word))
        }
    }

    /// The BPE ids of one pre-token (cached: prompts repeat the same words).
    private func bpe(_ word: String) -> [Int] {
        cacheLock.lock()
        if let hit = wordCache[word] { cacheLock.unlock(); return hit }
        cacheLock.unlock()
        var symbols = word.utf8.map { idByByte[Int($0)] }
        while symbols.count > 1 {
            var best = -1, bestRank = Int.max, bestMerged = 0
            for k in 0..<(symbols.count - 1) {
                if let m = mergeTable[UInt64(symbols[k]) << 32 | UInt64(symbols[k + 1])], m.rank < bestRank {
                    bestRank = m.rank; best = k; bestMerged = m.merged
                }
            }
            if best < 0 { break }
            // Merge every occurrence of the best pair, left to right.
            let left = symbols[best], right = symbols[best + 1]
            var merged: [Int] = []
            merged.reserveCapacity(symbols.count)
            var k = 0
            while k < symbols.count {
                if k + 1 < symbols.count && symbols[k] == left && symbols[k + 1] == right {
                    merged.append(bestMerged); k += 2
                } else {
                    merged.append(symbols[k]); k += 1
                }
            }
            symbols = merged
        }
        cacheLock.lock()
        if wordCache.count > 200_000 { wordCache.removeAll(keepingCapacity: true) }
        wordCache[word] = symbols
        cacheLock.unlock()
        return symbols
    }

    // MARK: Decoding

    /// The text of `ids`; invalid UTF-8 (possible mid-generation) decodes with replacement characters.
    public func decode(_ ids: [Int]) -> String {
        String(decoding: decodeBytes(ids), as: UTF8.self)
    }

    /// The raw bytes of `ids` (added tokens as their UTF-8 content; ids outside the vocabulary are skipped).
    public func decodeBytes(_ ids: [Int]) -> [UInt8] {
        var bytes: [UInt8] = []
        for id in ids where id >= 0 && id < tokens.count {
            if addedIds.contains(id) {
                bytes += Array(tokens[id].utf8)
            } else {
                for scalar in tokens[id].unicodeScalars {
                    if let b = ByteLevel.byteOfUnicode[scalar] { bytes.append(b) }
                }
            }
        }
        return bytes
    }
}

/// GPT-2's reversible byte <-> printable-unicode alphabet and pre-tokeniser.
public enum ByteLevel {
    /// Printable bytes map to themselves; the other 68 map to U+0100 onwards, in byte order.
    public static let unicodeOfByte: [Character] = {
        var out = [Character](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) {
                out[b] = Character(Unicode.Scalar(UInt32(b))!)
            } else {
                out[b] = Character(Unicode.Scalar(next)!)
                next += 1
            }
        }
        return out
    }()

    public static let byteOfUnicode: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for b in 0..<256 { map[unicodeOfByte[b].unicodeScalars.first!] = UInt8(b) }
        return map
    }()

    /// A pre-token's byte-level spelling (the form vocabulary and merges use).
    public static func spell(_ text: String) -> String {
        String(text.utf8.map { unicodeOfByte[Int($0)] })
    }

    enum ScalarClass { case letter, number, space, other }

    static func classify(_ s: Unicode.Scalar) -> ScalarClass {
        let p = s.properties
        if p.isWhitespace { return .space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    /// Splits text into pre-tokens exactly as GPT-2's pattern does (see the file header).
    public static func preTokenize<C: Collection>(_ input: C) -> [ArraySlice<Unicode.Scalar>] where C.Element == Unicode.Scalar {
        let s = Array(input)
        var pieces: [ArraySlice<Unicode.Scalar>] = []
        let n = s.count
        var i = 0
        func runEnd(from j: Int, _ cls: ScalarClass) -> Int {
            var k = j
            while k < n && classify(s[k]) == cls { k += 1 }
            return k
        }
        while i < n {
            let c = s[i]
            // Contractions: 's 't 'm 'd 're 've 'll (ASCII apostrophe, lowercase, as GPT-2).
            if c == "'" && i + 1 < n {
                let a = s[i + 1]
                if a == "s" || a == "t" || a == "m" || a == "d" { pieces.append(s[i..<(i + 2)]); i += 2; continue }
                if i + 2 < n {
                    let b = s[i + 2]
                    if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") {
                        pieces.append(s[i..<(i + 3)]); i += 3; continue
                    }
                }
            }
            let cls = classify(c)
            if cls != .space {
                let end = runEnd(from: i, cls)
                pieces.append(s[i..<end]); i = end; continue
            }
            // An optional single ' ' before a letter, number or other run.
            if c == " " && i + 1 < n && classify(s[i + 1]) != .space {
                let end = runEnd(from: i + 1, classify(s[i + 1]))
                pieces.append(s[i..<end]); i = end; continue
            }
            // A whitespace run: to the end of text whole; otherwise all but its last scalar, which then starts
            // the next piece (a ' ' joins the following word, anything else stands alone).
            let end = runEnd(from: i, .space)
            if end == n {
                pieces.append(s[i..<end]); i = end
            } else if end - i > 1 {
                pieces.append(s[i..<(end - 1)]); i = end - 1
            } else {
                pieces.append(s[i..<end]); i = end
            }
        }
        return pieces
    }
}
