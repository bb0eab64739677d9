// Quality of reasoning text (issue 16 part 3): is it grounded, is it varied, does it loop?
// - Quoted titles: every "[...]" span of a chain (the prompts quote history items as "[Title (Year)]"); the share
//   that names a catalogue item exactly (its display title) and the share that names an item of that user's history.
// - distinct-2 (Li et al. 2016): distinct word bigrams / all word bigrams, over every chain together.
// - repetition-4: per chain, 1 - distinct word 4-grams / all word 4-grams (0 for a chain without a repeated 4-gram),
//   averaged over chains that have at least one 4-gram.
// Words are maximal runs of non-whitespace. Pure functions over strings, so any generator's text can be measured.
import Foundation

public struct ReasoningQuality: Sendable, Equatable {
    public var chains = 0
    public var quotedTitles = 0
    /// Share of quoted titles that are catalogue titles (nil without a quoted title).
    public var titlesInCatalogue: Double?
    /// Share of quoted titles that are titles of the chain's own history.
    public var titlesInHistory: Double?
    /// Distinct word bigrams / word bigrams over all chains (nil without a bigram).
    public var distinct2: Double?
    /// Mean over chains of 1 - distinct 4-grams / 4-grams (nil when no chain has 4 words).
    public var repetition4: Double?
    /// Mean words per chain.
    public var meanWords = 0.0

    public init() {}

    /// The text inside each closed "[...]" span, trimmed of surrounding spaces; nested brackets are not spans.
    public static func quotedTitles(_ text: String) -> [String] {
        var out: [String] = []
        var current: String?
        for c in text {
            if c == "[" { current = "" } else if c == "]" {
                if let t = current { out.append(t.trimmingCharacters(in: .whitespaces)) }
                current = nil
            } else if c == "\n" { current = nil } else { current?.append(c) }
        }
        return out
    }

    public static func words(_ text: String) -> [Substring] {
        text.split(whereSeparator: { $0.isWhitespace })
    }

    /// Measures `chains[i]` against `histories[i]` (the display titles of that user's history) and `catalogue`
    /// (every item's display title).
    public static func measure(chains: [String], histories: [[String]], catalogue: Set<String>) -> ReasoningQuality {
        precondition(chains.count == histories.count, "one history per chain")
        var q = ReasoningQuality()
        q.chains = chains.count
        var inCatalogue = 0, inHistory = 0
        var bigrams = Set<String>(), bigramCount = 0
        var repetitionSum = 0.0, repetitionChains = 0, wordCount = 0
        for (chain, history) in zip(chains, histories) {
            let own = Set(history)
            for t in quotedTitles(chain) {
                q.quotedTitles += 1
                if catalogue.contains(t) { inCatalogue += 1 }
                if own.contains(t) { inHistory += 1 }
            }
            let w = words(chain)
            wordCount += w.count
            if w.count >= 2 {
                for i in 0..<(w.count - 1) { bigrams.insert(w[i] + " " + w[i + 1]) }
                bigramCount += w.count - 1
            }
            if w.count >= 4 {
                var grams = Set<String>()
                for i in 0..<(w.count - 3) { grams.insert(w[i..<(i + 4)].joined(separator: " ")) }
                repetitionSum += 1 - Double(grams.count) / Double(w.count - 3)
                repetitionChains += 1
            }
        }
        if q.quotedTitles > 0 {
            q.titlesInCatalogue = Double(inCatalogue) / Double(q.quotedTitles)
            q.titlesInHistory = Double(inHistory) / Double(q.quotedTitles)
        }
        if bigramCount > 0 { q.distinct2 = Double(bigrams.count) / Double(bigramCount) }
        if repetitionChains > 0 { q.repetition4 = repetitionSum / Double(repetitionChains) }
        q.meanWords = chains.isEmpty ? 0 : Double(wordCount) / Double(chains.count)
        return q
    }

    /// One markdown-ish line: "titles in catalogue 12/15 (.800), in history ...".
    public var summary: String {
        func f(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "n/a" }
        return "\(chains) chains, \(String(format: "%.1f", meanWords)) words each; \(quotedTitles) quoted titles: " +
            "in catalogue \(f(titlesInCatalogue)), in the user's history \(f(titlesInHistory)); " +
            "distinct-2 \(f(distinct2)), repetition-4 \(f(repetition4))"
    }
}
