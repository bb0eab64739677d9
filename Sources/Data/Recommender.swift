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
}
