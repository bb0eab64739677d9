// Visible progress of a training run: one JSON line per step and per evaluation in a log file (what
// clients/python's `plots training` reads: step lines with "step", "stage", "loss", "tokens_per_s" and, for recpo,
// "reward" and "reasoning_len"; eval lines with "eval": step and the metrics), and a progress line on stderr
// (rewritten in place on a terminal) with loss, tokens/s and the stage's ETA.
import Foundation

public final class TrainLog: @unchecked Sendable {
    private let handle: FileHandle?
    private let terminal = isatty(2) != 0
    private var lastPrint = 0.0
    public let started = Date()

    /// Writes nothing at all (the ranks other than 0 of a data-parallel run).
    private var quiet = false

    /// Appends to `path` (created if missing); nil logs to stderr only, and with `quiet` nowhere.
    public init(path: String?, quiet: Bool = false) throws {
        self.quiet = quiet
        if let path {
            if !FileManager.default.fileExists(atPath: path) {
                FileManager.default.createFile(atPath: path, contents: nil)
            }
            guard let h = FileHandle(forWritingAtPath: path) else { throw TrainError.config("cannot write the log \(path)") }
            h.seekToEndOfFile()
            handle = h
        } else {
            handle = nil
        }
    }

    deinit { try? handle?.close() }

    public var elapsed: Double { Date().timeIntervalSince(started) }

    /// One JSON object per line; non-finite numbers are written as null.
    public func write(_ fields: [(String, Any)]) {
        var parts: [String] = []
        for (k, v) in fields {
            let value: String
            switch v {
            case let d as Double: value = d.isFinite ? String(d) : "null"
            case let f as Float: value = f.isFinite ? String(f) : "null"
            case let i as Int: value = String(i)
            case let b as Bool: value = b ? "true" : "false"
            case let s as String: value = "\"" + s.replacingOccurrences(of: "\"", with: "'") + "\""
            default: value = "null"
            }
            parts.append("\"\(k)\":\(value)")
        }
        handle?.write(("{" + parts.joined(separator: ",") + "}\n").data(using: .utf8)!)
    }

    /// The progress line: stage, step/total, loss, tokens/s and the stage's ETA (printed at most 4 times a second
    /// when stderr is a terminal, every `every` steps otherwise).
    public func progress(stage: String, step: Int, total: Int, loss: Double, tokensPerSecond: Double,
                         stageSeconds: Double, extra: String = "", every: Int = 10) {
        if quiet { return }
        let now = elapsed
        let last = step + 1 == total
        if terminal { if now - lastPrint < 0.25 && !last { return } } else if (step + 1) % every != 0 && !last { return }
        lastPrint = now
        let eta = stageSeconds / Double(step + 1) * Double(total - step - 1)
        let line = String(format: "[%@] step %d/%d loss %.4f %.0f tok/s ETA %@ elapsed %@%@", stage, step + 1, total,
                          loss, tokensPerSecond, Self.clock(eta), Self.clock(now), extra)
        FileHandle.standardError.write(((terminal ? "\r\u{1B}[K" : "") + line + (terminal ? "" : "\n")).data(using: .utf8)!)
    }

    /// A line of its own on stderr (ends any progress line first).
    public func note(_ text: String) {
        if quiet { return }
        FileHandle.standardError.write(((terminal ? "\r\u{1B}[K" : "") + text + "\n").data(using: .utf8)!)
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(max(0, seconds.isFinite ? seconds : 0))
        return s >= 60 ? "\(s / 60)m\(String(format: "%02d", s % 60))s" : "\(s)s"
    }
}
