// A short rationale derived from a user's history (issue 16 part 3): what the reasoning path is taught to write
// before `<answer>` when the network has no teacher to distil from. Built only from the history lines the user
// prompt shows (the last `Prompts.historyLength`), quoting titles exactly as the prompt quotes them:
//   Recent: [A (1997)], [B (1996)]. Liked: [C (1995)]. Genres: Drama, Comedy, Thriller.
// - Recent: the last `recent` items, most recent first.
// - Liked: the highest-rated shown item not already quoted (the most recent one on ties); omitted when none is left.
// - Genres: the genres at least two shown items share, most frequent first (ties: the one seen most recently
//   first, then alphabetical), at most `genres`; when no genre is shared, the most recent item's first genre; omitted when the items
//   have none.

public enum Rationale {
    public static func text(history: UserHistory, catalog: Catalog, recent: Int = 2, genres: Int = 3) -> String {
        let start = max(0, history.count - Prompts.historyLength)
        let shown = Array(start..<history.count)
        guard !shown.isEmpty else { return "" }
        var parts: [String] = []
        let recentLines = Array(shown.reversed().prefix(max(0, recent)))
        if !recentLines.isEmpty {
            parts.append("Recent: " + recentLines.map { "[\(Prompts.displayTitle(catalog[history.items[$0]]))]" }
                .joined(separator: ", ") + ".")
        }
        let quoted = Set(recentLines.map { history.items[$0] })
        var liked: Int?
        for i in shown.reversed() where !quoted.contains(history.items[i]) {
            if liked == nil || history.ratings[i] > history.ratings[liked!] { liked = i }
        }
        if let liked { parts.append("Liked: [\(Prompts.displayTitle(catalog[history.items[liked]]))].") }
        // Genre counts over the shown items, with the position of each genre's most recent appearance.
        var count: [String: Int] = [:], lastSeen: [String: Int] = [:]
        for i in shown {
            for g in Set(catalog[history.items[i]].genres) { count[g, default: 0] += 1; lastSeen[g] = i }
        }
        var shared = count.keys.filter { count[$0]! >= 2 }
            .sorted { (count[$0]!, lastSeen[$0]!, $1) > (count[$1]!, lastSeen[$1]!, $0) }
        if shared.isEmpty, let g = catalog[history.items[shown.last!]].genres.first { shared = [g] }
        if !shared.isEmpty { parts.append("Genres: " + shared.prefix(max(1, genres)).joined(separator: ", ") + ".") }
        return parts.joined(separator: " ")
    }
}
