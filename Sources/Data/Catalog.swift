// The item catalogue of a dataset: every item once, at a dense index 0..<count in ascending id order
// (numeric ids compared as numbers, then others as strings), with the text the model's prompts use. A served
// catalogue grows by versions (`updating`): items keep their index, new ones are appended in the order added.

/// One item of the catalogue and its text.
public struct Item: Sendable, Equatable {
    /// The catalogue's own id ("50" on MovieLens, an ASIN on Amazon).
    public var id: String
    public var title: String
    /// Release year or similar; 0 when unknown.
    public var year: Int
    public var genres: [String]
    /// Free text (Amazon descriptions); empty when the dataset has none.
    public var description: String

    public init(id: String, title: String = "", year: Int = 0, genres: [String] = [], description: String = "") {
        self.id = id
        self.title = title
        self.year = year
        self.genres = genres
        self.description = description
    }
}

/// Items at dense indices, with lookup by id.
public struct Catalog: Sendable {
    public let items: [Item]
    private let indexById: [String: Int]

    /// Sorts `items` into the canonical order (see `Catalog.idPrecedes`). Ids must be unique.
    public init(items: [Item]) {
        let sorted = items.sorted { Catalog.idPrecedes($0.id, $1.id) }
        self.items = sorted
        var map = [String: Int](minimumCapacity: sorted.count)
        for (i, item) in sorted.enumerated() {
            precondition(map[item.id] == nil, "duplicate item id \(item.id) in catalogue")
            map[item.id] = i
        }
        self.indexById = map
    }

    private init(ordered: [Item], indexById: [String: Int]) {
        self.items = ordered
        self.indexById = indexById
    }

    public var count: Int { items.count }

    /// The next version of this catalogue: an item whose id is known replaces the item at its index, a new id is
    /// appended (in the order given; an id given twice counts once, the later text winning). Returns the indices
    /// added and changed (ascending); an item whose text is unchanged is in neither.
    public func updating(with changes: [Item]) -> (catalog: Catalog, added: [Int], changed: [Int]) {
        var list = items
        var map = indexById
        var added: [Int] = [], changed = Set<Int>()
        for item in changes {
            if let i = map[item.id] {
                if list[i] != item { list[i] = item; if i < items.count { changed.insert(i) } }
            } else {
                map[item.id] = list.count
                added.append(list.count)
                list.append(item)
            }
        }
        return (Catalog(ordered: list, indexById: map), added, changed.sorted())
    }

    public subscript(index: Int) -> Item { items[index] }

    /// The dense index of an item id, or nil when the id is not in the catalogue.
    public func index(of id: String) -> Int? { indexById[id] }

    /// Canonical id order: ids that are whole numbers first, compared as numbers; then the rest as strings.
    public static func idPrecedes(_ a: String, _ b: String) -> Bool {
        switch (Int(a), Int(b)) {
        case let (x?, y?): return x != y ? x < y : a < b
        case (.some, nil): return true
        case (nil, .some): return false
        case (nil, nil): return a < b
        }
    }
}
