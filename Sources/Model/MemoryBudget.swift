// What loading a model will allocate, worked out from its configuration alone, and the budget a load must fit in.
// Loads check the budget (and the weights file, see Checkpoint) before allocating anything, so a config.json that
// describes an enormous model is refused with its sizes named instead of aborting the process.
import CKernels
import Foundation
import Tensor

/// Bytes by purpose ("parameters", "rotary table", ...), in the order they were added.
public struct MemoryUsage: Sendable, Equatable, CustomStringConvertible {
    public private(set) var parts: [Part]
    public struct Part: Sendable, Equatable {
        public var what: String
        public var bytes: Int
    }

    public init(_ parts: [(String, Int)] = []) { self.parts = parts.map { Part(what: $0.0, bytes: $0.1) } }

    public mutating func add(_ what: String, _ bytes: Int) { parts.append(Part(what: what, bytes: bytes)) }

    /// Bytes of a float32 tensor of these dimensions (saturating: absurd sizes must not wrap around).
    public static func floats(_ dimensions: Int...) -> Int {
        dimensions.reduce(4) { $0.multipliedSaturated(by: $1) }
    }

    /// Bytes of an [n, k] matrix packed for the packed-weight GEMM, by the kernel's own size formula (n and k within
    /// Int32, as validated configurations keep them).
    public static func packed(_ n: Int, _ k: Int, _ precision: PackedMatrix.Precision) -> Int {
        precision == .float32 ? r2ec_packed_count(Int32(n), Int32(k)).multipliedSaturated(by: 4)
                              : r2ec_packed_bf16_count(Int32(n), Int32(k)).multipliedSaturated(by: 2)
    }

    public static func + (a: MemoryUsage, b: MemoryUsage) -> MemoryUsage {
        var r = a
        r.parts += b.parts
        return r
    }

    /// The sum, saturating at Int.max (sizes of absurd configurations must not wrap around).
    public var total: Int { parts.reduce(0) { $0.addingSaturated($1.bytes) } }

    /// "1.2 GiB (parameters 1.0 GiB, rotary table 8.0 MiB)".
    public var description: String {
        MemoryBudget.format(total) + " (" + parts.map { "\($0.what) \(MemoryBudget.format($0.bytes))" }.joined(separator: ", ") + ")"
    }
}

/// The most memory one model load may take.
public struct MemoryBudget: Sendable, Equatable, CustomStringConvertible {
    public var bytes: Int
    /// Where the figure comes from, for messages (e.g. "--memory-budget").
    public var source: String

    public init(bytes: Int, source: String) {
        self.bytes = bytes
        self.source = source
    }

    /// No limit beyond the weights file (tests, tools that load what they were given).
    public static let unlimited = MemoryBudget(bytes: .max, source: "no limit")

    /// 80% of the memory available now: MemAvailable of /proc/meminfo on Linux (so models already loaded, and the
    /// old model during a reload, are accounted for), else half of the physical memory.
    public static func available() -> MemoryBudget {
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
           let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") {
            return MemoryBudget(bytes: kib / 5 * 4 * 1024, source: "80% of the memory available (MemAvailable)")
        }
        return MemoryBudget(bytes: Int(clamping: ProcessInfo.processInfo.physicalMemory / 2),
                            source: "half of the physical memory")
    }

    /// A budget from a command-line value: bytes, or a number with K, M, G or T (powers of 1024; "8G", "1.5GiB").
    public static func parse(_ text: String, source: String) -> MemoryBudget? {
        var t = text.trimmingCharacters(in: .whitespaces).uppercased()
        for suffix in ["IB", "B"] where t.hasSuffix(suffix) && t.count > suffix.count { t.removeLast(suffix.count); break }
        let units: [Character: Double] = ["K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024, "T": 1024 * 1024 * 1024 * 1024]
        var scale = 1.0
        if let last = t.last, let u = units[last] { scale = u; t.removeLast() }
        guard let value = Double(t), value.isFinite, value > 0, value * scale < Double(Int.max) else { return nil }
        return MemoryBudget(bytes: Int(value * scale), source: source)
    }

    /// Throws `CheckpointError.overBudget` naming `what`, the sizes and this budget when `usage` does not fit.
    public func check(_ usage: MemoryUsage, what: String) throws {
        guard usage.total > bytes else { return }
        throw CheckpointError.overBudget("\(what) needs \(usage), more than the memory budget of \(self)")
    }

    public var description: String { bytes == .max ? source : "\(Self.format(bytes)) (\(source))" }

    /// Bytes in the largest binary unit that keeps one decimal meaningful: "512 B", "8.0 MiB", "1.2 GiB".
    public static func format(_ bytes: Int) -> String {
        if bytes == .max { return "more than 8 EiB" }
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = Double(bytes), u = 0
        while value >= 1024 && u < units.count - 1 { value /= 1024; u += 1 }
        return u == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[u])
    }
}

extension Int {
    /// self * other, or Int.max when that overflows (sizes only: both are >= 0).
    func multipliedSaturated(by other: Int) -> Int {
        let (p, overflow) = multipliedReportingOverflow(by: other)
        return overflow ? .max : p
    }

    func addingSaturated(_ other: Int) -> Int {
        let (s, overflow) = addingReportingOverflow(other)
        return overflow ? .max : s
    }
}

extension Qwen2Configuration {
    /// What an inference model of this configuration allocates: float32 parameters, the packed copies of the
    /// projections when `packed` gives their precision (and the CPU runs that kernel), and the rotary table.
    /// Activations and KV caches are bounded by the caller's batch and token limits, not by the configuration, and
    /// are not counted here.
    public func inferenceMemory(packed: PackedMatrix.Precision?) -> MemoryUsage {
        var usage = MemoryUsage()
        usage.add("parameters", parameterFloats.multipliedSaturated(by: 4))
        if let precision = packed, precision.isSupported {
            let d = hiddenSize, q = numAttentionHeads * headDim
            func pack(_ n: Int, _ k: Int) -> Int { MemoryUsage.packed(n, k, precision) }
            let layer = pack(qkvRows, d).addingSaturated(pack(d, q)).addingSaturated(pack(2 * intermediateSize, d))
                .addingSaturated(pack(d, intermediateSize))
            usage.add("packed projections", layer.multipliedSaturated(by: numHiddenLayers).addingSaturated(pack(vocabSize, d)))
        }
        // cos and sin, [max_position_embeddings, head_dim / 2] each.
        usage.add("rotary table", maxPositionEmbeddings.multipliedSaturated(by: headDim).multipliedSaturated(by: 4))
        return usage
    }

    /// Floats of the parameter allocation, worked out without building the layout (which lists every tensor).
    var parameterFloats: Int {
        let d = hiddenSize
        let layer = [d, qkvRows * d, qkvRows, d * numAttentionHeads * headDim, d, 2 * intermediateSize * d,
                     d * intermediateSize].reduce(0) { $0.addingSaturated($1 + 15) }
        let embedding = vocabSize.multipliedSaturated(by: d)
        return embedding.multipliedSaturated(by: tieWordEmbeddings ? 1 : 2)
            .addingSaturated(layer.multipliedSaturated(by: numHiddenLayers)).addingSaturated(d + 32)
            .addingSaturated(latentSteps > 0 ? latentSteps * d + 15 : 0)
    }
}
