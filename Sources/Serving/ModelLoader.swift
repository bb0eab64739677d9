// Turns a model spec into a ServedModel over a dataset: "popularity", "wals" or "bpr" train a classic baseline on
// every interaction of the dataset at load time (about a second on ml-100k); dual-head checkpoints come with the
// Model target. The user histories and item statistics served beside the model come from the same dataset.
import Data
import Eval
import Foundation

public enum ModelLoader {
    public static let baselineKinds = ["popularity", "wals", "bpr"]

    /// Loads `spec` under `name` (default: the spec's last path component), with the given version.
    public static func load(spec: String, name: String? = nil, dataset: Dataset, version: UInt64 = 1) throws -> ServedModel {
        let recommender: Recommender
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
            throw ServingError(.invalidArgument,
                               "model '\(spec)': not one of \(baselineKinds.joined(separator: ", ")) and not a checkpoint directory",
                               field: "path")
        }
        let sequences = dataset.sequences()
        var histories: [String: UserHistory] = [:]
        for (u, id) in dataset.userIds.enumerated() where !sequences[u].items.isEmpty { histories[id] = sequences[u] }
        return ServedModel(name: name ?? (spec == "pop" ? "popularity" : URL(fileURLWithPath: spec).lastPathComponent),
                           recommender: recommender, datasetName: dataset.name, userHistories: histories,
                           itemStats: dataset.itemStats(), version: version)
    }
}
