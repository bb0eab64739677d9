// The model interface every servable and evaluable model implements: popularity, WALS, BPR and the dual-head network.

/// A user's past interactions, oldest first, as catalogue indices.
public struct UserHistory: Sendable, Equatable {
    public var items: [Int]
    /// Unix seconds per item; 0 when unknown.
    public var timestamps: [Int64]
    /// Explicit rating per item; 0 when unknown.
    public var ratings: [Float]

    public init(items: [Int], timestamps: [Int64]? = nil, ratings: [Float]? = nil) {
        self.items = items
        self.timestamps = timestamps ?? Array(repeating: 0, count: items.count)
        self.ratings = ratings ?? Array(repeating: 0, count: items.count)
        precondition(self.timestamps.count == items.count && self.ratings.count == items.count)
    }

    public var count: Int { items.count }
}

/// Errors a model raises for one query; the server maps them to statuses.
public enum RecommenderError: Error, Equatable, CustomStringConvertible {
    /// The query is unusable as given (the message names the field).
    case invalidQuery(String)
    /// The model cannot do what was asked (e.g. reasoning on a model without an LM head).
    case unsupported(String)

    public var description: String {
        switch self {
        case .invalidQuery(let m): return m
        case .unsupported(let m): return m
        }
    }
}

/// A model that scores the whole catalogue for a user history. Implementations must be safe to call from
/// several threads at once (the serving core calls them from its workers).
public protocol Recommender: AnyObject, Sendable {
    /// "popularity", "wals", "bpr" or "dual-head".
    var kind: String { get }
    var catalog: Catalog { get }
    /// Configuration and training facts, shown by ModelInfo (a JSON object).
    var configJSON: String { get }
    var numParameters: Int { get }

    /// Scores of every catalogue item for each history, row-major: result[q * catalog.count + item].
    /// Higher is better. Batched so that models can turn a batch into one GEMM.
    func scoreAll(_ histories: [UserHistory]) throws -> [Float]

    /// Similarity of every catalogue item to `item` (the item itself included; callers exclude it).
    func similarities(to item: Int) throws -> [Float]

    /// This model over the next version of its catalogue (`Catalog.updating`: every index kept, `added` appended,
    /// `changed` re-described), given every item's statistics. A model that reads an item from its text (the
    /// dual-head network) encodes the added and changed items; the default keeps the model's vectors and gives added
    /// items no score (NaN: never recommended, `FrozenItems`) until the model is fitted again.
    func updatingCatalog(_ catalog: Catalog, added: [Int], changed: [Int], itemStats: [ItemStats]) throws -> Recommender

    /// How many of the catalogue's items the model can score.
    var recommendableItems: Int { get }
}

extension Recommender {
    public func updatingCatalog(_ catalog: Catalog, added: [Int], changed: [Int], itemStats: [ItemStats]) throws -> Recommender {
        FrozenItems(base: self, catalog: catalog)
    }

    public var recommendableItems: Int { catalog.count }
}

/// A model fitted on the first `base.catalog.count` items of a catalogue that has grown since: it scores those (a
/// re-described item keeps its fitted vector) and gives every later item NaN, which ranking never returns, until a
/// refit. What popularity, WALS and BPR can honestly do for an item nobody has interacted with in their data.
public final class FrozenItems: Recommender, @unchecked Sendable {
    public let base: Recommender
    public let catalog: Catalog

    public init(base: Recommender, catalog: Catalog) {
        precondition(catalog.count >= base.catalog.count, "a catalogue version never loses items")
        self.base = (base as? FrozenItems)?.base ?? base
        self.catalog = catalog
    }

    public var kind: String { base.kind }
    public var configJSON: String { base.configJSON }
    public var numParameters: Int { base.numParameters }
    public var recommendableItems: Int { base.catalog.count }

    public func scoreAll(_ histories: [UserHistory]) throws -> [Float] {
        let fitted = base.catalog.count, n = catalog.count
        // Items the base never saw leave the history: it has nothing to fold them in with.
        let known = histories.map { h -> UserHistory in
            let keep = h.items.indices.filter { h.items[$0] < fitted }
            return UserHistory(items: keep.map { h.items[$0] }, timestamps: keep.map { h.timestamps[$0] },
                               ratings: keep.map { h.ratings[$0] })
        }
        let scores = try base.scoreAll(known)
        var out = [Float](repeating: .nan, count: histories.count * n)
        for q in histories.indices {
            for i in 0..<fitted { out[q * n + i] = scores[q * fitted + i] }
        }
        return out
    }

    public func similarities(to item: Int) throws -> [Float] {
        guard item < base.catalog.count else {
            throw RecommenderError.unsupported(
                "item '\(catalog[item].id)' was added after this \(kind) model was fitted: it has no vector until a refit (reload the model)")
        }
        return try base.similarities(to: item) + [Float](repeating: .nan, count: catalog.count - base.catalog.count)
    }
}
