// A checkpoint is a directory: config.json (Hugging Face Qwen2 fields), model.safetensors (Hugging Face tensor
// names; F32/F16/BF16 read, F32 written; or sharded with model.safetensors.index.json), tokenizer.json, and the
// cached item table (item_table.safetensors, see ItemTable). All key remapping lives in `sanitize(weights:)`.
import Data
import Foundation
import Tensor
#if canImport(Glibc)
import Glibc
#endif

public enum Checkpoint {
    public static let configFile = "config.json"
    public static let weightsFile = "model.safetensors"
    public static let shardIndexFile = "model.safetensors.index.json"
    public static let tokenizerFile = "tokenizer.json"

    /// Maps each tensor name the model needs to the checkpoint key that holds it, dropping keys the model does not
    /// use (rotary inv_freq buffers, a tied model's redundant lm_head). Accepts Hugging Face names and the same
    /// names without the leading "model." (as some exporters write them).
    public static func sanitize(weights keys: [String], configuration: Qwen2Configuration) -> [String: String] {
        var map: [String: String] = [:]
        for key in keys {
            if key.hasSuffix("rotary_emb.inv_freq") { continue }
            if key == "lm_head.weight" {
                if !configuration.tieWordEmbeddings { map[key] = key }
                continue
            }
            let name = key.hasPrefix("model.") ? key : "model." + key
            // An explicit "model.x" wins over a bare "x" when a file holds both.
            if map[name] == nil || key.hasPrefix("model.") { map[name] = key }
        }
        return map
    }

    /// Reads config.json.
    public static func loadConfiguration(directory: String) throws -> Qwen2Configuration {
        let path = try file(configFile, in: directory)
        let c = try Qwen2Configuration.decode(json: try Foundation.Data(contentsOf: URL(fileURLWithPath: path)))
        try c.validate()
        return c
    }

    /// Loads config.json and the weights into one parameter allocation. Nothing is allocated before config.json is
    /// checked against the weights' headers (every tensor present, with the shape the configuration implies, in a
    /// readable dtype, and as many layers as num_hidden_layers) and the model's memory against `budget`: a
    /// config.json describing an enormous model is refused with the field and the sizes named. `packed` loads the
    /// model for inference with its projections packed in that precision (counted in the budget); `alongside` is
    /// memory the caller will allocate with it (e.g. an item table), counted too.
    public static func loadModel(directory: String, budget: MemoryBudget = .unlimited,
                                 packed: PackedMatrix.Precision? = nil,
                                 alongside: MemoryUsage = MemoryUsage()) throws -> Qwen2Model {
        let configuration = try loadConfiguration(directory: directory)
        let files = try weightFiles(directory: directory)
        let sources = try match(configuration, files: files)
        try budget.check(configuration.inferenceMemory(packed: packed) + alongside,
                         what: "the model in \(directory)")
        let layout = ParameterLayout(configuration: configuration)
        let buffer = ParameterBuffer(layout: layout)
        for entry in layout.entries {
            let (file, key) = sources[entry.name]!
            try file.read(key, into: buffer.tensor(entry.name), expectedShape: entry.shape)
        }
        let model = try Qwen2Model(configuration: configuration, parameters: buffer)
        return packed.map { model.packedForInference(precision: $0) } ?? model
    }

    /// Where each tensor of `configuration`'s layout is held (file and key), after checking, from the headers alone,
    /// that the weights are what config.json describes. Errors name the config.json field at fault.
    static func match(_ configuration: Qwen2Configuration, files: [SafetensorsFile]) throws -> [String: (SafetensorsFile, String)] {
        var fileOfKey: [String: SafetensorsFile] = [:]
        for f in files { for name in f.names { fileOfKey[name] = f } }
        let described = files.map { ($0.path as NSString).lastPathComponent }.joined(separator: ", ")
        // Layers first: a count that differs would otherwise show up as a missing tensor of layer N.
        var layers = Set<Int>()
        for key in fileOfKey.keys {
            let bare = key.hasPrefix("model.") ? key.dropFirst(6) : Substring(key)
            guard bare.hasPrefix("layers.") else { continue }
            if let n = Int(bare.dropFirst(7).prefix { $0 != "." }) { layers.insert(n) }
        }
        if !layers.isEmpty && layers.count != configuration.numHiddenLayers {
            throw CheckpointError.configurationMismatch(field: "num_hidden_layers",
                detail: "it is \(configuration.numHiddenLayers); \(described) holds \(layers.count) layers")
        }
        let map = sanitize(weights: Array(fileOfKey.keys), configuration: configuration)
        var sources: [String: (SafetensorsFile, String)] = [:]
        // The layout is a list of names and shapes: building it allocates nothing of the model's size.
        for entry in ParameterLayout(configuration: configuration).entries {
            guard let key = map[entry.name], let file = fileOfKey[key], let found = file.entries[key] else {
                throw CheckpointError.missingTensor(name: entry.name, file: described)
            }
            if found.shape != entry.shape {
                let fields = entry.dimensions.indices.filter {
                    found.shape.count != entry.shape.count || found.shape[$0] != entry.shape[$0]
                }.map { entry.dimensions[$0] }
                let unique = fields.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
                let values = unique.map { "\($0) \(configuration.value(of: $0))" }.joined(separator: ", ")
                throw CheckpointError.configurationMismatch(field: unique.joined(separator: ", "),
                    detail: "\(values) make \(entry.name) \(entry.shape), \((file.path as NSString).lastPathComponent) holds \(found.shape)")
            }
            guard SafetensorsDType(rawValue: found.dtypeName) != nil else {
                throw CheckpointError.unsupportedDType(name: key, dtype: found.dtypeName)
            }
            sources[entry.name] = (file, key)
        }
        return sources
    }

    /// Loads tokenizer.json.
    public static func loadTokenizer(directory: String) throws -> Tokenizer {
        try Tokenizer(contentsOf: try file(tokenizerFile, in: directory))
    }

    /// Writes config.json, model.safetensors (F32, layout order) and, when given, tokenizer.json.
    public static func save(_ model: Qwen2Model, tokenizer: Tokenizer?, directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try model.configuration.jsonData().write(
            to: URL(fileURLWithPath: (directory as NSString).appendingPathComponent(configFile)), options: .atomic)
        let tensors = model.parameters.layout.entries.map {
            SafetensorsWriter.Tensor(name: $0.name, shape: $0.shape,
                                     values: UnsafeBufferPointer(model.parameters.tensor($0.name)))
        }
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"],
                                    to: (directory as NSString).appendingPathComponent(weightsFile))
        if let tokenizer { try tokenizer.save(to: (directory as NSString).appendingPathComponent(tokenizerFile)) }
    }

    /// model.safetensors, or the shards model.safetensors.index.json names.
    static func weightFiles(directory: String) throws -> [SafetensorsFile] {
        let single = (directory as NSString).appendingPathComponent(weightsFile)
        if FileManager.default.fileExists(atPath: single) {
            return [try SafetensorsFile(path: try file(weightsFile, in: directory))]
        }
        let indexName = (directory as NSString).appendingPathComponent(shardIndexFile)
        guard FileManager.default.fileExists(atPath: indexName) else { throw CheckpointError.missingFile(single) }
        let index = try file(shardIndexFile, in: directory)
        guard let json = try? JSONSerialization.jsonObject(with: Foundation.Data(contentsOf: URL(fileURLWithPath: index))) as? [String: Any],
              let weightMap = json["weight_map"] as? [String: String] else {
            throw CheckpointError.invalidConfiguration("\(index) has no weight_map of tensor names to shard files")
        }
        // Every shard must lie inside the checkpoint directory: the index is data, not a licence to open any path.
        return try Set(weightMap.values).sorted().map { try SafetensorsFile(path: try file($0, in: directory)) }
    }

    /// The path of `name` inside checkpoint `directory`, for reading. Refuses a name that leaves the directory (an
    /// absolute path, a ".." component, a symlink whose target lies outside it) and anything that is not a regular
    /// file (a device or FIFO would block or never end); a name that does not exist is `missingFile`.
    public static func file(_ name: String, in directory: String) throws -> String {
        let path = (directory as NSString).appendingPathComponent(name)
        guard !name.isEmpty, !name.hasPrefix("/"), !name.contains("\0"),
              !name.split(separator: "/").contains("..") else {
            throw CheckpointError.unsafePath("'\(name)' (in \(directory)) is not a file name inside the checkpoint directory")
        }
        guard FileManager.default.fileExists(atPath: path) else { throw CheckpointError.missingFile(path) }
        guard let real = realPath(path), let root = realPath(directory) else { throw CheckpointError.missingFile(path) }
        guard real.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
            throw CheckpointError.unsafePath("\(path) resolves to \(real), outside the checkpoint directory \(root)")
        }
        var info = stat()
        guard stat(real, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw CheckpointError.unsafePath("\(path) is not a regular file")
        }
        return real
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// FNV-1a over the parameter bytes and the configuration: the item table is rebuilt when it changes.
    public static func weightsHash(_ model: Qwen2Model) -> String {
        var h = FNV1a()
        // Eight bytes at a time: the weights of a large model hash in well under a second.
        h.words(UnsafeRawBufferPointer(start: model.parameters.base, count: model.parameters.count * 4))
        if let config = try? model.configuration.jsonData() { h.bytes(config) }
        return String(h.value, radix: 16)
    }
}
