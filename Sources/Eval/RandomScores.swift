// The random baseline: every catalogue item gets a seeded uniform score, drawn afresh for each history (the
// generator is seeded by the seed and the history's items, so one history always scores the same). It is the
// chance level a model must clear under full ranking with the history masked: HR@10 about 10 / unmasked items.
import Data

public final class RandomScores: Recommender {
    public let kind = "random"
    public let catalog: Catalog
    public let seed: UInt64
    public let configJSON: String
    public var numParameters: Int { 0 }

    public init(catalog: Catalog, seed: UInt64) {
        self.catalog = catalog
        self.seed = seed
        self.configJSON = "{\"kind\":\"random\",\"seed\":\(seed)}"
    }

    public func scoreAll(_ histories: [UserHistory]) throws -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(histories.count * catalog.count)
        for h in histories {
            var g = SplitMix64(seed: Self.historySeed(seed, h.items))
            for _ in 0..<catalog.count { out.append(g.nextUniform()) }
        }
        return out
    }

    public func similarities(to item: Int) throws -> [Float] {
        throw RecommenderError.unsupported("the random baseline has no item similarity")
    }

    /// FNV-1a over the seed and the history's item indices.
    static func historySeed(_ seed: UInt64, _ items: [Int]) -> UInt64 {
        var h = FNV1a()
        h.word(seed)
        for item in items { h.word(UInt64(bitPattern: Int64(item))) }
        return h.value
    }
}
