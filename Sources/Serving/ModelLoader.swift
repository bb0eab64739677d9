// Turns a model spec into a ServedModel over a dataset: "popularity", "wals" or "bpr" train a classic baseline on
// every interaction of the dataset at load time (about a second on ml-100k); a directory is a dual-head checkpoint,
// read by the checkpoint loader the program installs (training owns that format); its errors become statuses
// naming the path (RESOURCE_EXHAUSTED when the model would not fit the memory budget). The user histories and item
// statistics served beside the model come from the same dataset.
import Data
import Eval
import Foundation
import Model

/// A dual-head checkpoint read from disk: the model and its top-N calibrator, if it has one.
public typealias CheckpointLoader = @Sendable (_ directory: String, _ dataset: Dataset) throws -> (Recommender, ProbabilityCalibrator?)

extension TopNCalibrator: ProbabilityCalibrator {
    public func probability(score: Float, rank: Int) -> Float? {
        (probability(score: score, rank: rank) as Double?).map { Float($0) }
    }
}

public struct ModelLoader: Sendable {
    public static let baselineKinds = ["popularity", "wals", "bpr"]
    public let dataset: Dataset
    public let checkpoints: CheckpointLoader?
    /// The store's catalogue version `dataset` was read at (0 without a store).
    public let catalogVersion: UInt64
    /// Whether the served model keeps the dataset's user histories (for user_id requests without a store). With a
    /// store the live loop reads them, and no second copy is kept that DeleteUser would have to find.
    public let keepsUserHistories: Bool

    public init(dataset: Dataset, checkpoints: CheckpointLoader? = nil, catalogVersion: UInt64 = 0,
                keepsUserHistories: Bool = true) {
        self.dataset = dataset
        self.checkpoints = checkpoints
        self.catalogVersion = catalogVersion
        self.keepsUserHistories = keepsUserHistories
    }

    /// The default name of a spec: the baseline's kind, or the checkpoint directory's last component.
    public static func name(of spec: String) -> String {
        spec == "pop" ? "popularity" : URL(fileURLWithPath: spec).lastPathComponent
    }

    /// Loads `spec` under `name` (default: `ModelLoader.name(of:)`); the registry gives it a version when it is
    /// installed.
    public func load(spec: String, name: String? = nil) throws -> ServedModel {
        let recommender: Recommender
        var calibrator: ProbabilityCalibrator?
        switch spec {
        case "popularity", "pop":
            recommender = Popularity(training: dataset.interactions, catalog: dataset.catalog)
        case "wals":
            recommender = try WALS.train(dataset.interactions, catalog: dataset.catalog, numUsers: dataset.numUsers,
                                         config: WALSConfig())
        case "bpr":
            recommender = try BPR.train(dataset.interactions, catalog: dataset.catalog, numUsers: dataset.numUsers,
                                        config: BPRConfig())
        default:
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: spec, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ServingError(.invalidArgument,
                    "model '\(spec)': not one of \(Self.baselineKinds.joined(separator: ", ")) and not a checkpoint directory",
                    field: "path")
            }
            guard let checkpoints else {
                throw ServingError(.failedPrecondition, "model '\(spec)': this server cannot read checkpoints", field: "path")
            }
            do {
                (recommender, calibrator) = try checkpoints(spec, dataset)
            } catch CheckpointError.overBudget(let m) {
                // Nothing was allocated: the server keeps serving what it had.
                throw ServingError(.resourceExhausted, "path: model '\(spec)' refused before allocating: \(m)", field: "path")
            } catch let e as CheckpointError {
                throw ServingError(.invalidArgument, "path: model '\(spec)': \(e)", field: "path")
            }
        }
        var histories: [String: UserHistory] = [:]
        if keepsUserHistories {
            let sequences = dataset.sequences()
            for (u, id) in dataset.userIds.enumerated() where !sequences[u].items.isEmpty { histories[id] = sequences[u] }
        }
        let stats = dataset.itemStats()
        // WALS and BPR fold an empty history into nothing: a user without events gets the items by popularity.
        let coldStart = ["wals", "bpr"].contains(recommender.kind) ? stats.map { Float($0.count) } : nil
        return ServedModel(name: name ?? Self.name(of: spec), spec: spec, recommender: recommender,
                           datasetName: dataset.name, userHistories: histories, itemStats: stats,
                           calibrator: calibrator, catalogVersion: catalogVersion, coldStart: coldStart)
    }
}
