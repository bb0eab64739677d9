// Batched generation as an iterator: every step runs ONE forward pass over all live chains, in which a new chain
// feeds its whole prompt (prefill) and every other chain its newest token (decode), as one ragged batch. Chains can
// join (`add`) or leave (`cancel`) between steps, so a server can batch continuously. A chain stops when its
// generated text ends with the stop text (`<answer>`); at the token limit the stop text is appended. The pass that
// feeds a chain's last token also yields its readout: the final-norm hidden state at that token (the recommendation
// head's input), so reasoning and recommendation cost no extra pass. Each chain's sampling, stop text and limit live
// in a ChainDecoder, shared with the serving core's scheduler.
import Tensor

public final class Generation {
    public struct Chain {
        /// Generated tokens (the stop text's tokens included).
        public var tokens: [Int] = []
        /// Whether the chain ended on its own (false when the limit forced the stop text).
        public var stoppedByModel = false
        /// Whether the token limit was reached and the stop text appended.
        public var hitLimit = false
        /// Whether `cancel` removed the chain (it has no readout then).
        public var cancelled = false
        /// Final-norm hidden state at the last token, once the chain is done.
        public var readout: [Float]? = nil
        public var isDone: Bool { readout != nil || cancelled }
    }

    public let model: Qwen2Model
    public let tokenizer: Tokenizer
    public let maxNewTokens: Int
    public private(set) var chains: [Chain] = []
    public private(set) var caches: [KVCache] = []
    /// Per chain: sampling, stop text and token limit (shared with the serving core's scheduler).
    private var decoders: [ChainDecoder] = []
    private let stopText: String
    private let stopTokens: [Int]
    /// Quoted titles restricted to these (nil: unconstrained).
    private let titles: TitleTrie?
    /// Tokens each live chain feeds in the next forward pass (its prompt until it has been prefilled).
    private var pending: [[Int]] = []
    /// Logits [vocab] of each chain's last fed token; nil until its prompt has been fed.
    private var lastLogits: [[Float]?] = []
    /// Per chain: the chain whose prefill it shares (it copies that chain's cache and logits once they exist).
    private var leader: [Int?] = []

    /// `settings[i]` drives chain i (give one per prompt; more chains can be added later).
    public init(model: Qwen2Model, tokenizer: Tokenizer, prompts: [[Int]] = [], settings: [SamplingSettings] = [],
                maxNewTokens: Int, stopText: String = "<answer>", titles: TitleTrie? = nil) {
        precondition(prompts.count == settings.count, "one SamplingSettings per prompt")
        precondition(maxNewTokens >= 1)
        self.model = model
        self.tokenizer = tokenizer
        self.maxNewTokens = maxNewTokens
        self.stopText = stopText
        self.titles = titles
        stopTokens = tokenizer.encode(stopText)
        for (prompt, s) in zip(prompts, settings) { add(prompt: prompt, settings: s) }
    }

    /// Starts a chain for `prompt` (prefilled in the next step, alongside the other chains' decode tokens);
    /// returns its index in `chains`.
    @discardableResult
    /// `titles` (when given) replaces the generation's title trie for this chain.
    public func add(prompt: [Int], settings: SamplingSettings, titles chainTitles: TitleTrie? = nil) -> Int {
        precondition(!prompt.isEmpty, "a prompt needs at least one token")
        let room = model.configuration.maxPositionEmbeddings - prompt.count - stopTokens.count
        precondition(room >= 1, "a prompt of \(prompt.count) tokens leaves no room to generate within max_position_embeddings")
        // The limit is lowered when the prompt leaves less room before max_position_embeddings.
        decoders.append(ChainDecoder(tokenizer: tokenizer, settings: settings, maxNewTokens: min(maxNewTokens, room),
                                     stopText: stopText, titles: chainTitles ?? titles))
        chains.append(Chain())
        caches.append(KVCache(configuration: model.configuration, reservingCapacity: prompt.count + maxNewTokens + 8))
        pending.append(prompt)
        lastLogits.append(nil)
        leader.append(nil)
        return chains.count - 1
    }

    /// Starts one chain per element of `settings`, all continuing `prompt`, which is prefilled ONCE (the first
    /// chain's pass) and then copied (KV cache and logits) into the others: G sampled chains per user, as RecPO
    /// draws them, cost one prefill. Returns the chains' indices.
    @discardableResult
    public func addGroup(prompt: [Int], settings: [SamplingSettings], titles chainTitles: TitleTrie? = nil) -> [Int] {
        guard let first = settings.first else { return [] }
        let head = add(prompt: prompt, settings: first, titles: chainTitles)
        var indices = [head]
        for s in settings.dropFirst() {
            let i = add(prompt: prompt, settings: s, titles: chainTitles)
            caches[i] = KVCache(configuration: model.configuration, reservingCapacity: 1)  // replaced by the copy
            leader[i] = head
            indices.append(i)
        }
        return indices
    }

    /// Stops chain `index` at once and frees its cache.
    public func cancel(_ index: Int) {
        guard !chains[index].isDone else { return }
        precondition(!leader.contains { $0 == index }, "cancel a group's followers before its first chain is prefilled")
        chains[index].cancelled = true
        caches[index] = KVCache(configuration: model.configuration, reservingCapacity: 1)
        lastLogits[index] = nil
    }

    public var isFinished: Bool { chains.allSatisfy(\.isDone) }

    /// Advances every live chain by one token (a new chain: its prompt). Returns false once all are done.
    @discardableResult
    public func step() -> Bool {
        if isFinished { return false }
        // Sample the next token of every chain that has logits (i.e. has been prefilled), chains spread over the
        // pool: each owns its decoder, and top-k sampling costs tens of microseconds per chain.
        let sampling = chains.indices.filter { !chains[$0].isDone && lastLogits[$0] != nil }
        var fed = [[Int]](repeating: [], count: sampling.count)
        decoders.withUnsafeMutableBufferPointer { decoderBuffer in
            fed.withUnsafeMutableBufferPointer { out in
                ThreadPool.shared.parallelFor(sampling.count) { j in
                    let i = sampling[j]
                    out[j] = lastLogits[i]!.withUnsafeBufferPointer {
                        decoderBuffer[i].next(logits: $0.baseAddress!, vocab: $0.count)
                    }
                }
            }
        }
        for (j, i) in sampling.enumerated() {
            pending[i] = fed[j]
            chains[i].tokens = decoders[i].tokens
            chains[i].stoppedByModel = decoders[i].stoppedByModel
            chains[i].hitLimit = decoders[i].hitLimit
        }
        let live = chains.indices.filter { !chains[$0].isDone && leader[$0] == nil }
        let output = model.forward(live.map { pending[$0] }, caches: live.map { caches[$0] }, rows: .last)
        let d = model.configuration.hiddenSize, vocab = model.configuration.vocabSize
        for (r, i) in live.enumerated() {
            if chains[i].stoppedByModel || chains[i].hitLimit {
                chains[i].readout = Array(UnsafeBufferPointer(start: output.hidden.data + r * d, count: d))
                lastLogits[i] = nil
                caches[i] = KVCache(configuration: model.configuration, reservingCapacity: 1)
            } else {
                lastLogits[i] = Array(UnsafeBufferPointer(start: output.logits!.data + r * vocab, count: vocab))
            }
            pending[i] = []
        }
        // Followers whose leader has just been prefilled start from a copy of its state.
        for i in chains.indices where leader[i] != nil && !chains[i].isDone {
            let head = leader[i]!
            guard lastLogits[head] != nil, chains[head].tokens.isEmpty else { continue }
            caches[i] = caches[head].copy()
            caches[i].reserve(caches[head].offset + decoders[i].maxNewTokens + stopTokens.count + 1)
            lastLogits[i] = lastLogits[head]
            pending[i] = []
            leader[i] = nil
        }
        return !isFinished
    }

    /// Steps until every chain is done.
    public func run() -> [Chain] {
        while step() {}
        return chains
    }
}
