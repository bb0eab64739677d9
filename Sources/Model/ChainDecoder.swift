// One reasoning chain's decoding state, shared by batched generation (Generation) and the serving core's
// iteration-level scheduler: samples the next token from the logits of the chain's last fed token, stops when the
// generated text ends with the stop text (`<answer>`), appends the stop text at the token limit, and says which
// tokens the next forward pass must feed (after the last of them, the pass's hidden state is the chain's readout).
// With a title trie, the logits are masked so that quoted titles are catalogue titles (TitleConstraint).

public struct ChainDecoder {
    /// Generated tokens (with the stop text's tokens when the limit appended them).
    public private(set) var tokens: [Int] = []
    /// The generated text's bytes (the appended stop text included).
    public private(set) var bytes: [UInt8] = []
    /// Tokens the model sampled itself (the appended stop text is not among them).
    public private(set) var sampled = 0
    /// The chain wrote the stop text itself.
    public private(set) var stoppedByModel = false
    /// The token limit was reached and the stop text appended.
    public private(set) var hitLimit = false
    public let maxNewTokens: Int
    private var sampler: any TokenSampler
    private let tokenizer: Tokenizer
    private let stopBytes: [UInt8]
    private let stopTokens: [Int]
    /// With a title trie: inside "[...]" only catalogue titles (TitleConstraint).
    private var constraint: TitleConstraint?

    public init(tokenizer: Tokenizer, settings: SamplingSettings, maxNewTokens: Int, stopText: String = "<answer>",
                titles: TitleTrie? = nil) {
        precondition(maxNewTokens >= 1)
        self.tokenizer = tokenizer
        self.maxNewTokens = maxNewTokens
        sampler = makeSampler(settings)
        stopBytes = Array(stopText.utf8)
        stopTokens = tokenizer.encode(stopText)
        constraint = titles.map { TitleConstraint(trie: $0) }
    }

    /// The chain's last token has been sampled; the next pass that feeds `next(...)`'s tokens yields its readout.
    public var isFinishing: Bool { stoppedByModel || hitLimit }

    /// Samples the next token from `logits` [vocab]; returns the tokens to feed in the next pass: the token, plus the
    /// stop text's tokens when the limit was reached.
    public mutating func next(logits: UnsafePointer<Float>, vocab: Int) -> [Int] {
        precondition(!isFinishing, "the chain has finished")
        let token: Int
        if let constraint {
            var masked = Array(UnsafeBufferPointer(start: logits, count: vocab))
            token = masked.withUnsafeMutableBufferPointer { p in
                constraint.mask(p.baseAddress!, vocab: vocab)
                return sampler.sample(UnsafePointer(p.baseAddress!), count: vocab)
            }
        } else {
            token = sampler.sample(logits, count: vocab)
        }
        tokens.append(token)
        sampled += 1
        let tokenBytes = tokenizer.decodeBytes([token])
        bytes += tokenBytes
        constraint?.advance(tokenBytes)
        if bytes.count >= stopBytes.count && Array(bytes.suffix(stopBytes.count)) == stopBytes {
            stoppedByModel = true
            return [token]
        }
        if sampled >= maxNewTokens {
            hitLimit = true
            tokens += stopTokens
            bytes += stopBytes
            return [token] + stopTokens
        }
        return [token]
    }
}
