// Iteration-level batching of reasoning requests (after Orca / vLLM / llama.cpp's server): every step runs one
// decode token for every chain in flight plus prompt chunks of newly admitted requests, within a token budget and a
// KV-cache budget, as ONE batched forward pass. A chain that writes `<answer>` (or hits its limit, which appends it)
// feeds that last token once more, is read out by the recommendation head and leaves at once; its slot is free for
// the next step. Tokens stream to a callback as they are written. Cancellation and deadlines are checked every step.
import Data
import Foundation
import Model

public struct ReasoningConfig: Sendable, Equatable {
    /// Chains in flight at once (1 = one request at a time).
    public var maxSlots = 32
    /// Tokens fed per step across all chains (decode tokens first, then prompt chunks).
    public var stepTokenBudget = 1024
    /// KV-cache tokens reserved across all chains in flight (prompt + reasoning limit each).
    public var kvTokenBudget = 64 * 1024
    /// How the chains' KV caches store keys and values (float16: half the memory each decode step streams).
    public var kvPrecision = KVPrecision.float16
    /// Reasoning tokens when the request leaves it 0, and the most a request may ask for.
    public var defaultMaxTokens = 64
    public var maxTokensLimit = 512
    /// Requests waiting for a slot; one more is answered RESOURCE_EXHAUSTED.
    public var maxQueueSize = 4096
    public init() {}
}

public final class ReasoningScheduler: @unchecked Sendable {
    /// A reasoning request as queued.
    struct Request {
        let prepared: RecommendService.Prepared
        let model: ServedModel
        let dual: DualHeadModel
        let sampling: SamplingSettings
        let maxTokens: Int
        let probabilities: Bool
        let returnReasoning: Bool
        let ctx: CallContext
        let enqueued: UInt64
        let onDelta: ((String) -> Void)?
        let done: (Result<RecommendResult, ServingError>) -> Void
    }

    /// A chain in flight: llama.cpp's slot, with an explicit state.
    final class Slot {
        enum State { case prompt, generating, finishing }
        let request: Request
        let cache: KVCache
        var decoder: ChainDecoder
        var state = State.prompt
        var prompt: [Int]
        var promptFed = 0
        /// Tokens to feed in the next step (decoding: the last sampled token; finishing: it plus the stop text).
        var feed: [Int] = []
        var streamedBytes = 0
        /// KV-cache tokens held for this chain.
        let reserved: Int
        var readout: [Float]?

        init(_ r: Request, prompt: [Int], maxTokens: Int, configuration: Qwen2Configuration, precision: KVPrecision) {
            request = r
            self.prompt = prompt
            reserved = prompt.count + maxTokens + r.dual.answerTokens.count + 1
            cache = KVCache(configuration: configuration, reservingCapacity: reserved, precision: precision)
            decoder = ChainDecoder(tokenizer: r.dual.tokenizer, settings: r.sampling, maxNewTokens: maxTokens,
                                   stopText: Prompts.answerTag)
        }
    }

    public let config: ReasoningConfig
    private let metrics: ServingMetrics?
    private let condition = NSCondition()
    private var queue: [Request] = []
    private var stopping = false
    private var finished = false
    private var thread: Thread?

    public init(config: ReasoningConfig, metrics: ServingMetrics? = nil) {
        precondition(config.maxSlots >= 1 && config.stepTokenBudget >= config.maxSlots)
        self.config = config
        self.metrics = metrics
        let t = Thread { [unowned self] in self.loop() }
        t.name = "r2ec-reasoning"
        t.stackSize = 8 << 20
        thread = t
        t.start()
    }

    /// Requests waiting for a decode slot.
    public var queued: Int { condition.lock(); defer { condition.unlock() }; return queue.count }

    /// Queues a validated reasoning request; RESOURCE_EXHAUSTED at once when the queue is full.
    func enqueue(_ p: RecommendService.Prepared, query q: RecommendQuery, model: ServedModel, ctx: CallContext,
                 onDelta: ((String) -> Void)?, done: @escaping (Result<RecommendResult, ServingError>) -> Void) throws {
        guard let dual = model.dualHead else {
            throw ServingError(.failedPrecondition, "mode: model '\(model.name)' has no LM head", field: "mode")
        }
        let maxTokens = q.maxReasoningTokens == 0 ? config.defaultMaxTokens : q.maxReasoningTokens
        guard maxTokens <= config.maxTokensLimit else {
            metrics?.limitHit("reasoning_tokens")
            throw ServingError(.invalidArgument,
                "max_reasoning_tokens: \(maxTokens) is above the server's limit of \(config.maxTokensLimit)",
                field: "max_reasoning_tokens")
        }
        let s = q.sampling
        guard s.temperature.isFinite, s.temperature >= 0 else {
            throw ServingError.invalid("sampling.temperature", "must be a finite number >= 0, got \(s.temperature)")
        }
        guard s.topP.isFinite, s.topP >= 0, s.topP <= 1 else {
            throw ServingError.invalid("sampling.top_p", "must be in [0, 1], got \(s.topP)")
        }
        let sampling = SamplingSettings(temperature: s.temperature, topK: s.topK, topP: s.topP == 0 ? 1 : s.topP,
                                        seed: s.seed == 0 ? UInt64.random(in: 1...UInt64.max) : s.seed)
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { throw ServingError(.unavailable, "server is shutting down") }
        guard queue.count < config.maxQueueSize else {
            metrics?.limitHit("reasoning_queue_size")
            throw ServingError(.resourceExhausted, "reasoning queue full (\(config.maxQueueSize) waiting); retry later")
        }
        queue.append(Request(prepared: p, model: model, dual: dual, sampling: sampling, maxTokens: maxTokens,
                             probabilities: q.returnProbabilities, returnReasoning: q.returnReasoning, ctx: ctx,
                             enqueued: DispatchTime.now().uptimeNanoseconds, onDelta: onDelta, done: done))
        condition.signal()
    }

    /// Finishes every queued and running chain, then stops.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }

    // MARK: The loop

    private var slots: [Slot] = []
    private var kvInUse = 0

    private func loop() {
        while true {
            admit()
            if slots.isEmpty {
                condition.lock()
                if queue.isEmpty && stopping {
                    finished = true
                    condition.broadcast()
                    condition.unlock()
                    return
                }
                if queue.isEmpty { condition.wait() }
                condition.unlock()
                continue
            }
            step()
        }
    }

    /// Moves queued requests into free slots while the slot and KV budgets allow (oldest first). Only this thread
    /// removes from the queue, so its head stays put between the locked reads.
    private func admit() {
        while slots.count < config.maxSlots {
            condition.lock()
            let head = queue.first
            condition.unlock()
            guard let r = head else { return }
            if let stop = r.ctx.stopReason { pop(); r.done(.failure(stop)); continue }
            let prompt = r.dual.reasoningPromptTokens(r.prepared.resolved.history, targetTime: r.prepared.targetTime)
            let c = r.dual.model.configuration
            let room = c.maxPositionEmbeddings - prompt.count - r.dual.answerTokens.count - 1
            guard room >= 1 else {
                pop()
                r.done(.failure(ServingError.invalid("history", "the prompt fills the model's context; send fewer events")))
                continue
            }
            let slot = Slot(r, prompt: prompt, maxTokens: min(r.maxTokens, room), configuration: c,
                            precision: config.kvPrecision)
            if !slots.isEmpty && kvInUse + slot.reserved > config.kvTokenBudget { return }
            pop()
            kvInUse += slot.reserved
            slots.append(slot)
        }
    }

    private func pop() {
        condition.lock()
        queue.removeFirst()
        condition.unlock()
    }

    /// One iteration: decode tokens of every generating chain, then prompt chunks, in one forward pass per model.
    private func step() {
        // Stopped chains leave first and free their slot.
        slots.removeAll { s in
            guard let stop = s.request.ctx.stopReason else { return false }
            kvInUse -= s.reserved
            s.request.done(.failure(stop))
            return true
        }
        guard let model = slots.first?.request.dual else { return }
        var batch: [Slot] = [], tokens: [[Int]] = []
        var budget = config.stepTokenBudget
        for s in slots where s.request.dual === model && s.state != .prompt {
            batch.append(s); tokens.append(s.feed); budget -= s.feed.count
        }
        for s in slots where s.request.dual === model && s.state == .prompt && budget > 0 {
            let n = min(budget, s.prompt.count - s.promptFed)
            batch.append(s); tokens.append(Array(s.prompt[s.promptFed..<(s.promptFed + n)]))
            s.promptFed += n
            budget -= n
        }
        guard !batch.isEmpty else { return }
        let start = DispatchTime.now().uptimeNanoseconds
        let out = model.model.forward(tokens, caches: batch.map(\.cache), rows: .last, logits: true)
        let d = model.model.configuration.hiddenSize, vocab = model.model.configuration.vocabSize
        var decoded = 0
        for (row, s) in batch.enumerated() {
            switch s.state {
            case .finishing:
                s.readout = Array(UnsafeBufferPointer(start: out.hidden.data + row * d, count: d))
            case .prompt where s.promptFed < s.prompt.count:
                continue  // more prompt chunks to come
            case .prompt, .generating:
                s.feed = s.decoder.next(logits: out.logits!.data + row * vocab, vocab: vocab)
                s.state = s.decoder.isFinishing ? .finishing : .generating
                decoded += 1
                stream(s)
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        metrics?.decodeStep(tokens: decoded, seconds: seconds)
        finishReadOut()
    }

    /// Sends the longest valid UTF-8 text not streamed yet.
    private func stream(_ s: Slot) {
        guard let onDelta = s.request.onDelta else { return }
        let bytes = s.decoder.bytes
        var end = bytes.count
        // Hold back an incomplete multi-byte sequence at the end.
        var back = 0
        while back < min(3, end - s.streamedBytes), (bytes[end - 1 - back] & 0xC0) == 0x80 { back += 1 }
        if end - 1 - back >= s.streamedBytes {
            let lead = bytes[end - 1 - back]
            let need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
            if need > back + 1 { end = end - 1 - back }
        }
        guard end > s.streamedBytes else { return }
        let text = String(decoding: bytes[s.streamedBytes..<end], as: UTF8.self)
        s.streamedBytes = end
        onDelta(text)
    }

    /// Scores every chain read out this step, answers it and frees its slot.
    private func finishReadOut() {
        let done = slots.filter { $0.readout != nil }
        guard !done.isEmpty else { return }
        slots.removeAll { $0.readout != nil }
        for s in done { kvInUse -= s.reserved }
        // Chains of one model are scored with one GEMM.
        var byModel: [ObjectIdentifier: [Slot]] = [:]
        for s in done { byModel[ObjectIdentifier(s.request.dual), default: []].append(s) }
        for group in byModel.values {
            let dual = group[0].request.dual
            let scores = dual.scores(readouts: group.map { $0.readout! })
            let n = dual.catalog.count
            scores.withUnsafeBufferPointer { all in
                for (i, s) in group.enumerated() {
                    let r = s.request
                    let row = UnsafeBufferPointer(rebasing: all[(i * n)..<((i + 1) * n)])
                    let items = RecommendService.answer(r.prepared, scores: row, model: r.model, probabilities: r.probabilities)
                    let text = String(decoding: s.decoder.bytes, as: UTF8.self)
                    r.done(.success(RecommendResult(items: items, reasoning: r.returnReasoning ? text : "",
                                                    model: r.model.name, reasoningTokens: s.decoder.sampled,
                                                    modelVersion: r.model.version)))
                }
            }
        }
    }
}
