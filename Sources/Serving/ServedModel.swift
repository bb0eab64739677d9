// A model loaded for serving: the Recommender plus what answering needs beside it (known users' histories,
// item statistics, an optional top-N calibrator), under a name and a version that hot reloads bump.
import Data
import Model

/// Maps a score at a rank to a calibrated probability. The rank is the item's place among everything the request
/// could have recommended (1 + the number of unmasked items scoring strictly higher: see `RequestProbabilities`);
/// probabilities must not fall as scores rise within one request, and exist only for ranks 1...ranks.
public protocol ProbabilityCalibrator: Sendable {
    /// Ranks 1...ranks get a probability (ModelInfo.calibrated_ranks).
    var ranks: Int { get }
    /// nil beyond `ranks`.
    func probability(score: Float, rank: Int) -> Float?
}

public final class ServedModel: @unchecked Sendable {
    public let name: String
    /// What it was loaded from (`r2ec serve --model`, Admin/LoadModel): reloads read it again.
    public let spec: String
    public let recommender: Recommender
    public let datasetName: String
    /// Histories of the users the model was trained on, by user id, oldest first.
    public let userHistories: [String: UserHistory]
    /// Per catalogue index: number of ratings and their mean in the training data.
    public let itemStats: [ItemStats]
    public let calibrator: ProbabilityCalibrator?
    /// Given by the registry when the model is installed (ModelRegistry.install: one above the name's last
    /// version), kept by a catalogue-version replacement (ModelRegistry.replace).
    public internal(set) var version: UInt64
    /// The store's catalogue version this model's catalogue is at (0 without a store).
    public let catalogVersion: UInt64
    /// Scores for a user with no events, when the model's own answer to an empty history means nothing (WALS and
    /// BPR fold an empty history into a zero vector): the items' interaction counts in the model's training data.
    /// nil: the model answers an empty history itself (the dual-head network reads an empty prompt; popularity).
    public let coldStart: [Float]?

    public init(name: String, spec: String = "", recommender: Recommender, datasetName: String, userHistories: [String: UserHistory],
                itemStats: [ItemStats], calibrator: ProbabilityCalibrator? = nil, version: UInt64 = 0,
                catalogVersion: UInt64 = 0, coldStart: [Float]? = nil) {
        precondition(itemStats.count == recommender.catalog.count, "item statistics must cover the catalogue")
        precondition(coldStart.map { $0.count == recommender.catalog.count } ?? true, "cold-start scores must cover the catalogue")
        self.name = name
        self.spec = spec
        self.recommender = recommender
        self.datasetName = datasetName
        self.userHistories = userHistories
        self.itemStats = itemStats
        self.calibrator = calibrator
        self.version = version
        self.catalogVersion = catalogVersion
        self.coldStart = coldStart
    }

    public var catalog: Catalog { recommender.catalog }

    /// The dual-head network, when this model is one (its LM head writes reasoning chains).
    public var dualHead: DualHeadModel? { recommender as? DualHeadModel }
    public var supportsReasoning: Bool { dualHead != nil }

    public var facts: ModelFacts {
        ModelFacts(name: name, kind: recommender.kind, dataset: datasetName, numItems: catalog.count,
                   numUsers: userHistories.count, supportsReasoning: supportsReasoning,
                   calibrated: calibrator != nil, calibratedRanks: calibrator?.ranks ?? 0,
                   numParameters: recommender.numParameters, configJSON: recommender.configJSON, version: version,
                   numRecommendableItems: recommender.recommendableItems)
    }
}
