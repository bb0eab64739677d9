// SearchItems: the catalogue filtered by its facts (title substring, genres, year range, metadata keys), most-rated
// first. A linear pass over the served model's catalogue on a worker thread: a million items take tens of
// milliseconds, and the catalogue changes with every UpsertItems, so no index has to be kept in step with it.
import Data
import Foundation

public struct MetadataFilter: Sendable, Equatable {
    public var key: String
    /// A JSON string compared as text; other JSON values by their JSON text ("1990", "true", "null").
    public var value: String
    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}

public struct ItemSearchQuery: Sendable, Equatable {
    /// Case-insensitive substring of the title; empty: any title.
    public var query = ""
    public var genres: [String] = []
    /// Inclusive bounds; 0: unbounded.
    public var minYear = 0
    public var maxYear = 0
    public var metadata: [MetadataFilter] = []
    /// 0: `ItemSearch.defaultLimit`.
    public var limit = 0
    public var offset = 0
    public var model = ""
    public init() {}
}

public struct ItemSearchResult: Sendable, Equatable {
    public var items: [ItemInfo]
    /// Matches before offset and limit.
    public var totalMatches: Int
    public init(items: [ItemInfo], totalMatches: Int) { self.items = items; self.totalMatches = totalMatches }
}

public enum ItemSearch {
    public static let defaultLimit = 20
    public static let maxLimit = 1000
    /// Genres and metadata filters per request.
    public static let maxFilters = 16
    /// Bytes of the query and of each genre, key and value.
    public static let maxTextBytes = 256

    /// The matches of `q` in `model`'s catalogue. `stored` gives an item's stored facts (metadata, creation time)
    /// when a store backs the server; without one every item's metadata is "{}".
    public static func search(_ q: ItemSearchQuery, model: ServedModel,
                              stored: (String) -> CatalogItem? = { _ in nil }) throws -> ItemSearchResult {
        try check(q)
        let needle = q.query.lowercased()
        let genres = q.genres.map { $0.lowercased() }
        var matches: [Int] = []
        for i in 0..<model.catalog.count {
            let item = model.catalog[i]
            if !needle.isEmpty, !item.title.lowercased().contains(needle) { continue }
            if !genres.isEmpty {
                let own = Set(item.genres.map { $0.lowercased() })
                if !genres.allSatisfy(own.contains) { continue }
            }
            if q.minYear != 0, item.year == 0 || item.year < q.minYear { continue }
            if q.maxYear != 0, item.year == 0 || item.year > q.maxYear { continue }
            if !q.metadata.isEmpty {
                guard let json = stored(item.id)?.metadataJSON, metadata(json, matches: q.metadata) else { continue }
            }
            matches.append(i)
        }
        guard q.offset <= matches.count else {
            throw ServingError.invalid("offset", "\(q.offset) is past the \(matches.count) matches")
        }
        let limit = q.limit == 0 ? defaultLimit : q.limit
        // Most-rated first; the catalogue is in ascending id order, so a stable sort keeps ids ascending in ties.
        let page = matches.enumerated()
            .sorted { a, b in
                let (ca, cb) = (model.itemStats[a.element].count, model.itemStats[b.element].count)
                return ca != cb ? ca > cb : a.offset < b.offset
            }
            .dropFirst(q.offset).prefix(limit)
        let items = page.map { _, i in model.itemInfo(at: i, stored: stored(model.catalog[i].id)) }
        return ItemSearchResult(items: items, totalMatches: matches.count)
    }

    static func check(_ q: ItemSearchQuery) throws {
        guard q.limit <= maxLimit else { throw ServingError.invalid("limit", "\(q.limit) is out of range 0...\(maxLimit)") }
        guard q.genres.count <= maxFilters else {
            throw ServingError.invalid("genres", "\(q.genres.count) genres exceed the limit of \(maxFilters)")
        }
        guard q.metadata.count <= maxFilters else {
            throw ServingError.invalid("metadata", "\(q.metadata.count) filters exceed the limit of \(maxFilters)")
        }
        guard q.query.utf8.count <= maxTextBytes else {
            throw ServingError.invalid("query", "\(q.query.utf8.count) bytes exceed the limit of \(maxTextBytes)")
        }
        for (i, g) in q.genres.enumerated() where g.isEmpty || g.utf8.count > maxTextBytes {
            throw ServingError.invalid("genres[\(i)]", g.isEmpty ? "empty" : "longer than \(maxTextBytes) bytes")
        }
        for (i, f) in q.metadata.enumerated() {
            guard !f.key.isEmpty else { throw ServingError.invalid("metadata[\(i)].key", "empty") }
            guard f.key.utf8.count <= maxTextBytes, f.value.utf8.count <= maxTextBytes else {
                throw ServingError.invalid("metadata[\(i)]", "key or value longer than \(maxTextBytes) bytes")
            }
        }
        if q.minYear != 0, q.maxYear != 0, q.minYear > q.maxYear {
            throw ServingError.invalid("min_year", "\(q.minYear) is after max_year \(q.maxYear)")
        }
    }

    /// Whether the JSON object `json` satisfies every filter.
    static func metadata(_ json: String, matches filters: [MetadataFilter]) -> Bool {
        guard json != "{}", let object = try? JSONDecoder().decode([String: Scalar].self, from: Data(json.utf8))
        else { return false }
        return filters.allSatisfy { f in object[f.key]?.text == f.value }
    }

    /// A top-level metadata value as filters compare it: a string as itself, a number, bool or null by its JSON
    /// text; objects and arrays match no filter.
    struct Scalar: Decodable {
        let text: String?
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { text = "null" }
            else if let s = try? c.decode(String.self) { text = s }
            else if let b = try? c.decode(Bool.self) { text = b ? "true" : "false" }
            else if let i = try? c.decode(Int64.self) { text = String(i) }
            else if let d = try? c.decode(Double.self) { text = String(d) }
            else { text = nil }
        }
    }
}
