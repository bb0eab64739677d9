// Evaluator error rates of recommendation lists (after RecAI's evaluator): a list recommending an item the user
// has already seen, the same item twice, or an item outside the catalogue. They check a model's top-K lists.

public struct ListErrorRates: Sendable, Equatable, Codable {
    /// Lists checked.
    public var lists: Int = 0
    /// Lists with at least one seen (history) item, a repeated item, or an index outside 0..<catalogue size.
    public var withSeen: Int = 0
    public var withDuplicate: Int = 0
    public var withOutOfCatalogue: Int = 0

    public init() {}

    public var seenRate: Double { lists > 0 ? Double(withSeen) / Double(lists) : 0 }
    public var duplicateRate: Double { lists > 0 ? Double(withDuplicate) / Double(lists) : 0 }
    public var outOfCatalogueRate: Double { lists > 0 ? Double(withOutOfCatalogue) / Double(lists) : 0 }

    /// Adds one list: `seen` are the user's history items (sorted or not), `catalogSize` the number of items.
    public mutating func check(_ list: [Int], seen: Set<Int>, catalogSize: Int) {
        lists += 1
        var inList = Set<Int>()
        var s = false, d = false, o = false
        for i in list {
            if i < 0 || i >= catalogSize { o = true }
            if seen.contains(i) { s = true }
            if !inList.insert(i).inserted { d = true }
        }
        if s { withSeen += 1 }
        if d { withDuplicate += 1 }
        if o { withOutOfCatalogue += 1 }
    }

    public static func + (a: ListErrorRates, b: ListErrorRates) -> ListErrorRates {
        var r = a
        r.lists += b.lists; r.withSeen += b.withSeen; r.withDuplicate += b.withDuplicate
        r.withOutOfCatalogue += b.withOutOfCatalogue
        return r
    }
}
