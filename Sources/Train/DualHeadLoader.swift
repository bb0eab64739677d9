// Loads a trained dual-head checkpoint directory as a servable DualHeadModel: weights, tokenizer, the training
// metadata (r2ec_train.json: tau, split, calibrator) and the item table (reused from item_table.safetensors when the
// weights and item prompts match, rebuilt and cached otherwise). Item prompts use the stats of the split's training
// interactions, exactly as training built them.
import Data
import Eval
import Foundation
import Model
import Tensor

/// What training records beside the weights.
public struct TrainedModelInfo: Codable, Sendable {
    public var tau: Float
    public var split: String
    public var datasetFingerprint: String
    /// Top-N calibrator fitted on validation (nil when calibration was off).
    public var calibrator: TopNCalibrator?
    public var validation: [String: Double]
    public var test: [String: Double]
    /// Test metrics of the reasoning path (greedy chains), when trained with RecPO.
    public var testReasoning: [String: Double]?
    public var trainSeconds: Double
    public var config: String

    public static let fileName = "r2ec_train.json"

    enum CodingKeys: String, CodingKey {
        case tau, split, calibrator, validation, test, config
        case testReasoning = "test_reasoning"
        case datasetFingerprint = "dataset_fingerprint", trainSeconds = "train_seconds"
    }

    public init(tau: Float, split: String, datasetFingerprint: String, calibrator: TopNCalibrator?,
                validation: [String: Double], test: [String: Double], testReasoning: [String: Double]? = nil,
                trainSeconds: Double, config: String) {
        self.tau = tau; self.split = split; self.datasetFingerprint = datasetFingerprint; self.calibrator = calibrator
        self.validation = validation; self.test = test; self.testReasoning = testReasoning
        self.trainSeconds = trainSeconds; self.config = config
    }

    public static func load(directory: String) -> TrainedModelInfo? {
        guard let data = FileManager.default.contents(atPath: directory + "/" + fileName) else { return nil }
        return try? JSONDecoder().decode(TrainedModelInfo.self, from: data)
    }

    public func save(directory: String) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try e.encode(self).write(to: URL(fileURLWithPath: directory + "/" + Self.fileName))
    }
}

public enum DualHeadLoader {
    /// The dual-head model of checkpoint `directory` over `dataset` (the one it was trained on). `tau` overrides the
    /// checkpoint's (training passes its own while r2ec_train.json is not written yet). `precision` bfloat16 packs the
    /// projections and the item table in bfloat16 (the caller checks `precision.isSupported`); its item table is
    /// rebuilt by the bfloat16 network and not cached, so the float32 cache beside the checkpoint stays as it was.
    public static func load(directory: String, dataset: Dataset, tau: Float? = nil, progress: Bool = false,
                            precision: PackedMatrix.Precision = .float32) throws -> DualHeadModel {
        // A checkpoint on disk never changes under the model: its projections are packed for inference.
        let model = try Checkpoint.loadModel(directory: directory).packedForInference(precision: precision)
        let tokenizer = try Checkpoint.loadTokenizer(directory: directory)
        let info = TrainedModelInfo.load(directory: directory)
        let kind = Splits.Kind(rawValue: info?.split ?? "loo") ?? .loo
        let split = Splits.make(kind, dataset)
        let stats = dataset.itemStats(from: split.train)
        let prompts = (0..<dataset.catalog.count).map { Prompts.item(dataset.catalog[$0], stats: stats[$0]) }
        return try DualHeadModel(model: model, tokenizer: tokenizer, catalog: dataset.catalog, itemPrompts: prompts,
                                 tau: tau ?? info?.tau ?? 0.02,
                                 cachePath: precision == .float32 ? directory + "/" + ItemTable.fileName : nil,
                                 progress: progress)
    }

    /// The top-N calibrator stored with the checkpoint, if any.
    public static func calibrator(directory: String) -> TopNCalibrator? {
        TrainedModelInfo.load(directory: directory)?.calibrator
    }
}
