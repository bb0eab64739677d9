// The reasoning path as a Recommender: each history gets a greedy (or sampled) chain from the LM head until
// `<answer>`, and the recommendation head scores the catalogue from the chain's last token. Lets the Eval evaluator
// measure "with reasoning" exactly as it measures the direct path. With `constrainTitles`, quoted titles are decoded
// through a trie (TitleConstraint) of the catalogue's display titles, or of the titles the user's prompt shows.
import Data
import Foundation
import Model

/// Which titles a constrained chain may quote.
public enum TitleScope: String, CaseIterable, Sendable {
    /// Any catalogue item's display title.
    case catalogue
    /// The display titles of the history lines the user's prompt shows (the last `Prompts.historyLength`).
    case history
}

public final class ReasoningRecommender: Recommender, @unchecked Sendable {
    public let base: DualHeadModel
    public let settings: SamplingSettings
    public let maxNewTokens: Int
    /// Which titles the chains may quote (nil: any text).
    public let titleScope: TitleScope?
    /// The catalogue's titles (scope catalogue), or the vocabulary the per-history tries share (scope history).
    let titles: TitleTrie?
    /// Mean generated tokens per chain over every call so far.
    public private(set) var meanChainLength = 0.0
    private var chains = 0
    /// With `recordChains`, every chain's text and the history it was written for, in call order.
    public var recordChains = false
    public private(set) var recorded: [(text: String, history: UserHistory)] = []

    public init(base: DualHeadModel, settings: SamplingSettings = .greedy, maxNewTokens: Int,
                constrainTitles: TitleScope? = nil) {
        self.base = base; self.settings = settings; self.maxNewTokens = maxNewTokens
        titleScope = constrainTitles
        switch constrainTitles {
        case nil: titles = nil
        case .catalogue: titles = TitleTrie(titles: base.catalog.items.map(Prompts.displayTitle), tokenizer: base.tokenizer)
        case .history: titles = TitleTrie(titles: [], tokenizer: base.tokenizer)
        }
    }

    /// The titles a history's prompt shows, as it quotes them.
    func shownTitles(_ history: UserHistory) -> [String] {
        history.items.suffix(Prompts.historyLength).map { Prompts.displayTitle(base.catalog[$0]) }
    }

    public var kind: String { "dual-head-reasoning" }
    public var catalog: Catalog { base.catalog }
    public var configJSON: String { base.configJSON }
    public var numParameters: Int { base.numParameters }

    public func scoreAll(_ histories: [UserHistory]) throws -> [Float] {
        try scoreAll(histories, targetTimes: nil)
    }

    /// Chains whose prompts count back from `targetTimes` (the last history item's time when nil).
    public func scoreAll(_ histories: [UserHistory], targetTimes: [Int64]?) throws -> [Float] {
        let perHistory = titleScope == .history
            ? histories.map { TitleTrie(titles: shownTitles($0), vocabularyOf: titles!) } : nil
        let results = base.reason(histories, targetTimes: targetTimes, settings: settings, maxNewTokens: maxNewTokens,
                                   titles: perHistory == nil ? titles : nil, historyTitles: perHistory)
        if recordChains { for (r, h) in zip(results, histories) { recorded.append((r.text, h)) } }
        for r in results {
            meanChainLength = (meanChainLength * Double(chains) + Double(r.tokens.count)) / Double(chains + 1)
            chains += 1
        }
        return results.flatMap(\.scores)
    }

    public func similarities(to item: Int) throws -> [Float] { try base.similarities(to: item) }
}
