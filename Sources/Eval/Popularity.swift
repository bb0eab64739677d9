// The popularity baseline: every item scores its number of training interactions, whatever the history.
// Ties then fall to the smaller item index (the ranking rule), which is what docs/evaluation.md's .0859 assumes.
import Data

public final class Popularity: Recommender {
    public let kind = "popularity"
    public let catalog: Catalog
    /// Training interaction count per item, as scores.
    public let counts: [Float]
    public let configJSON: String
    public var numParameters: Int { 0 }

    public init(training: [Interaction], catalog: Catalog) {
        var c = [Float](repeating: 0, count: catalog.count)
        for x in training { c[x.item] += 1 }
        self.catalog = catalog
        self.counts = c
        self.configJSON = "{\"kind\":\"popularity\",\"training_interactions\":\(training.count)}"
    }

    public func scoreAll(_ histories: [UserHistory]) throws -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(histories.count * counts.count)
        for _ in histories { out.append(contentsOf: counts) }
        return out
    }

    public func similarities(to item: Int) throws -> [Float] {
        throw RecommenderError.unsupported("the popularity baseline has no item similarity")
    }
}
