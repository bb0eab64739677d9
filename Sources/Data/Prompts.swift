// The model's prompts (R2EC.md): the user prompt lists history items one per line, in one of two formats (a
// checkpoint records the one it was trained with: `PromptFormat`); the item prompt gives title, average rating, raters
// and up to 100 words of description or genres. Short instructions: the model is small and trained from scratch.

/// How a user prompt shows a history. A checkpoint is served, evaluated and benchmarked with the format it was trained
/// with (r2ec_train.json's `prompt_format`; absent: `.targetRelative`, the format of every earlier checkpoint).
public enum PromptFormat: String, Sendable, CaseIterable, Codable {
    /// The last 20 lines, each `{dt} ago: [{title}] ({rating})` with dt measured back from the target's time: every
    /// line changes as time passes and one new event shifts every line, so no two requests share a prompt prefix.
    case targetRelative = "target-relative"
    /// A prefix-stable prompt (docs/architecture.md, Returning users): the shown window starts at a multiple of 10
    /// lines (20-29 lines once a history has 20), each line `+{dt}: [{title}] ({rating})` with dt measured from the
    /// first shown line's time, then one last line `Next: {dt} later` (dt from the last event to the target time). A
    /// new event appends one history line and changes none before it, except once every 10 events when the window's
    /// start moves 10 lines on; only the last line depends on the request's time.
    case stablePrefix = "stable-prefix"

    /// Lines at the end of a user prompt that depend on the request's time (never part of a cached prefix).
    public var timeLines: Int { self == .stablePrefix ? 1 : 0 }

    /// The most history lines a prompt shows.
    public var maxHistoryLines: Int {
        self == .stablePrefix ? Prompts.historyLength + Prompts.windowStep - 1 : Prompts.historyLength
    }

    /// Whether a returning user's next prompt extends this one, so that keeping its KV cache pays: a target-relative
    /// prompt is rewritten whole by every new event, and keeping it would only spend memory and copies.
    public var extendsAcrossEvents: Bool { self == .stablePrefix }

    /// What `r2ec train` writes unless its config names another. Still target-relative: the default recipe retrained
    /// in the stable-prefix format lost test NDCG@10 .0937 -> .0738, outside the bootstrap interval (docs/training.md),
    /// so the returning-users cache is opt-in per checkpoint (`prompt_format: stable-prefix`).
    public static let current = PromptFormat.targetRelative

    /// The format recorded as `recorded` (nil: a checkpoint from before formats were recorded); an unknown name is
    /// an error naming the field.
    public static func recorded(_ recorded: String?) throws -> PromptFormat {
        guard let recorded else { return .targetRelative }
        guard let f = PromptFormat(rawValue: recorded) else {
            throw DataError.invalid("prompt_format: unknown format '\(recorded)' (known: " +
                                    allCases.map(\.rawValue).joined(separator: ", ") + ")")
        }
        return f
    }
}

public enum Prompts {
    /// The text that ends the reasoning and whose last token the recommendation head reads.
    public static let answerTag = "<answer>"
    public static let answerCloseTag = "</answer>"
    /// History lines in a user prompt (the most recent ones): exactly this many in the target-relative format, from
    /// this many to this + `windowStep` - 1 in the stable-prefix one.
    public static let historyLength = 20
    /// Lines the stable-prefix window's start moves by.
    public static let windowStep = 10
    /// Words of description (or genres) in an item prompt.
    public static let descriptionWords = 100

    public static let userInstruction = "Analyse the history, then name the next item inside <answer></answer>."
    public static let itemInstruction = "Summarise the item."

    /// The user turn: instruction, then one line per shown history item, oldest first (`userLines` joined by
    /// newlines).
    public static func user(history: UserHistory, catalog: Catalog, targetTime: Int64, format: PromptFormat) -> String {
        userLines(history: history, catalog: catalog, targetTime: targetTime, format: format).joined(separator: "\n")
    }

    /// The index of the first history item a prompt of `format` shows for a history of `count` items.
    public static func shownStart(count: Int, format: PromptFormat) -> Int {
        switch format {
        case .targetRelative: return max(0, count - historyLength)
        case .stablePrefix: return count < historyLength ? 0 : (count - historyLength) / windowStep * windowStep
        }
    }

    /// The user turn's lines: the instruction, then one per shown history item, oldest first (then, stable-prefix, the
    /// time from the last event to `targetTime`).
    public static func userLines(history: UserHistory, catalog: Catalog, targetTime: Int64,
                                 format: PromptFormat) -> [String] {
        var lines = [userInstruction]
        let start = shownStart(count: history.count, format: format)
        let first = start < history.count ? history.timestamps[start] : 0
        for i in start..<history.count {
            let item = catalog[history.items[i]]
            let t = history.timestamps[i]
            let time: String
            switch format {
            case .targetRelative: time = (t > 0 && targetTime > 0 ? elapsed(targetTime - t) : "?") + " ago"
            case .stablePrefix: time = t > 0 && first > 0 ? "+" + elapsed(t - first) : "?"
            }
            lines.append("\(time): [\(displayTitle(item))] (\(number(history.ratings[i])))")
        }
        if format == .stablePrefix {
            let last = history.timestamps.last ?? 0
            lines.append("Next: " + (last > 0 && targetTime > 0 ? elapsed(targetTime - last) + " later" : "?"))
        }
        return lines
    }

    /// The item turn: instruction, title, average rating, number of raters and a description of <= 100 words
    /// (the genres when the item has no description).
    public static func item(_ item: Item, stats: ItemStats) -> String {
        var lines = [itemInstruction, "Title: \(displayTitle(item))"]
        lines.append("Average rating: \(stats.count > 0 ? fixed(Double(stats.meanRating), 1) : "none")")
        lines.append("Raters: \(stats.count)")
        if !item.description.isEmpty {
            lines.append("Description: " + firstWords(item.description, descriptionWords))
        } else if !item.genres.isEmpty {
            lines.append("Genres: " + firstWords(item.genres.joined(separator: ", "), descriptionWords))
        }
        return lines.joined(separator: "\n")
    }

    /// Title dropout's rendering of an item (`title_dropout` of the rec stage): the item prompt without its title
    /// and statistics, i.e. the year (when known) and the description or genres, so the item tower learns to place an
    /// item from what a new item shares with trained ones.
    public static func itemWithoutTitle(_ item: Item) -> String {
        var lines = [itemInstruction]
        if item.year > 0 { lines.append("Year: \(item.year)") }
        if !item.description.isEmpty {
            lines.append("Description: " + firstWords(item.description, descriptionWords))
        } else if !item.genres.isEmpty {
            lines.append("Genres: " + firstWords(item.genres.joined(separator: ", "), descriptionWords))
        }
        return lines.joined(separator: "\n")
    }

    /// "Toy Story (1995)" when the year is known; the id when the item has no title.
    public static func displayTitle(_ item: Item) -> String {
        let t = item.title.isEmpty ? item.id : item.title
        return item.year > 0 ? "\(t) (\(item.year))" : t
    }

    /// Elapsed time, compact: "3d 4.5h" from a day up, "4.5h" from an hour, "12.0min" from a minute, else "30s".
    public static func elapsed(_ seconds: Int64) -> String {
        let s = max(0, seconds)
        if s >= 86_400 { return "\(s / 86_400)d \(fixed(Double(s % 86_400) / 3600, 1))h" }
        if s >= 3600 { return "\(fixed(Double(s) / 3600, 1))h" }
        if s >= 60 { return "\(fixed(Double(s) / 60, 1))min" }
        return "\(s)s"
    }

    /// "4" for whole ratings, "4.5" otherwise.
    static func number(_ r: Float) -> String {
        r == r.rounded() && abs(r) < 1e9 ? String(Int(r)) : fixed(Double(r), 1)
    }

    /// Fixed-point formatting without Foundation's locale-dependent String(format:).
    static func fixed(_ v: Double, _ digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let n = Int64((abs(v) * scale).rounded())
        let whole = n / Int64(scale), frac = n % Int64(scale)
        let fracText = String(frac)
        let sign = v < 0 && n != 0 ? "-" : ""
        return digits == 0 ? "\(sign)\(whole)" :
            "\(sign)\(whole)." + String(repeating: "0", count: digits - fracText.count) + fracText
    }

    static func firstWords(_ text: String, _ n: Int) -> String {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" })
        return words.prefix(n).joined(separator: " ") + (words.count > n ? " ..." : "")
    }
}
