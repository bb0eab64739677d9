// Constrained decoding of quoted titles (issue 16 part 3): inside a "[" ... "]" span the reasoning path may only
// write a catalogue title, byte for byte, and close it. A byte trie holds every title followed by "]"; a token is
// allowed when its bytes walk the trie from the chain's state (outside a span any token without "[" is allowed;
// a token that opens a span must continue with a prefix of some title). Byte-level, so BPE tokens that straddle
// the bracket and the title, or split a multi-byte character, are handled like any other.
// If no token of the vocabulary can continue a span (a vocabulary without the needed bytes), the chain is left
// unconstrained for that step rather than stuck.

/// The titles as a byte trie, and every vocabulary token's bytes; shared (read-only) by all chains.
public final class TitleTrie: @unchecked Sendable {
    /// children[(node << 8) | byte] = child node; node 0 is the root (the byte after "[").
    private var children: [Int: Int32] = [:]
    private var nodes = 1
    let tokenBytes: [[UInt8]]
    /// Tokens containing "[" (the only ones that need checking outside a span).
    let opening: [Int]
    static let open = UInt8(ascii: "["), close = UInt8(ascii: "]")

    /// `titles` as the prompts quote them (Prompts.displayTitle); titles containing a bracket or a newline cannot
    /// be quoted whole and are left out.
    public convenience init(titles: [String], tokenizer: Tokenizer) {
        let bytesOfToken = (0..<tokenizer.vocabularySize).map { tokenizer.decodeBytes([$0]) }
        self.init(titles: titles, tokenBytes: bytesOfToken,
                  opening: bytesOfToken.indices.filter { bytesOfToken[$0].contains(TitleTrie.open) })
    }

    /// Other titles over the same vocabulary as `vocabulary` (a few titles per chain, e.g. one user's history,
    /// without decoding the vocabulary again).
    public convenience init(titles: [String], vocabularyOf vocabulary: TitleTrie) {
        self.init(titles: titles, tokenBytes: vocabulary.tokenBytes, opening: vocabulary.opening)
    }

    private init(titles: [String], tokenBytes: [[UInt8]], opening: [Int]) {
        self.tokenBytes = tokenBytes
        self.opening = opening
        for title in titles {
            let bytes = Array(title.utf8)
            if bytes.isEmpty || bytes.contains(where: { $0 == Self.open || $0 == Self.close || $0 == 10 }) { continue }
            var node = 0
            for b in bytes + [Self.close] {
                let key = node << 8 | Int(b)
                if let next = children[key] { node = Int(next) } else {
                    children[key] = Int32(nodes); node = nodes; nodes += 1
                }
            }
        }
    }

    /// Where a chain is: outside any span (-1) or at a trie node inside one.
    public typealias State = Int
    public static let outside: State = -1

    /// The state after `bytes` from `state`, or nil if they leave the trie inside a span.
    func walk(_ state: State, _ bytes: [UInt8]) -> State? {
        var s = state
        for b in bytes {
            if s == Self.outside {
                if b == Self.open { s = 0 }
            } else {
                guard let next = children[s << 8 | Int(b)] else { return nil }
                s = b == Self.close ? Self.outside : Int(next)
            }
        }
        return s
    }

    /// The state after forced bytes (the stop text the limit appends): like `walk`, but leaving the trie ends the
    /// span instead of failing.
    func force(_ state: State, _ bytes: [UInt8]) -> State {
        var s = state
        for b in bytes {
            if s == Self.outside { if b == Self.open { s = 0 } } else {
                if let next = children[s << 8 | Int(b)], b != Self.close { s = Int(next) } else { s = Self.outside }
            }
        }
        return s
    }

    /// Sets the logits of every token not allowed from `state` to -infinity (all of them when none is allowed: the
    /// step is then unconstrained).
    func mask(_ logits: UnsafeMutablePointer<Float>, vocab: Int, state: State) {
        let n = min(vocab, tokenBytes.count)
        if state == Self.outside {
            var barred: [Int] = []
            for t in opening where t < n && walk(state, tokenBytes[t]) == nil { barred.append(t) }
            for t in barred { logits[t] = -.infinity }
            return
        }
        var allowed = [Bool](repeating: false, count: n)
        var any = false
        for t in 0..<n where !tokenBytes[t].isEmpty && walk(state, tokenBytes[t]) != nil { allowed[t] = true; any = true }
        guard any else { return }
        for t in 0..<vocab where t >= n || !allowed[t] { logits[t] = -.infinity }
    }
}

/// One chain's position in the trie.
public struct TitleConstraint {
    public let trie: TitleTrie
    public private(set) var state: TitleTrie.State = TitleTrie.outside

    public init(trie: TitleTrie) { self.trie = trie }

    public func mask(_ logits: UnsafeMutablePointer<Float>, vocab: Int) { trie.mask(logits, vocab: vocab, state: state) }

    /// Moves past a chosen token (or forced bytes).
    public mutating func advance(_ bytes: [UInt8]) {
        state = trie.walk(state, bytes) ?? trie.force(state, bytes)
    }
}
