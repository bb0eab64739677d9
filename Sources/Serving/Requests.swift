// The serving core's requests and answers, independent of the wire: the RPC layer decodes protobuf into these
// and encodes the answers back. Item ids are the catalogue's own ids, as on the wire.

/// Bounds on what one request may ask for; each has a documented default, a field-naming INVALID_ARGUMENT when
/// exceeded, and a limit-hit metric.
public struct RequestLimits: Sendable, Equatable {
    /// History events per request.
    public var maxHistoryEvents = 1000
    /// Items per answer (top_k).
    public var maxTopK = 10_000
    /// Item ids per list (exclude, candidates, ScoreItems, GetItems).
    public var maxItemIds = 10_000
    /// Requests per RecommendBatch call.
    public var maxBatchRequests = 1024
    public init() {}

    func check(_ count: Int, _ max: Int, field: String, limit: String) throws {
        guard count <= max else {
            throw ServingError(.invalidArgument, "\(field): \(count) exceeds the server's limit of \(max)", field: field,
                               limit: limit)
        }
    }
}

/// One past interaction as a client sends it.
public struct HistoryEvent: Sendable, Equatable {
    public var itemId: String
    /// Unix seconds; 0 when unknown.
    public var timestamp: Int64
    /// Explicit rating; 0 when unknown.
    public var rating: Float

    public init(itemId: String, timestamp: Int64 = 0, rating: Float = 0) {
        self.itemId = itemId
        self.timestamp = timestamp
        self.rating = rating
    }
}

public enum RecommendMode: Sendable, Equatable {
    case direct
    case reasoning
}

/// Sampling asked for by a reasoning request (0s mean the defaults: greedy, no top-k, no top-p).
public struct SamplingOptions: Sendable, Equatable {
    /// 0 = greedy.
    public var temperature: Float = 0
    public var topK: Int = 0
    public var topP: Float = 0
    public var seed: UInt64 = 0
    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 0, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }
}

/// What a user history is, before it is resolved against a model's catalogue.
public struct HistorySpec: Sendable, Equatable {
    public var userId: String = ""
    public var events: [HistoryEvent] = []
    /// The user's latest events from the store (read by the live loop before the request is prepared), oldest
    /// first; empty for a user with none (a cold start). nil without a store: `userId` names a user of the model's
    /// training data.
    public var stored: [HistoryEvent]?
    /// Reference time for prompts (unix seconds); 0 = the latest event's time.
    public var now: Int64 = 0
    public init(userId: String = "", events: [HistoryEvent] = [], now: Int64 = 0) {
        self.userId = userId
        self.events = events
        self.now = now
    }
}

public struct RecommendQuery: Sendable, Equatable {
    public var history = HistorySpec()
    /// 0 = the default (10).
    public var topK: Int = 0
    public var mode: RecommendMode = .direct
    /// 0 = the model's default.
    public var maxReasoningTokens: Int = 0
    public var sampling = SamplingOptions()
    public var exclude: [String] = []
    public var candidates: [String] = []
    public var includeSeen = false
    public var returnReasoning = false
    public var returnProbabilities = false
    /// "" = the default model.
    public var model: String = ""
    /// 1 = most urgent; 0 = the server's default level.
    public var priority: Int = 0
    public init() {}
}

public struct ScoredItemResult: Sendable, Equatable {
    public var itemId: String
    public var title: String
    public var score: Float
    /// Calibrated probability; nil when not asked for, when the model has no calibrator, or when the item's rank
    /// among the request's unmasked items is beyond the calibrator's ranks.
    public var probability: Float?
    /// 1-based.
    public var rank: Int

    public init(itemId: String, title: String, score: Float, probability: Float?, rank: Int) {
        self.itemId = itemId; self.title = title; self.score = score; self.probability = probability; self.rank = rank
    }
}

public struct RecommendResult: Sendable, Equatable {
    public var items: [ScoredItemResult]
    public var reasoning: String = ""
    public var model: String
    public var reasoningTokens: Int = 0
    /// The version of the model that answered (ModelInfo.version).
    public var modelVersion: UInt64 = 0
}

public struct ScoreItemsQuery: Sendable, Equatable {
    public var history = HistorySpec()
    public var itemIds: [String] = []
    public var returnProbabilities = false
    public var model = ""
    public init() {}
}

public struct SimilarItemsQuery: Sendable, Equatable {
    public var itemId = ""
    public var topK = 0
    public var model = ""
    public init() {}
}

/// Catalogue facts of one item, for GetItems.
public struct ItemInfo: Sendable, Equatable {
    public var itemId: String
    public var title: String
    public var year: Int
    public var genres: [String]
    public var description: String
    public var numRatings: Int
    public var meanRating: Float
    /// The JSON object given to UpsertItems ("{}" when none).
    public var metadataJSON: String = "{}"
    /// Unix seconds when the item entered the store's catalogue (0 for imported items, and without a store).
    public var created: Int64 = 0

    public init(itemId: String, title: String, year: Int, genres: [String], description: String, numRatings: Int,
                meanRating: Float, metadataJSON: String = "{}", created: Int64 = 0) {
        self.itemId = itemId; self.title = title; self.year = year; self.genres = genres
        self.description = description; self.numRatings = numRatings; self.meanRating = meanRating
        self.metadataJSON = metadataJSON; self.created = created
    }
}

/// Facts of a loaded model, for ModelInfo.
public struct ModelFacts: Sendable, Equatable {
    public var name: String
    public var kind: String
    public var dataset: String
    public var numItems: Int
    public var numUsers: Int
    public var supportsReasoning: Bool
    public var calibrated: Bool
    /// Probabilities exist for ranks 1...calibratedRanks (0: no calibrator).
    public var calibratedRanks: Int
    public var numParameters: Int
    public var configJSON: String
    public var version: UInt64
    /// Items the model can recommend now (the catalogue, less items added since a model that cannot encode them
    /// was fitted).
    public var numRecommendableItems: Int
}
