// Resumable training state in a directory: the parameters, AdamW's moments (each a safetensors file carved by the
// same layout), the refreshed item table, and progress.json (stage, next step, optimiser step, early-stopping
// bookkeeping). Written atomically enough for a crash between steps: files go to a temporary directory, then replace.
import Foundation
import Model
import Tensor

public struct TrainingProgress: Codable, Sendable, Equatable {
    public static let magic = "r2ec-train-state"
    public static let version = 1
    public var magic = TrainingProgress.magic
    public var version = TrainingProgress.version
    /// Stage index in the config and the next step to run in it.
    public var stage = 0
    public var step = 0
    public var optimizerStep = 0
    /// Updates over every stage so far (the x axis of the log).
    public var globalStep = 0
    public var bestScore = -1.0
    public var bestStage = -1
    public var bestStep = -1
    public var evaluationsWithoutImprovement = 0
    /// The current stage's last validation NDCG@10 values (as many as its `smooth`), for the smoothed selection.
    public var recentScores: [Double]?
    /// Updates folded into the stage's parameter average (-1: the stage keeps none).
    public var averageUpdates = -1
    public var elapsed = 0.0
    /// The parameter count and the configuration JSON the state belongs to (a mismatch refuses to resume).
    public var parameterCount = 0
    public var config = ""
    public init() {}
}

public enum TrainingState {
    public static let directoryName = "state"

    public static func save(directory: String, parameters: ParameterBuffer, optimizer: AdamW?, table: FloatBuffer?,
                            average: ParameterBuffer? = nil, progress: TrainingProgress) throws {
        let fm = FileManager.default
        let temporary = directory + ".tmp"
        try? fm.removeItem(atPath: temporary)
        try fm.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        try write(parameters, to: temporary + "/params.safetensors")
        if let optimizer {
            try write(optimizer.m, to: temporary + "/adam_m.safetensors")
            try write(optimizer.v, to: temporary + "/adam_v.safetensors")
        }
        if let average { try write(average, to: temporary + "/average.safetensors") }
        if let table {
            try SafetensorsWriter.write([.init(name: "table", shape: table.shape, values: UnsafeBufferPointer(table.buffer))],
                                        to: temporary + "/table.safetensors")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(progress).write(to: URL(fileURLWithPath: temporary + "/progress.json"))
        try? fm.removeItem(atPath: directory)
        try fm.moveItem(atPath: temporary, toPath: directory)
    }

    public static func exists(directory: String) -> Bool {
        FileManager.default.fileExists(atPath: directory + "/progress.json")
    }

    public static func loadProgress(directory: String) throws -> TrainingProgress {
        guard let data = FileManager.default.contents(atPath: directory + "/progress.json") else {
            throw TrainError.state("no \(directory)/progress.json: nothing to resume (drop --resume to start afresh)")
        }
        let p = try JSONDecoder().decode(TrainingProgress.self, from: data)
        guard p.magic == TrainingProgress.magic, p.version == TrainingProgress.version else {
            throw TrainError.state("\(directory) holds state version \(p.version), this build writes \(TrainingProgress.version): start afresh")
        }
        return p
    }

    /// Loads parameters (and the moments / average / table when given somewhere to put them) saved by `save`.
    public static func load(directory: String, parameters: ParameterBuffer, optimizer: AdamW?,
                            average: ParameterBuffer? = nil) throws -> FloatBuffer? {
        try read(parameters, from: directory + "/params.safetensors")
        if let average { try read(average, from: directory + "/average.safetensors") }
        if let optimizer {
            try read(optimizer.m, from: directory + "/adam_m.safetensors")
            try read(optimizer.v, from: directory + "/adam_v.safetensors")
        }
        let tablePath = directory + "/table.safetensors"
        guard FileManager.default.fileExists(atPath: tablePath) else { return nil }
        let file = try SafetensorsFile(path: tablePath)
        guard let shape = file.entries["table"]?.shape else { return nil }
        let table = FloatBuffer(shape: shape)
        try file.read("table", into: table.buffer, expectedShape: shape)
        return table
    }

    static func write(_ buffer: ParameterBuffer, to path: String) throws {
        let tensors = buffer.layout.entries.map {
            SafetensorsWriter.Tensor(name: $0.name, shape: $0.shape, values: UnsafeBufferPointer(buffer.tensor($0.name)))
        }
        try SafetensorsWriter.write(tensors, to: path)
    }

    static func read(_ buffer: ParameterBuffer, from path: String) throws {
        let file = try SafetensorsFile(path: path)
        for e in buffer.layout.entries {
            guard file.entries[e.name] != nil else {
                throw TrainError.state("\(path) lacks \(e.name): the state belongs to another model; start afresh")
            }
            try file.read(e.name, into: buffer.tensor(e.name), expectedShape: e.shape)
        }
    }
}
