// A dataset in memory: the catalogue, dense user ids, and every interaction in file order as dense indices.
// Sequences sort each user's interactions by timestamp with a stable sort (file order on ties; docs/evaluation.md).

/// One rating (or implicit event) of a user on an item, as dense indices.
public struct Interaction: Sendable, Equatable {
    public var user: Int
    public var item: Int
    /// Explicit rating; 0 when the dataset has none.
    public var rating: Float
    /// Unix seconds; 0 when the dataset has none.
    public var timestamp: Int64

    public init(user: Int, item: Int, rating: Float = 0, timestamp: Int64 = 0) {
        self.user = user
        self.item = item
        self.rating = rating
        self.timestamp = timestamp
    }
}

/// How often an item was rated and its mean rating (0 when it has no ratings).
public struct ItemStats: Sendable, Equatable {
    public var count: Int
    public var meanRating: Float
    public init(count: Int, meanRating: Float) { self.count = count; self.meanRating = meanRating }
}

public struct Dataset: Sendable {
    public var name: String
    public var catalog: Catalog
    /// Dense user index -> id, in ascending id order (numeric ids as numbers, as `Catalog.idPrecedes`).
    public var userIds: [String]
    /// Every interaction, in file order.
    public var interactions: [Interaction]

    public init(name: String, catalog: Catalog, userIds: [String], interactions: [Interaction]) {
        self.name = name
        self.catalog = catalog
        self.userIds = userIds
        self.interactions = interactions
    }

    public var numUsers: Int { userIds.count }

    public func userIndex(of id: String) -> Int? {
        // Binary search in the canonical order; userIds is sorted by construction.
        var lo = 0, hi = userIds.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if userIds[mid] == id { return mid }
            if Catalog.idPrecedes(userIds[mid], id) { lo = mid + 1 } else { hi = mid }
        }
        return nil
    }

    /// Each user's interactions oldest first (index = user index); ties in time keep file order.
    public func sequences() -> [UserHistory] {
        Dataset.sequences(of: interactions, numUsers: numUsers)
    }

    /// Per-user time-ordered histories of any interaction list (stable on equal timestamps).
    public static func sequences(of interactions: [Interaction], numUsers: Int) -> [UserHistory] {
        var rows = [[Int]](repeating: [], count: numUsers)
        for (i, x) in interactions.enumerated() { rows[x.user].append(i) }
        return rows.map { row in
            // Sorting (timestamp, file position) pairs is a stable sort by timestamp.
            let order = row.sorted { a, b in
                let ta = interactions[a].timestamp, tb = interactions[b].timestamp
                return ta != tb ? ta < tb : a < b
            }
            return UserHistory(items: order.map { interactions[$0].item },
                               timestamps: order.map { interactions[$0].timestamp },
                               ratings: order.map { interactions[$0].rating })
        }
    }

    /// Count and mean rating per item over `interactions` (all of the dataset's by default). Prompts at
    /// evaluation time should use the training interactions only, so that held-out ratings do not leak.
    public func itemStats(from interactions: [Interaction]? = nil) -> [ItemStats] {
        var count = [Int](repeating: 0, count: catalog.count)
        var sum = [Double](repeating: 0, count: catalog.count)
        for x in interactions ?? self.interactions {
            count[x.item] += 1
            sum[x.item] += Double(x.rating)
        }
        return (0..<catalog.count).map {
            ItemStats(count: count[$0], meanRating: count[$0] > 0 ? Float(sum[$0] / Double(count[$0])) : 0)
        }
    }

    /// FNV-1a 64 over the catalogue ids, user ids and every interaction (ids, rating bits, timestamp), in order:
    /// equal exactly when the loaded content is equal. 16 hex digits.
    public var fingerprint: String {
        var h = FNV1a()
        func word(_ v: UInt64) { h.word(v) }
        func text(_ s: String) { h.bytes(s.utf8); h.mix(0) }
        word(UInt64(catalog.count))
        for item in catalog.items { text(item.id) }
        word(UInt64(userIds.count))
        for u in userIds { text(u) }
        word(UInt64(interactions.count))
        for x in interactions {
            word(UInt64(x.user)); word(UInt64(x.item))
            word(UInt64(x.rating.bitPattern)); word(UInt64(bitPattern: x.timestamp))
        }
        return h.hex16
    }
}

/// Receives a dataset row by row as a reader produces it (`DatasetLoader.stream`): item texts and interactions in
/// file order. An item's text may come before or after the interactions that name it (Amazon's metadata file is read
/// after its reviews), and an interaction may name an item that never gets a text: it joins the catalogue with its
/// id alone. An item whose id comes twice keeps the later text.
public protocol DatasetSink {
    mutating func item(_ item: Item) throws
    mutating func interaction(user: String, item: String, rating: Float, timestamp: Int64) throws
}

/// Builds a `Dataset` from rows keyed by the files' own ids.
public struct DatasetBuilder: DatasetSink {
    struct Row { var user: String; var item: String; var rating: Float; var timestamp: Int64 }
    var rows: [Row] = []
    /// Items with text, by id.
    var items: [String: Item] = [:]

    public init() {}

    public mutating func item(_ item: Item) { items[item.id] = item }

    public mutating func interaction(user: String, item: String, rating: Float, timestamp: Int64) {
        rows.append(Row(user: user, item: item, rating: rating, timestamp: timestamp))
    }

    /// The dataset of every item given (with or without interactions) and every interaction, in the order given.
    public func build(name: String) -> Dataset {
        var itemList = Array(items.values)
        var seen = Set(items.keys)
        var users = Set<String>()
        for r in rows {
            users.insert(r.user)
            if seen.insert(r.item).inserted { itemList.append(Item(id: r.item)) }
        }
        let catalog = Catalog(items: itemList)
        let userIds = users.sorted(by: Catalog.idPrecedes)
        var userIndex = [String: Int](minimumCapacity: userIds.count)
        for (i, u) in userIds.enumerated() { userIndex[u] = i }
        let interactions = rows.map {
            Interaction(user: userIndex[$0.user]!, item: catalog.index(of: $0.item)!, rating: $0.rating,
                        timestamp: $0.timestamp)
        }
        return Dataset(name: name, catalog: catalog, userIds: userIds, interactions: interactions)
    }
}
