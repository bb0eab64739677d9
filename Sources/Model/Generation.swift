// Batched generation as an iterator: one prefill of every prompt, then one decode step per call in which every
// unfinished chain feeds its newest token(s) through a single batched forward pass. A chain stops when its generated
// text ends with the stop text (`<answer>`); at the token limit the stop text is appended. The pass that feeds a
// chain's last token also yields its readout: the final-norm hidden state at that token (the recommendation head's
// input), so reasoning and recommendation cost no extra pass.
import Tensor

public final class Generation {
    public struct Chain {
        /// Generated tokens (the stop text's tokens included).
        public var tokens: [Int] = []
        /// Whether the chain ended on its own (false when the limit forced the stop text).
        public var stoppedByModel = false
        /// Whether the token limit was reached and the stop text appended.
        public var hitLimit = false
        /// Final-norm hidden state at the last token, once the chain is done.
        public var readout: [Float]? = nil
        public var isDone: Bool { readout != nil }
    }

    public let model: Qwen2Model
    public let tokenizer: Tokenizer
    public let maxNewTokens: Int
    public private(set) var chains: [Chain]
    public private(set) var caches: [KVCache]
    private var samplers: [any TokenSampler]
    private let stopBytes: [UInt8]
    private let stopTokens: [Int]
    private var generatedBytes: [[UInt8]]
    /// Tokens each unfinished chain feeds in the next forward pass (the prompt, at first).
    private var pending: [[Int]]
    /// Logits [vocab] of each chain's last fed token, valid between passes.
    private var lastLogits: [[Float]]
    private var started = false

    /// `settings[i]` drives chain i (give one per prompt).
    public init(model: Qwen2Model, tokenizer: Tokenizer, prompts: [[Int]], settings: [SamplingSettings],
                maxNewTokens: Int, stopText: String = "<answer>") {
        precondition(prompts.count == settings.count, "one SamplingSettings per prompt")
        precondition(maxNewTokens >= 1)
        self.model = model
        self.tokenizer = tokenizer
        self.maxNewTokens = maxNewTokens
        chains = Array(repeating: Chain(), count: prompts.count)
        caches = prompts.map { KVCache(configuration: model.configuration, reservingCapacity: $0.count + maxNewTokens + 8) }
        samplers = settings.map(makeSampler)
        stopBytes = Array(stopText.utf8)
        stopTokens = tokenizer.encode(stopText)
        generatedBytes = Array(repeating: [], count: prompts.count)
        pending = prompts
        lastLogits = Array(repeating: [], count: prompts.count)
    }

    public var isFinished: Bool { chains.allSatisfy(\.isDone) }

    /// Advances every unfinished chain by one token (the first call prefills). Returns false once all are done.
    @discardableResult
    public func step() -> Bool {
        if isFinished { return false }
        if started {
            for i in chains.indices where !chains[i].isDone {
                let next = lastLogits[i].withUnsafeBufferPointer { samplers[i].sample($0.baseAddress!, count: $0.count) }
                chains[i].tokens.append(next)
                generatedBytes[i] += tokenizer.decodeBytes([next])
                pending[i] = [next]
                if generatedBytes[i].count >= stopBytes.count && Array(generatedBytes[i].suffix(stopBytes.count)) == stopBytes {
                    chains[i].stoppedByModel = true
                } else if chains[i].tokens.count >= maxNewTokens {
                    chains[i].tokens += stopTokens
                    chains[i].hitLimit = true
                    pending[i] += stopTokens
                }
            }
        }
        started = true
        let active = chains.indices.filter { !chains[$0].isDone }
        let output = model.forward(active.map { pending[$0] }, caches: active.map { caches[$0] }, rows: .last)
        let d = model.configuration.hiddenSize, vocab = model.configuration.vocabSize
        for (r, i) in active.enumerated() {
            let finishing = chains[i].stoppedByModel || chains[i].hitLimit
            if finishing {
                chains[i].readout = Array(UnsafeBufferPointer(start: output.hidden.data + r * d, count: d))
                lastLogits[i] = []
            } else {
                lastLogits[i] = Array(UnsafeBufferPointer(start: output.logits!.data + r * vocab, count: vocab))
            }
        }
        return !isFinished
    }

    /// Steps until every chain is done.
    public func run() -> [Chain] {
        while step() {}
        return chains
    }
}
