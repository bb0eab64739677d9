// The model's prompts (R2EC.md): the user prompt lists the last 20 history items as `{dt} ago: [{title}] ({rating})`
// with dt measured back from the target's time; the item prompt gives title, average rating, raters and up to 100
// words of description or genres. Short instructions: the model is small and trained from scratch.

public enum Prompts {
    /// The text that ends the reasoning and whose last token the recommendation head reads.
    public static let answerTag = "<answer>"
    public static let answerCloseTag = "</answer>"
    /// History lines in a user prompt (the most recent ones).
    public static let historyLength = 20
    /// Words of description (or genres) in an item prompt.
    public static let descriptionWords = 100

    public static let userInstruction = "Analyse the history, then name the next item inside <answer></answer>."
    public static let itemInstruction = "Summarise the item."

    /// The user turn: instruction, then one line per history item, oldest first.
    public static func user(history: UserHistory, catalog: Catalog, targetTime: Int64) -> String {
        var lines = [userInstruction]
        let start = max(0, history.count - historyLength)
        for i in start..<history.count {
            let item = catalog[history.items[i]]
            let dt = history.timestamps[i] > 0 && targetTime > 0 ? elapsed(targetTime - history.timestamps[i]) : "?"
            lines.append("\(dt) ago: [\(displayTitle(item))] (\(number(history.ratings[i])))")
        }
        return lines.joined(separator: "\n")
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
