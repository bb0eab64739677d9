// The errors of loading and saving checkpoints, safetensors files and tokenizers; each says what is wrong and where.

public enum CheckpointError: Error, Equatable, CustomStringConvertible {
    /// config.json is unreadable or describes an impossible model.
    case invalidConfiguration(String)
    /// A file the checkpoint needs is absent.
    case missingFile(String)
    /// A safetensors file is shorter than its header or its tensors claim.
    case truncated(file: String, detail: String)
    /// A safetensors header is not the JSON the format prescribes.
    case malformedHeader(file: String, detail: String)
    /// The model needs a tensor the checkpoint does not hold.
    case missingTensor(name: String, file: String)
    /// A tensor's shape differs from the one the configuration implies.
    case wrongShape(name: String, expected: [Int], found: [Int])
    /// A tensor is stored in a dtype this reader does not convert (F32, F16 and BF16 are read).
    case unsupportedDType(name: String, dtype: String)
    /// tokenizer.json is unreadable or not a byte-level BPE tokenizer.
    case invalidTokenizer(String)
    /// config.json passes its own checks but describes tensors the weights do not hold (the field is named).
    case configurationMismatch(field: String, detail: String)
    /// Loading would take more memory than the budget allows (nothing was allocated).
    case overBudget(String)
    /// A file the checkpoint names lies outside its directory (absolute, "..", a symlink out) or is not a
    /// regular file.
    case unsafePath(String)

    public var description: String {
        switch self {
        case .invalidConfiguration(let m): return "invalid configuration: \(m)"
        case .missingFile(let p): return "missing file \(p)"
        case .truncated(let f, let d): return "truncated safetensors file \(f): \(d)"
        case .malformedHeader(let f, let d): return "malformed safetensors header in \(f): \(d)"
        case .missingTensor(let n, let f): return "tensor \(n) is missing from \(f)"
        case .wrongShape(let n, let e, let f): return "tensor \(n) has shape \(f), the configuration needs \(e)"
        case .unsupportedDType(let n, let d): return "tensor \(n) has dtype \(d); only F32, F16 and BF16 are read"
        case .invalidTokenizer(let m): return "invalid tokenizer: \(m)"
        case .configurationMismatch(let field, let d): return "config.json \(field) does not fit the weights: \(d)"
        case .overBudget(let m): return "refused before allocating: \(m)"
        case .unsafePath(let m): return "refused: \(m)"
        }
    }
}
