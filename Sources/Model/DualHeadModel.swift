// The dual-head recommender (R2EC.md): one Qwen2 network whose LM head writes reasoning and whose recommendation
// head scores items by cosine(user vector, item vector) / tau against the item table. Implements Data's
// `Recommender` (scoreAll = the direct path: user prompt + `<answer>`, one prefill; similarities = item-table cosine)
// and adds batched reasoning generation.
import Data
import Foundation
import Tensor

/// How prompts become model input: the model's turn follows the prompt after a newline.
public enum DualHeadFormat {
    public static let separator = "\n"
    /// Token limits of R2EC.md: user prompts keep their last tokens, item prompts their first.
    public static let maxUserTokens = 2048
    public static let maxItemTokens = 768

    /// Direct path: the prompt, then `<answer>` at once.
    public static func directText(userPrompt: String) -> String { userPrompt + separator + Prompts.answerTag }
    /// Reasoning path: the prompt; the model writes until `<answer>`.
    public static func reasoningText(userPrompt: String) -> String { userPrompt + separator }
    /// The item turn, pre-filled with `<answer>`.
    public static func itemText(itemPrompt: String) -> String { itemPrompt + separator + Prompts.answerTag }

    /// The last `limit` tokens (a long history loses its oldest lines, the readout token stays).
    public static func keepingTail(_ tokens: [Int], limit: Int) -> [Int] { Array(tokens.suffix(limit)) }

    /// Tokens of a direct-path prompt given as lines (instruction first, e.g. Prompts.userLines): each line after the
    /// first is encoded with the newline before it, then `\n<answer>`. Equal to encoding the joined text (the byte-level
    /// pre-tokeniser splits at a newline, and a line neither starts nor ends with whitespace: DualHeadModelTests check
    /// it), and `lineEnds[k]` is the token count through line k: a prompt that adds lines to another's extends its
    /// tokens. A prompt over `limit` tokens keeps its tail and has no line ends.
    public static func directTokens(lines: [String], tokenizer: Tokenizer, limit: Int) -> (tokens: [Int], lineEnds: [Int]) {
        directTokens(lines: lines, limit: limit, encode: tokenizer.encode)
    }

    /// directTokens with `encode` giving the tokens of each line's text (e.g. remembered ones: PrefixCache.lineTokens).
    public static func directTokens(lines: [String], limit: Int, encode: (String) -> [Int]) -> (tokens: [Int], lineEnds: [Int]) {
        var tokens: [Int] = [], ends: [Int] = []
        tokens.reserveCapacity(32 * (lines.count + 1))
        for (k, line) in lines.enumerated() {
            tokens += encode(k == 0 ? line : separator + line)
            ends.append(tokens.count)
        }
        tokens += encode(separator + Prompts.answerTag)
        return tokens.count <= limit ? (tokens, ends) : (keepingTail(tokens, limit: limit), [])
    }

    /// The first tokens up to `limit`, with the trailing `tail` tokens (the answer tag) kept at the end.
    public static func keepingHead(_ tokens: [Int], tail: Int, limit: Int) -> [Int] {
        tokens.count <= limit ? tokens : Array(tokens.prefix(limit - tail)) + Array(tokens.suffix(tail))
    }
}

public struct ReasoningResult: Sendable {
    public var text: String
    public var tokens: [Int]
    /// False when the token limit forced `<answer>`.
    public var stoppedByModel: Bool
    /// cosine / tau for every catalogue item.
    public var scores: [Float]
}

/// The form of the item table the scoring product reads (`--item-table-precision`): float32 (packed once at load;
/// bfloat16 with a bfloat16 network), or int8 with one float32 scale per row (Tensor's Int8Matrix: 4x fewer bytes
/// per scoring pass, the ranking that of the dequantised table). SimilarItems keeps the float32 table.
public enum ItemTablePrecision: String, Sendable, CaseIterable, Codable {
    case float32
    case int8
}

/// What ranking one history's scores reads (DualHeadModel.scoreForRanking): its best `depth` items (a top-k plus the
/// items it masks, plus the calibrated ranks when probabilities are asked) and every item of `exact` (a candidate list).
public struct RankingNeed: Sendable {
    public var depth: Int
    public var exact: [Int]?
    public init(depth: Int, exact: [Int]? = nil) { self.depth = depth; self.exact = exact }
}

public final class DualHeadModel: Recommender, @unchecked Sendable {
    public let model: Qwen2Model
    public let tokenizer: Tokenizer
    public let catalog: Catalog
    public let itemTable: ItemTable
    /// Softmax temperature of the scores: score = cosine / tau.
    public let tau: Float
    public var kind: String { "dual-head" }
    public var numParameters: Int { model.parameterCount }
    /// Query rows per forward pass of the direct path (bounds the activation memory of one pass).
    public var directBatchSize = 32
    /// New items' content prior (`--new-item-prior`): applied to the items a catalogue update encodes that have no
    /// training interaction (nil: their text vectors as read out).
    public var contentPrior: ContentPrior?

    public var configJSON: String {
        let c = model.configuration
        return "{\"model_type\":\"qwen2\",\"hidden_size\":\(c.hiddenSize),\"num_hidden_layers\":\(c.numHiddenLayers)," +
            "\"num_attention_heads\":\(c.numAttentionHeads),\"num_key_value_heads\":\(c.numKeyValueHeads)," +
            "\"intermediate_size\":\(c.intermediateSize),\"vocab_size\":\(c.vocabSize),\"tau\":\(tau)," +
            (c.latentSteps > 0 ? "\"latent_steps\":\(c.latentSteps)," : "") +
            "\"items\":\(catalog.count),\"weights_hash\":\"\(itemTable.weightsHash)\"}"
    }

    /// The item table packed once into the panels of CKernels' GEMM for the scoring product: bfloat16 when the network
    /// runs in bfloat16, else float32 (nil on CPUs without AVX2: OpenBLAS). Unpacked, every product of 16 or more
    /// queries packed the whole table again (at 10^6 items 512 MB written and read back per call, in a scratch that
    /// then stayed resident) and smaller ones went through OpenBLAS's sgemv/sgemm.
    let packedTable: PackedMatrix?
    /// The item table as int8 with one scale per row, scored instead of `packedTable` when `itemTablePrecision` is
    /// int8 (a quarter of the bytes to stream per scoring pass; the scores are the dequantised table's).
    public let int8Table: Int8Matrix?
    /// What the scoring product reads: the float32 table packed (bfloat16 with a bfloat16 network), or int8.
    public let itemTablePrecision: ItemTablePrecision
    /// Whether scoreForRanking may use the int8 table's VNNI pass (quantised user vectors, the top re-scored exactly)
    /// where the CPU has it; false scores every item exactly (for comparisons).
    public var vnniRanking = true
    /// Whether that pass reads the int4 screening copy of the int8 table first, when one was made (`int4Screen` at
    /// init: Int4Screen, half the bytes, a per-item error bound, the items it cannot rule out re-scored exactly).
    /// Opt-in, for `bench scale --int4-screen`: on the default model's item vectors at 10^6 items its bound rules out
    /// too few items to pay (docs/scale.md). False reads the int8 table itself.
    public var int4Screening = true
    /// Called with the items each ranking row re-scored exactly (Int8Matrix.multiplyForRanking's counts), per batch
    /// of scoreForRanking through the VNNI pass: `bench scale` counts the shortlist of real user vectors with it.
    public var rankingObserver: (([Int]) -> Void)?
    /// How user prompts show a history: the format the checkpoint was trained with.
    public let promptFormat: PromptFormat
    /// Per-user KV caches of the direct path (`--prefix-cache`): a prompt extending a cached one prefills only its
    /// new tokens. nil: every prompt is prefilled whole.
    public var prefixCache: PrefixCache?
    /// Phase timers of the direct path (`bench serve --returning --levels model`): one caller at a time.
    nonisolated(unsafe) public var profile: PhaseProfile?

    public init(model: Qwen2Model, tokenizer: Tokenizer, catalog: Catalog, itemTable: ItemTable, tau: Float = 0.02,
                itemTablePrecision: ItemTablePrecision = .float32, promptFormat: PromptFormat, int4Screen: Bool = false) {
        precondition(itemTable.count == catalog.count && itemTable.dimension == model.configuration.hiddenSize,
                     "item table of \(itemTable.count)x\(itemTable.dimension) for \(catalog.count) items")
        self.model = model; self.tokenizer = tokenizer; self.catalog = catalog; self.itemTable = itemTable; self.tau = tau
        self.itemTablePrecision = itemTablePrecision
        self.promptFormat = promptFormat
        let precision: PackedMatrix.Precision = model.packedPrecision == .bfloat16 ? .bfloat16 : .float32
        let int8 = itemTablePrecision == .int8 && itemTable.count > 0
        int8Table = int8 ? Int8Matrix(weights: itemTable.vectors.pointer, n: itemTable.count, k: itemTable.dimension,
                                      screening: int4Screen && Int8Matrix.vnniAvailable) : nil
        packedTable = !int8 && precision.isSupported && itemTable.count > 0
            ? PackedMatrix(weights: itemTable.vectors.pointer, n: itemTable.count, k: itemTable.dimension, precision: precision)
            : nil
    }

    /// Builds the item table from `itemPrompts` (one per catalogue item, e.g. Prompts.item), or reuses the one
    /// cached at `cachePath` when weights and prompts are unchanged; a rebuilt table is written there only when
    /// `writeCache` (training writes into its own output; serving and evaluation never write into the checkpoint
    /// they read). Otherwise, with `itemTableCache` (a directory the server owns), the table is read from there or
    /// built resumably into it; without, it is built in memory.
    public convenience init(model: Qwen2Model, tokenizer: Tokenizer, catalog: Catalog, itemPrompts: [String],
                            tau: Float = 0.02, cachePath: String? = nil, writeCache: Bool = false,
                            itemTableCache: ItemTableCache? = nil,
                            progress: Bool = true, itemTablePrecision: ItemTablePrecision = .float32,
                            promptFormat: PromptFormat) throws {
        precondition(itemPrompts.count == catalog.count, "one item prompt per catalogue item")
        let weightsHash = Checkpoint.weightsHash(model)
        let texts = itemPrompts.map { DualHeadFormat.itemText(itemPrompt: $0) }
        let promptsHash = ItemTable.promptsHash(texts)
        let d = model.configuration.hiddenSize
        var table: ItemTable? = nil
        if let cachePath {
            table = try ItemTable.load(path: cachePath, weightsHash: weightsHash, promptsHash: promptsHash,
                                       count: catalog.count, dimension: d)
        }
        if table == nil {
            let tail = tokenizer.encode(Prompts.answerTag).count
            let limit = min(DualHeadFormat.maxItemTokens, model.configuration.maxPositionEmbeddings)
            let tokens = { texts.map { DualHeadFormat.keepingHead(tokenizer.encode($0), tail: tail, limit: limit) } }
            let built: ItemTable
            if let itemTableCache {
                let key = ItemTableCache.Key(weightsHash: weightsHash, promptsHash: promptsHash,
                                             precision: (model.packedPrecision ?? .float32).rawValue,
                                             count: catalog.count, dimension: d)
                built = try itemTableCache.table(key, model: model, itemTokens: tokens, progress: progress).table
            } else {
                built = ItemTable.build(model: model, itemTokens: tokens(), weightsHash: weightsHash,
                                        promptsHash: promptsHash, progress: progress)
            }
            if let cachePath, writeCache {
                // A read-only checkpoint directory costs a rebuild next time, not the model.
                do { try built.save(to: cachePath) } catch {
                    FileHandle.standardError.write(Foundation.Data("warning: item table not cached at \(cachePath): \(error)\n".utf8))
                }
            }
            table = built
        }
        self.init(model: model, tokenizer: tokenizer, catalog: catalog, itemTable: table!, tau: tau,
                  itemTablePrecision: itemTablePrecision, promptFormat: promptFormat)
    }

    /// The user prompt of a history in the model's format; a target-relative one measures dt back from `targetTime`
    /// (the last interaction's time when nil).
    public func userPrompt(_ history: UserHistory, targetTime: Int64? = nil) -> String {
        userLines(history, targetTime: targetTime).joined(separator: "\n")
    }

    func userLines(_ history: UserHistory, targetTime: Int64?) -> [String] {
        Prompts.userLines(history: history, catalog: catalog, targetTime: targetTime ?? (history.timestamps.max() ?? 0),
                          format: promptFormat)
    }

    /// The direct path's tokens of a history and the token count through each prompt line (DualHeadFormat.directTokens).
    /// With a prefix cache, the lines' tokens are the ones it remembers (`epoch`: when the history was read).
    public func directTokens(_ history: UserHistory, targetTime: Int64? = nil,
                             epoch: UInt64? = nil) -> (tokens: [Int], lineEnds: [Int]) {
        let lines = userLines(history, targetTime: targetTime)
        let limit = min(DualHeadFormat.maxUserTokens, model.configuration.promptPositions)
        guard let prefixCache else { return DualHeadFormat.directTokens(lines: lines, tokenizer: tokenizer, limit: limit) }
        let epoch = epoch ?? prefixCache.epoch
        return DualHeadFormat.directTokens(lines: lines, limit: limit) { text in
            prefixCache.lineTokens(text, since: epoch) { tokenizer.encode($0) }
        }
    }

    func userTokens(_ text: String) -> [Int] {
        DualHeadFormat.keepingTail(tokenizer.encode(text),
                                   limit: min(DualHeadFormat.maxUserTokens, model.configuration.promptPositions))
    }

    /// Scores [queries, items] = unit[queries, hidden] · itemTable^T / tau: one GEMM over the packed table (bfloat16
    /// products, float32 sums, for a bfloat16 network), or over the int8 table (its dequantised values).
    public func score(userVectors unit: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>) {
        if let int8Table {
            int8Table.multiply(rows: count, x: unit, ldx: itemTable.dimension, out: out, ldo: itemTable.count, alpha: 1 / tau)
            return
        }
        if let packedTable {
            packedTable.multiply(rows: count, x: unit, ldx: itemTable.dimension, out: out, ldo: itemTable.count,
                                 alpha: 1 / tau, beta: 0, serial: false)
            return
        }
        GEMM.forward(m: count, n: itemTable.count, k: itemTable.dimension, a: unit, b: itemTable.vectors.pointer,
                     transB: true, c: out, alpha: 1 / tau)
    }

    // MARK: Recommender

    public func scoreAll(_ histories: [UserHistory]) throws -> [Float] {
        try scoreAll(histories, targetTimes: nil)
    }

    /// The direct path for each history: prompt + `<answer>` in one prefill, readout, one GEMM against the table.
    public func scoreAll(_ histories: [UserHistory], targetTimes: [Int64]?) throws -> [Float] {
        try direct(histories, targetTimes: targetTimes) { unit, _, count, out in
            score(userVectors: unit, count: count, into: out)
        }
    }

    /// The direct path's scores for ranking: each row ranks its best needs[q].depth items, and needs[q].exact, as
    /// scoreAll's would; other values may be lower than scoreAll's (Int8Matrix.multiplyForRanking: with an int8 table on
    /// an AVX512_VNNI CPU and `vnniRanking`, the table pass runs on quantised user vectors, over the int4 screening copy
    /// with `int4Screening`, and only the items near the top are re-scored). Otherwise the rows are scoreAll's.
    /// `tags` (one per history) name whose request each is, for the prefix cache.
    public func scoreForRanking(_ histories: [UserHistory], targetTimes: [Int64]?, needs: [RankingNeed],
                                tags: [PrefixCache.Tag]? = nil) throws -> [Float] {
        precondition(needs.count == histories.count, "one ranking need per history")
        guard let int8Table, vnniRanking, Int8Matrix.vnniAvailable else {
            return try direct(histories, targetTimes: targetTimes, tags: tags) { unit, _, count, out in
                score(userVectors: unit, count: count, into: out)
            }
        }
        let items = catalog.count
        return try direct(histories, targetTimes: targetTimes, tags: tags) { unit, start, count, out in
            let rescored = int8Table.multiplyForRanking(rows: count, x: unit, ldx: itemTable.dimension, out: out, ldo: items,
                                                        alpha: 1 / tau, depths: needs[start..<(start + count)].map(\.depth),
                                                        exact: needs[start..<(start + count)].map(\.exact), screened: int4Screening)
            rankingObserver?(rescored)
        }
    }

    /// Prefills the histories' direct prompts in chunks of `directBatchSize` and lets `scoring` write each chunk's
    /// rows from its unit user vectors (vectors, first history, count, rows).
    private func direct(_ histories: [UserHistory], targetTimes: [Int64]?, tags: [PrefixCache.Tag]? = nil,
                        scoring: (UnsafePointer<Float>, Int, Int, UnsafeMutablePointer<Float>) -> Void) throws -> [Float] {
        for (q, h) in histories.enumerated() {
            if let bad = h.items.first(where: { $0 < 0 || $0 >= catalog.count }) {
                throw RecommenderError.invalidQuery("history \(q) holds item index \(bad) outside the catalogue")
            }
        }
        let items = catalog.count
        // Every score is written by the GEMMs (beta 0), so the array is not zeroed first: at 10^6 items a batch's
        // scores are 4 MB per history.
        return [Float](unsafeUninitializedCapacity: histories.count * items) { buffer, initialized in
            var start = 0
            while start < histories.count {
                let end = min(histories.count, start + directBatchSize)
                let unit = readout(histories[start..<end], targetTimes: targetTimes.map { Array($0[start..<end]) },
                                   tags: tags.map { Array($0[start..<end]) })
                profile?.start()
                scoring(unit.pointer, start, end - start, buffer.baseAddress! + start * items)
                profile?.lap("scoring GEMM")
                start = end
            }
            initialized = histories.count * items
        }
    }

    /// The unit user vectors of the direct prompts of `histories`: one prefill of every prompt, or, with a prefix cache,
    /// of what each prompt adds to its longest cached prefix (the instruction and history lines are kept for the next
    /// request; `tags` name whose request each history is).
    func readout(_ histories: ArraySlice<UserHistory>, targetTimes: [Int64]?, tags: [PrefixCache.Tag]?) -> FloatBuffer {
        // Formatting and tokenising every prompt is serial work beside the (threaded) forward pass: spread it too.
        let profile = self.profile
        profile?.start()
        let first = histories.startIndex
        // Read before the lines are tokenised: a removal after it keeps this batch's lines and prompts out.
        let epoch = prefixCache?.epoch ?? 0
        var prompts = [(tokens: [Int], lineEnds: [Int])](repeating: ([], []), count: histories.count)
        prompts.withUnsafeMutableBufferPointer { out in
            let out = out
            ThreadPool.shared.parallelFor(histories.count) { i in
                out[i] = directTokens(histories[first + i], targetTime: targetTimes?[i], epoch: tags?[i].epoch ?? epoch)
            }
        }
        profile?.lap("format + tokenise")
        guard let prefixCache else { return model.userReadout(prompts.map(\.tokens)) }
        // The instruction and history lines can be cached, not the lines of the request's time.
        let cachable = prompts.map { Array($0.lineEnds.dropLast(promptFormat.timeLines)) }
        var inputs: [[Int]] = [], caches: [KVCache] = [], users: [Set<String>] = []
        for (i, p) in prompts.enumerated() {
            let user = tags?[i].user ?? ""
            if !cachable[i].isEmpty, let hit = prefixCache.take(p.tokens, boundaries: cachable[i]) {
                inputs.append(Array(p.tokens[hit.length...]))
                caches.append(hit.cache)
                users.append(user.isEmpty ? hit.users : hit.users.union([user]))
            } else {
                inputs.append(p.tokens)
                caches.append(KVCache(configuration: model.configuration,
                                      reservingCapacity: p.tokens.count + room(lineEnds: cachable[i])))
                users.append(user.isEmpty ? [] : [user])
            }
        }
        profile?.lap("cache take")
        let unit = model.userReadout(inputs, caches: caches)
        profile?.lap("forward + normalise")
        // Only the prompt's instruction and history lines are kept: never its time lines or latent steps.
        for (i, p) in prompts.enumerated() where !cachable[i].isEmpty {
            let kept = cachable[i].last!
            caches[i].trim(to: kept)
            prefixCache.put(Array(p.tokens[0..<kept]), cache: caches[i], users: users[i], since: tags?[i].epoch ?? epoch)
        }
        profile?.lap("cache put")
        return unit
    }

    /// Tokens to reserve beyond a new prompt's, for the history lines its window can still add (at its lines'
    /// average length, plus a quarter): a cache that outgrows its storage doubles it, copying every token into
    /// fresh pages (page faults), which was ~10% of a returning call's CPU time when 64 tokens were reserved.
    func room(lineEnds: [Int]) -> Int {
        let lines = lineEnds.count - 1   // history lines (the instruction is the first)
        guard lines > 0 else { return 64 }
        let perLine = (lineEnds[lines] - lineEnds[0] + lines - 1) / lines
        let more = max(0, promptFormat.maxHistoryLines - lines)
        return max(64, more * perLine * 5 / 4)
    }

    public func similarities(to item: Int) throws -> [Float] {
        guard item >= 0 && item < catalog.count else {
            throw RecommenderError.invalidQuery("item index \(item) outside the catalogue of \(catalog.count)")
        }
        var out = [Float](repeating: 0, count: catalog.count)
        out.withUnsafeMutableBufferPointer {
            GEMM.forward(m: 1, n: itemTable.count, k: itemTable.dimension, a: itemTable.vectors.row(item),
                         b: itemTable.vectors.pointer, transB: true, c: $0.baseAddress!)
        }
        return out
    }

    // MARK: Reasoning

    /// Reasoning for each history (chains decoded together, one batched step per token), then the recommendation
    /// head on each chain's last token. With `chainsPerHistory` G > 1, each history's prompt is prefilled once and
    /// G chains continue it (RecPO's groups); results are grouped by history: index q * G + g. Chain i samples with
    /// `settings` and seed settings.seed + i. With `titles`, quoted titles are restricted to the trie's (TitleConstraint);
    /// `historyTitles` (one trie per history) restricts each history's chains to its own trie instead.
    public func reason(_ histories: [UserHistory], targetTimes: [Int64]? = nil,
                       settings: SamplingSettings = .greedy, maxNewTokens: Int = 256,
                       chainsPerHistory: Int = 1, titles: TitleTrie? = nil,
                       historyTitles: [TitleTrie]? = nil) -> [ReasoningResult] {
        precondition(chainsPerHistory >= 1)
        precondition(historyTitles == nil || historyTitles!.count == histories.count, "one title trie per history")
        if histories.isEmpty { return [] }
        let prompts = histories.indices.map { q in
            userTokens(DualHeadFormat.reasoningText(userPrompt: userPrompt(histories[q], targetTime: targetTimes?[q])))
        }
        let room = model.configuration.maxPositionEmbeddings - (prompts.map(\.count).max() ?? 0) - 8
        let generation = Generation(model: model, tokenizer: tokenizer,
                                    maxNewTokens: max(1, min(maxNewTokens, room)), stopText: Prompts.answerTag,
                                    titles: titles)
        for (q, prompt) in prompts.enumerated() {
            let group = (0..<chainsPerHistory).map { g -> SamplingSettings in
                var s = settings; s.seed = settings.seed &+ UInt64(q * chainsPerHistory + g); return s
            }
            generation.addGroup(prompt: prompt, settings: group, titles: historyTitles?[q])
        }
        let chains = generation.run()
        let d = model.configuration.hiddenSize, items = catalog.count
        let unit = FloatBuffer(shape: [chains.count, d])
        for (i, chain) in chains.enumerated() {
            chain.readout!.withUnsafeBufferPointer { (unit.data + i * d).update(from: $0.baseAddress!, count: d) }
        }
        L2Normalize.forward(out: unit.data, input: unit.data, rows: chains.count, dim: d)
        var all = [Float](repeating: 0, count: chains.count * items)
        all.withUnsafeMutableBufferPointer { score(userVectors: unit.pointer, count: chains.count, into: $0.baseAddress!) }
        return chains.enumerated().map { i, chain in
            ReasoningResult(text: tokenizer.decode(chain.tokens), tokens: chain.tokens,
                            stoppedByModel: chain.stoppedByModel, scores: Array(all[(i * items)..<((i + 1) * items)]))
        }
    }

    /// The `k` best items for each history by the direct path, history items masked.
    public func recommend(_ histories: [UserHistory], k: Int) throws -> [[RankedItem]] {
        let scores = try scoreForRanking(histories, targetTimes: nil,
                                         needs: histories.map { RankingNeed(depth: k + Set($0.items).count) })
        let items = catalog.count
        return scores.withUnsafeBufferPointer { all in
            histories.indices.map { q in
                Ranking.topK(UnsafeBufferPointer(rebasing: all[(q * items)..<((q + 1) * items)]), k: k,
                             masked: Set(histories[q].items))
            }
        }
    }
}
