// Loads a trained dual-head checkpoint directory as a servable DualHeadModel: weights, tokenizer, the training
// metadata (r2ec_train.json: tau, split, calibrator) and the item table (reused from item_table.safetensors when the
// weights and item prompts match, else from the caller's ItemTableCache directory, else rebuilt: serving and
// evaluation never write into the directory they load). Item prompts use the stats of the split's training interactions, exactly as training
// built them.
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
    /// How the user prompts show a history (nil in checkpoints from before formats were recorded: target-relative).
    public var promptFormat: String?
    /// Why a stored calibrator was not usable (nil when there was none or it was read).
    public var droppedCalibrator: String?

    public static let fileName = "r2ec_train.json"

    enum CodingKeys: String, CodingKey {
        case tau, split, calibrator, validation, test, config
        case promptFormat = "prompt_format"
        case testReasoning = "test_reasoning"
        case datasetFingerprint = "dataset_fingerprint", trainSeconds = "train_seconds"
    }

    public init(tau: Float, split: String, datasetFingerprint: String, calibrator: TopNCalibrator?,
                validation: [String: Double], test: [String: Double], testReasoning: [String: Double]? = nil,
                trainSeconds: Double, config: String, promptFormat: PromptFormat) {
        self.tau = tau; self.split = split; self.datasetFingerprint = datasetFingerprint; self.calibrator = calibrator
        self.validation = validation; self.test = test; self.testReasoning = testReasoning
        self.trainSeconds = trainSeconds; self.config = config; self.promptFormat = promptFormat.rawValue
    }

    /// The metadata of checkpoint `directory`; nil when it has none (a bare Hugging Face checkpoint). A file that
    /// is there but unreadable is an error, never a silent fallback to defaults (a wrong tau would serve wrong
    /// scores). A calibrator this build cannot use (the per-group format of earlier builds, whose probabilities
    /// were not monotone, or one failing its checks) is dropped and `droppedCalibrator` says why.
    public static func load(directory: String) throws -> TrainedModelInfo? {
        guard FileManager.default.fileExists(atPath: directory + "/" + fileName) else { return nil }
        let path = try Checkpoint.file(fileName, in: directory)
        guard let data = FileManager.default.contents(atPath: path) else { throw CheckpointError.missingFile(path) }
        do {
            return try JSONDecoder().decode(TrainedModelInfo.self, from: data)
        } catch {
            throw CheckpointError.invalidConfiguration("\(path): \(error)")
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        tau = try c.decode(Float.self, forKey: .tau)
        guard tau.isFinite && tau > 0 else {
            throw DecodingError.dataCorruptedError(forKey: .tau, in: c, debugDescription: "tau must be > 0, got \(tau)")
        }
        split = try c.decode(String.self, forKey: .split)
        datasetFingerprint = try c.decode(String.self, forKey: .datasetFingerprint)
        do {
            calibrator = try c.decodeIfPresent(TopNCalibrator.self, forKey: .calibrator)
        } catch {
            calibrator = nil
            droppedCalibrator = Self.describe(error)
        }
        validation = try c.decode([String: Double].self, forKey: .validation)
        test = try c.decode([String: Double].self, forKey: .test)
        testReasoning = try c.decodeIfPresent([String: Double].self, forKey: .testReasoning)
        trainSeconds = try c.decode(Double.self, forKey: .trainSeconds)
        config = try c.decode(String.self, forKey: .config)
        promptFormat = try c.decodeIfPresent(String.self, forKey: .promptFormat)
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _):
            return "it lacks \"\(key.stringValue)\" (the per-group format of earlier builds, whose probabilities were not monotone)"
        case DecodingError.dataCorrupted(let context): return context.debugDescription
        default: return "\(error)"
        }
    }

    public func save(directory: String) throws {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        try e.encode(self).write(to: URL(fileURLWithPath: directory + "/" + Self.fileName))
    }
}

public enum DualHeadLoader {
    /// The dual-head model of checkpoint `directory` over `dataset` (the one it was trained on). `tau` overrides the
    /// checkpoint's (training passes its own while r2ec_train.json is not written yet). Nothing is allocated before
    /// config.json has been checked against the weights and the tokenizer, and the model with its item table
    /// against `budget`. The item table is read from item_table.safetensors when it matches the weights and the
    /// item prompts, else rebuilt; a rebuilt table is written there only with `writeItemTable` (training, into its
    /// own output): serving and evaluation never write into the directory they load. `precision` bfloat16 packs the
    /// projections and the item table in bfloat16 (the caller checks `precision.isSupported`); its item table is
    /// rebuilt by the bfloat16 network (never read from the checkpoint). `itemTablePrecision` int8 scores against an int8 copy of the
    /// table (one scale per row) instead of the packed float32 one. `itemTableCache`, a directory the caller owns
    /// (`--item-table-cache`), keeps the tables built here, any precision, and resumes an interrupted build: the
    /// checkpoint's own table is still read first when it matches. `newItemPrior` W > 0 blends the items without a
    /// training interaction toward their genres' trained items (`ContentPrior`), now and in later catalogue updates.
    /// `promptFormat` overrides the recorded one (training, before it writes r2ec_train.json).
    public static func load(directory: String, dataset: Dataset, tau: Float? = nil, promptFormat: PromptFormat? = nil,
                            budget: MemoryBudget = .unlimited,
                            writeItemTable: Bool = false, itemTableCache: ItemTableCache? = nil, progress: Bool = false,
                            precision: PackedMatrix.Precision = .float32,
                            itemTablePrecision: ItemTablePrecision = .float32,
                            newItemPrior: Float = 0) throws -> DualHeadModel {
        precondition((0...1).contains(newItemPrior), "newItemPrior must be in [0, 1]")
        let info = try TrainedModelInfo.load(directory: directory)
        let format: PromptFormat
        do { format = try promptFormat ?? PromptFormat.recorded(info?.promptFormat) } catch {
            throw CheckpointError.invalidConfiguration("\(directory)/\(TrainedModelInfo.fileName): \(error)")
        }
        let configuration = try Checkpoint.loadConfiguration(directory: directory)
        let tokenizer = try Checkpoint.loadTokenizer(directory: directory)
        // Token ids index the embedding: a tokenizer larger than the vocabulary would read past it.
        guard tokenizer.vocabularySize <= configuration.vocabSize else {
            throw CheckpointError.configurationMismatch(field: "vocab_size",
                detail: "it is \(configuration.vocabSize), tokenizer.json has \(tokenizer.vocabularySize) tokens")
        }
        let items = dataset.catalog.count
        var table = MemoryUsage([("item table of \(items) items", MemoryUsage.floats(items, configuration.hiddenSize))])
        // DualHeadModel keeps the table packed for its scoring GEMM too (bfloat16 with a bfloat16 network), or int8.
        let packing: PackedMatrix.Precision = precision == .bfloat16 ? .bfloat16 : .float32
        if itemTablePrecision == .int8 {
            table.add("int8 item table", (items + 31) / 32 * 32 * (configuration.hiddenSize + 4))
        } else if packing.isSupported {
            table.add("\(packing) packed item table", MemoryUsage.packed(items, configuration.hiddenSize, packing))
        }
        // A checkpoint on disk never changes under the model: its projections are packed for inference.
        let model = try Checkpoint.loadModel(directory: directory, budget: budget, packed: precision, alongside: table)
        let kind = Splits.Kind(rawValue: info?.split ?? "loo") ?? .loo
        let split = Splits.make(kind, dataset)
        let stats = dataset.itemStats(from: split.train)
        let prompts = (0..<items).map { Prompts.item(dataset.catalog[$0], stats: stats[$0]) }
        var cachePath = directory + "/" + ItemTable.fileName
        if FileManager.default.fileExists(atPath: cachePath) { cachePath = try Checkpoint.file(ItemTable.fileName, in: directory) }
        let loaded = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: dataset.catalog, itemPrompts: prompts,
                                       tau: tau ?? info?.tau ?? 0.02, cachePath: precision == .float32 ? cachePath : nil,
                                       writeCache: writeItemTable && precision == .float32,
                                       itemTableCache: itemTableCache,
                                       progress: progress, itemTablePrecision: itemTablePrecision,
                                       promptFormat: format)
        // Learned id vectors (item_id_vectors.safetensors), matched by item id: each item that has one scores with
        // unit(text + id); the cached table stays text-only, and items without one (new items) keep the text alone.
        let ids = try ItemIDVectors.load(directory: directory, catalog: dataset.catalog, dimension: configuration.hiddenSize)
        if let ids { ItemIDVectors.apply(ids.values.pointer, ids.has, to: loaded.itemTable.vectors) }
        // New items' content prior: taken from the trained items' final vectors (id vectors included), applied to
        // the items without a training interaction here and to those a catalogue update adds later.
        var prior: ContentPrior?
        if newItemPrior > 0 {
            let trained = stats.map { $0.count > 0 }
            let p = ContentPrior(weight: newItemPrior, table: loaded.itemTable.vectors, catalog: dataset.catalog,
                                 trained: trained)
            p.apply(to: loaded.itemTable.vectors, rows: (0..<items).filter { !trained[$0] }, catalog: dataset.catalog)
            prior = p
        }
        guard ids != nil || prior != nil else { return loaded }
        // The scoring copies (packed, int8) are made from the table at construction: rebuild over the changed rows.
        let rebuilt = DualHeadModel(model: loaded.model, tokenizer: loaded.tokenizer, catalog: loaded.catalog,
                                    itemTable: loaded.itemTable, tau: loaded.tau, itemTablePrecision: itemTablePrecision,
                                    promptFormat: format)
        rebuilt.contentPrior = prior
        return rebuilt
    }

    /// The top-N calibrator of checkpoint `directory` for `model` (as `load` returned it) over `dataset`. One
    /// this build cannot use - the per-group format of earlier builds, whose probabilities were not monotone, or
    /// one failing its checks - is refitted in memory on the dataset's validation split exactly as `r2ec train`
    /// fits it (same split, same scores, same ranks), with a note on stderr; the directory is not written. A
    /// checkpoint trained without calibration has none.
    public static func calibrator(directory: String, model: DualHeadModel, dataset: Dataset) throws -> TopNCalibrator? {
        guard let info = try TrainedModelInfo.load(directory: directory) else { return nil }
        guard let why = info.droppedCalibrator else { return info.calibrator }
        let began = Date()
        let split = Splits.make(Splits.Kind(rawValue: info.split) ?? .loo, dataset)
        var options = EvalOptions()
        options.bootstrapResamples = 0
        options.batchSize = 128
        options.calibrationN = calibrationRanks(config: info.config)
        let validation = try Trainer.evaluate(model, on: split.validation, options: options)
        let refitted = TopNCalibrator.fit(validation.topN, n: options.calibrationN)
        FileHandle.standardError.write(Data(String(format: "note: %@/%@: stored calibrator not usable (%@); refitted on " +
            "%d validation samples in %.1f s (in memory; retraining stores one)\n", directory, TrainedModelInfo.fileName,
            why, validation.samples, Date().timeIntervalSince(began)).utf8))
        return refitted
    }

    /// `calibration_ranks` of a stored training config (10, the default, for configs that predate it).
    static func calibrationRanks(config: String) -> Int {
        guard let value = try? JSONValue.parse(config), case .object(let o) = value,
              case .integer(let n)? = o["calibration_ranks"], (1...1000).contains(n) else { return 10 }
        return n
    }
}
