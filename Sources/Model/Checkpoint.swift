// A checkpoint is a directory: config.json (Hugging Face Qwen2 fields), model.safetensors (Hugging Face tensor
// names; F32/F16/BF16 read, F32 written; or sharded with model.safetensors.index.json), tokenizer.json, and the
// cached item table (item_table.safetensors, see ItemTable). All key remapping lives in `sanitize(weights:)`.
import Foundation

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
        let path = (directory as NSString).appendingPathComponent(configFile)
        guard FileManager.default.fileExists(atPath: path) else { throw CheckpointError.missingFile(path) }
        let c = try Qwen2Configuration.decode(json: try Foundation.Data(contentsOf: URL(fileURLWithPath: path)))
        try c.validate()
        return c
    }

    /// Loads config.json and the weights into one parameter allocation, checking every tensor's shape.
    public static func loadModel(directory: String) throws -> Qwen2Model {
        let configuration = try loadConfiguration(directory: directory)
        let layout = ParameterLayout(configuration: configuration)
        let buffer = ParameterBuffer(layout: layout)
        let files = try weightFiles(directory: directory)
        var fileOfKey: [String: SafetensorsFile] = [:]
        for f in files { for name in f.names { fileOfKey[name] = f } }
        let map = sanitize(weights: Array(fileOfKey.keys), configuration: configuration)
        for entry in layout.entries {
            guard let key = map[entry.name], let file = fileOfKey[key] else {
                throw CheckpointError.missingTensor(name: entry.name, file: files.map(\.path).joined(separator: ", "))
            }
            try file.read(key, into: buffer.tensor(entry.name), expectedShape: entry.shape)
        }
        return try Qwen2Model(configuration: configuration, parameters: buffer)
    }

    /// Loads tokenizer.json.
    public static func loadTokenizer(directory: String) throws -> Tokenizer {
        try Tokenizer(contentsOf: (directory as NSString).appendingPathComponent(tokenizerFile))
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
        if FileManager.default.fileExists(atPath: single) { return [try SafetensorsFile(path: single)] }
        let index = (directory as NSString).appendingPathComponent(shardIndexFile)
        guard FileManager.default.fileExists(atPath: index) else { throw CheckpointError.missingFile(single) }
        guard let json = try JSONSerialization.jsonObject(with: Foundation.Data(contentsOf: URL(fileURLWithPath: index))) as? [String: Any],
              let weightMap = json["weight_map"] as? [String: String] else {
            throw CheckpointError.invalidConfiguration("\(index) has no weight_map")
        }
        return try Set(weightMap.values).sorted().map {
            try SafetensorsFile(path: (directory as NSString).appendingPathComponent($0))
        }
    }

    /// FNV-1a over the parameter bytes and the configuration: the item table is rebuilt when it changes.
    public static func weightsHash(_ model: Qwen2Model) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        let raw = UnsafeRawBufferPointer(start: model.parameters.base, count: model.parameters.count * 4)
        // Eight bytes at a time: the weights of a large model hash in well under a second.
        let words = raw.count / 8
        for i in 0..<words {
            h = (h ^ raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) &* 0x100_0000_01b3
        }
        for i in (8 * words)..<raw.count { h = (h ^ UInt64(raw[i])) &* 0x100_0000_01b3 }
        if let config = try? model.configuration.jsonData() {
            for b in config { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        }
        return String(h, radix: 16)
    }
}
