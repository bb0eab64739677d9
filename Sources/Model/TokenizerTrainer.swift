// Trains a byte-level BPE vocabulary of a requested size from text (a dataset's prompts and item texts), for
// models built from scratch. Ids: special tokens first, then the 256 byte symbols in byte order, then one token
// per merge. Deterministic: the most frequent pair wins, ties go to the smaller (left id, right id).

public enum TokenizerTrainer {
    public static let defaultSpecialTokens = ["<|endoftext|>", "<answer>", "</answer>"]

    /// A tokenizer of at most `vocabularySize` tokens (fewer when the text runs out of pairs seen `minFrequency`
    /// times). Special tokens are never split and never take part in merges.
    public static func train(texts: [String], vocabularySize: Int, specialTokens: [String] = defaultSpecialTokens,
                             minFrequency: Int = 2) throws -> Tokenizer {
        precondition(vocabularySize >= specialTokens.count + 256, "a byte-level vocabulary needs at least 256 + specials tokens")
        var tokens: [String] = specialTokens
        for b in 0..<256 { tokens.append(String(ByteLevel.unicodeOfByte[b])) }
        let byteBase = specialTokens.count
        let added = specialTokens.enumerated().map { Tokenizer.AddedToken(content: $1, id: $0) }

        // Count pre-tokens (words) once; merges then run over unique words weighted by their counts.
        var wordCounts: [String: Int] = [:]
        let specialScalars = specialTokens.map { Array($0.unicodeScalars) }
        for text in texts {
            for segment in splitOnSpecials(Array(text.unicodeScalars), specialScalars) {
                for piece in ByteLevel.preTokenize(segment) {
                    var w = String.UnicodeScalarView(); w.append(contentsOf: piece)
                    wordCounts[String(w), default: 0] += 1
                }
            }
        }
        let sortedWords = wordCounts.sorted { $0.key < $1.key }
        var words: [[Int]] = sortedWords.map { $0.key.utf8.map { byteBase + Int($0) } }
        let counts: [Int] = sortedWords.map(\.value)

        @inline(__always) func key(_ a: Int, _ b: Int) -> UInt64 { UInt64(a) << 32 | UInt64(b) }
        var pairCounts: [UInt64: Int] = [:]
        var pairWords: [UInt64: Set<Int>] = [:]
        for (w, symbols) in words.enumerated() where symbols.count > 1 {
            for k in 0..<(symbols.count - 1) {
                let p = key(symbols[k], symbols[k + 1])
                pairCounts[p, default: 0] += counts[w]
                pairWords[p, default: []].insert(w)
            }
        }
        // Max-heap of (count, pair) with lazy deletion: stale entries are skipped when popped.
        var heap = PairHeap()
        for (p, c) in pairCounts { heap.push(c, p) }

        var merges: [(String, String)] = []
        while tokens.count < vocabularySize, let (count, pair) = heap.pop() {
            guard pairCounts[pair] == count else { continue }
            if count < minFrequency { break }
            let a = Int(pair >> 32), b = Int(pair & 0xFFFF_FFFF)
            let merged = tokens.count
            tokens.append(tokens[a] + tokens[b])
            merges.append((tokens[a], tokens[b]))
            var touched: [UInt64: Int] = [:]  // pair -> count delta, to re-push once
            for w in pairWords[pair] ?? [] {
                let old = words[w], c = counts[w]
                if old.count < 2 { continue }
                for k in 0..<(old.count - 1) {
                    let p = key(old[k], old[k + 1])
                    pairCounts[p, default: 0] -= c
                    touched[p, default: 0] -= c
                }
                var new: [Int] = []
                new.reserveCapacity(old.count)
                var k = 0
                while k < old.count {
                    if k + 1 < old.count && old[k] == a && old[k + 1] == b { new.append(merged); k += 2 }
                    else { new.append(old[k]); k += 1 }
                }
                words[w] = new
                if new.count > 1 {
                    for k in 0..<(new.count - 1) {
                        let p = key(new[k], new[k + 1])
                        pairCounts[p, default: 0] += c
                        touched[p, default: 0] += c
                        pairWords[p, default: []].insert(w)
                    }
                }
            }
            pairCounts[pair] = nil
            pairWords[pair] = nil
            for (p, delta) in touched where delta != 0 || p != pair {
                if let c = pairCounts[p], c > 0 { heap.push(c, p) } else { pairCounts[p] = nil }
            }
        }
        return try Tokenizer(tokens: tokens, merges: merges, addedTokens: added)
    }

    private static func splitOnSpecials(_ s: [Unicode.Scalar], _ specials: [[Unicode.Scalar]]) -> [ArraySlice<Unicode.Scalar>] {
        var out: [ArraySlice<Unicode.Scalar>] = []
        var start = 0, i = 0
        outer: while i < s.count {
            for sp in specials where !sp.isEmpty && sp.count <= s.count - i && Array(s[i..<(i + sp.count)]) == sp {
                out.append(s[start..<i]); i += sp.count; start = i
                continue outer
            }
            i += 1
        }
        out.append(s[start..<s.count])
        return out.filter { !$0.isEmpty }
    }
}

/// A binary max-heap on (count, then smaller pair key first).
private struct PairHeap {
    private var items: [(Int, UInt64)] = []
    @inline(__always) private func before(_ x: (Int, UInt64), _ y: (Int, UInt64)) -> Bool {
        x.0 > y.0 || (x.0 == y.0 && x.1 < y.1)
    }
    mutating func push(_ count: Int, _ pair: UInt64) {
        items.append((count, pair))
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if before(items[i], items[p]) { items.swapAt(i, p); i = p } else { break }
        }
    }
    mutating func pop() -> (Int, UInt64)? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && before(items[l], items[m]) { m = l }
                if r < items.count && before(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m); i = m
            }
        }
        return top
    }
}
