// The training data of one dataset split in model form: item prompts and their tokens (stats from the training
// interactions only), each user's training sequence, user-prompt windows as the direct path formats them
// (DualHeadFormat.directText of Prompts.user in the run's PromptFormat, as `r2ec eval` and the server read them), and
// the rows of each history line's end, whose read-outs can be trained to predict the next line's item.
import Data
import Foundation
import Model

public final class TrainingCorpus: @unchecked Sendable {
    public let dataset: Dataset
    public let split: Split
    /// Prompts.item per catalogue item, stats from split.train.
    public let itemPrompts: [String]
    /// Per user, the training sequence, oldest first.
    public let sequences: [UserHistory]
    /// Share of the training interactions held by each item.
    public let itemFrequency: [Double]
    /// How user prompts show a history (the checkpoint records it).
    public let promptFormat: PromptFormat
    public private(set) var tokenizer: Tokenizer?
    public private(set) var itemTokens: [[Int]] = []
    private var newline = -1
    /// Item texts are cut to `itemTokenLimit` tokens keeping their last `answerTail` (the `<answer>` tag).
    private var answerTail = 0, itemTokenLimit = 0
    private var maxTokens = 2048

    /// The interactions training sequences are built from: split.train, plus each validation target when
    /// `includeValidation` (the "refit on train + validation" protocol: the test item stays unseen). Item prompts
    /// always use split.train's stats, as `r2ec eval --model` builds them.
    public let trainingInteractions: [Interaction]

    public init(dataset: Dataset, split: Split, includeValidation: Bool = false, promptFormat: PromptFormat) {
        self.dataset = dataset
        self.promptFormat = promptFormat
        self.split = split
        let stats = dataset.itemStats(from: split.train)
        itemPrompts = (0..<dataset.catalog.count).map { Prompts.item(dataset.catalog[$0], stats: stats[$0]) }
        var interactions = split.train
        if includeValidation {
            // The validation interaction itself (its rating included): one matching row of the dataset per sample.
            var wanted: [String: Int] = [:]
            for v in split.validation { wanted["\(v.user) \(v.target) \(v.targetTime)", default: 0] += 1 }
            for x in dataset.interactions {
                let key = "\(x.user) \(x.item) \(x.timestamp)"
                if let n = wanted[key], n > 0 { interactions.append(x); wanted[key] = n - 1 }
            }
        }
        trainingInteractions = interactions
        sequences = Dataset.sequences(of: interactions, numUsers: split.numUsers)
        var counts = [Double](repeating: 0, count: dataset.catalog.count)
        for x in interactions { counts[x.item] += 1 }
        itemFrequency = counts.map { $0 / Double(max(1, interactions.count)) }
    }

    public var catalogCount: Int { dataset.catalog.count }

    /// A window of user u's training sequence: history = items before position `end`, target = item at `end`.
    public struct Window: Sendable, Equatable {
        public var user: Int
        public var end: Int
    }

    public func history(_ w: Window) -> UserHistory {
        let s = sequences[w.user]
        return UserHistory(items: Array(s.items[0..<w.end]), timestamps: Array(s.timestamps[0..<w.end]),
                           ratings: Array(s.ratings[0..<w.end]))
    }

    public func target(_ w: Window) -> Int { sequences[w.user].items[w.end] }

    /// The time a window's prompt counts back from: its target's timestamp.
    public func targetTime(_ w: Window) -> Int64 { sequences[w.user].timestamps[w.end] }

    /// The direct-path text of a history (what `DualHeadModel.scoreAll(_:targetTimes:)` feeds).
    public func userText(_ h: UserHistory, targetTime: Int64) -> String {
        DualHeadFormat.directText(userPrompt: Prompts.user(history: h, catalog: dataset.catalog, targetTime: targetTime,
                                                           format: promptFormat))
    }

    /// Trains a byte-level BPE tokenizer on every item text and `userPrompts` seeded user windows.
    public func trainTokenizer(vocabularySize: Int, userPrompts: Int, seed: UInt64) throws -> Tokenizer {
        var rng = SplitMix64(seed: seed)
        var texts = itemPrompts.map { DualHeadFormat.itemText(itemPrompt: $0) }
        let users = sequences.indices.filter { sequences[$0].count >= 2 }
        for _ in 0..<min(userPrompts, users.count * 4) {
            let u = users[Int(rng.next() % UInt64(users.count))]
            let end = 1 + Int(rng.next() % UInt64(sequences[u].count - 1))
            texts.append(userText(history(Window(user: u, end: end)), targetTime: targetTime(Window(user: u, end: end))))
        }
        return try TokenizerTrainer.train(texts: texts, vocabularySize: vocabularySize)
    }

    /// Installs the tokenizer and tokenises every item text; `maxPositions` bounds every sequence.
    public func use(tokenizer: Tokenizer, maxPositions: Int) {
        self.tokenizer = tokenizer
        maxTokens = min(DualHeadFormat.maxUserTokens, maxPositions)
        answerTail = tokenizer.encode(Prompts.answerTag).count
        itemTokenLimit = min(DualHeadFormat.maxItemTokens, maxPositions)
        itemTokens = itemPrompts.map(itemTextTokens)
        let nl = tokenizer.encode("\n")
        newline = nl.count == 1 ? nl[0] : -1
    }

    /// Item `item`'s prompt rendered as a new item's ("Average rating: none", "Raters: 0"): what UpsertItems and
    /// `r2ec eval --model` give an item without training interactions. Made when a step draws it (new_item_share),
    /// not for every item up front.
    public func newItemPrompt(_ item: Int) -> String {
        Prompts.item(dataset.catalog[item], stats: ItemStats(count: 0, meanRating: 0))
    }

    /// Item `item`'s prompt without its title (title_dropout), made when a step draws it.
    public func titlelessItemPrompt(_ item: Int) -> String { Prompts.itemWithoutTitle(dataset.catalog[item]) }

    /// The tokens of `newItemPrompt(item)`, as `itemTokens` holds the trained rendering's (after `use(tokenizer:)`).
    public func newItemTokens(_ item: Int) -> [Int] { itemTextTokens(newItemPrompt(item)) }

    /// The tokens of `titlelessItemPrompt(item)`.
    public func titlelessItemTokens(_ item: Int) -> [Int] { itemTextTokens(titlelessItemPrompt(item)) }

    /// An item prompt's item text (`<answer>` included), tokenised and cut to the item token limit.
    private func itemTextTokens(_ prompt: String) -> [Int] {
        guard let tokenizer else { preconditionFailure("TrainingCorpus: use(tokenizer:) before tokenising items") }
        return DualHeadFormat.keepingHead(tokenizer.encode(DualHeadFormat.itemText(itemPrompt: prompt)),
                                          tail: answerTail, limit: itemTokenLimit)
    }

    /// A tokenised user window: tokens (ending at `<answer>`), and per shown history line k >= 1 the row of the
    /// newline that ends line k-1 (its read-out has seen lines 0..<k) with the item of line k as its target.
    public struct UserExample {
        public var tokens: [Int]
        public var target: Int
        /// Every item before the target (masked for the final read-out).
        public var before: [Int]
        public var lineRows: [Int] = []
        public var lineTargets: [Int] = []
        /// Per line target: how many of `before` precede it (its mask is before[0..<count]).
        public var lineMaskCounts: [Int] = []
    }

    public func example(_ w: Window) -> UserExample {
        example(history: history(w), target: target(w), targetTime: targetTime(w))
    }

    public func example(history h: UserHistory, target: Int, targetTime: Int64) -> UserExample {
        let tokens = DualHeadFormat.keepingTail(tokenizer!.encode(userText(h, targetTime: targetTime)), limit: maxTokens)
        var e = UserExample(tokens: tokens, target: target, before: h.items)
        let shownStart = Prompts.shownStart(count: h.count, format: promptFormat)
        let shown = h.count - shownStart
        var newlines: [Int] = []
        for (i, t) in tokens.enumerated() where t == newline { newlines.append(i) }
        // Newline 0 ends the instruction, newline k ends history line k-1, then one per time line (stable-prefix:
        // `Next`), the last one precedes `<answer>`.
        if newline >= 0 && newlines.count == shown + 1 + promptFormat.timeLines {
            for k in 1..<max(1, shown) {
                e.lineRows.append(newlines[k])
                e.lineTargets.append(h.items[shownStart + k])
                e.lineMaskCounts.append(shownStart + k)
            }
        }
        return e
    }

    /// Users with at least two training items (one window or more).
    public var trainableUsers: [Int] { sequences.indices.filter { sequences[$0].count >= 2 } }

    /// One epoch of windows: per user, the window ending at the last training item and then every 20 items back
    /// from a seeded shift, so the epoch's line targets cover each training position about once; shuffled.
    public func epoch(seed: UInt64, stride: Int = Prompts.historyLength) -> [Window] {
        var rng = SplitMix64(seed: seed)
        var windows: [Window] = []
        for u in trainableUsers {
            let m = sequences[u].count
            windows.append(Window(user: u, end: m - 1))
            var end = m - 1 - stride + Int(rng.next() % UInt64(stride))
            if end == m - 1 { end -= stride }
            while end >= 1 { windows.append(Window(user: u, end: end)); end -= stride }
        }
        for i in Swift.stride(from: windows.count - 1, to: 0, by: -1) {
            let j = Int(rng.next() % UInt64(i + 1))
            windows.swapAt(i, j)
        }
        return windows
    }
}

/// Batches of windows, epoch after epoch (each epoch shuffled from seed + epoch), addressable by step so that a
/// resumed run sees the same batches as an uninterrupted one.
public struct WindowSchedule {
    let corpus: TrainingCorpus
    let seed: UInt64
    let batch: Int
    private var epochs: [[Window]] = []
    public typealias Window = TrainingCorpus.Window

    public init(corpus: TrainingCorpus, seed: UInt64, batch: Int) {
        self.corpus = corpus; self.seed = seed; self.batch = batch
    }

    public var epochLength: Int? { epochs.first?.count }

    /// The windows of step `step` (0-based), and the (fractional) epoch it is in.
    public mutating func windows(step: Int) -> (windows: [Window], epoch: Double) {
        var out: [Window] = []
        var position = step * batch
        var e = 0
        var epochPosition = 0.0
        while out.count < batch {
            if e == epochs.count { epochs.append(corpus.epoch(seed: seed &+ UInt64(e) &* 0x9E37_79B9)) }
            let length = epochs[e].count
            if position >= length { position -= length; e += 1; continue }
            if out.isEmpty { epochPosition = Double(e) + Double(position) / Double(length) }
            let take = min(batch - out.count, length - position)
            out += epochs[e][position..<(position + take)]
            position = 0
            e += 1
        }
        return (out, epochPosition)
    }
}
