// `r2ec serve --log-format json`: one JSON object per log line on stderr, for log collectors:
// {"time":"2026-12-03T04:30:00.123Z","level":"warning","logger":"r2ec.rpc","message":"call failed","code":"NOT_FOUND",...}
// Metadata keys become fields beside the fixed ones (a metadata key equal to a fixed one is prefixed "md_").
import Foundation
import Logging

public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public let label: String
    private let write: @Sendable (String) -> Void

    public init(label: String, level: Logger.Level = .info,
                write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.logLevel = level
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        write(Self.line(time: Date(), level: event.level, label: label, message: "\(event.message)",
                        metadata: metadata.merging(event.metadata ?? [:]) { $1 }))
    }

    /// One log line, newline-terminated; keys in a fixed order (time, level, logger, message, then sorted metadata).
    public static func line(time: Date, level: Logger.Level, label: String, message: String,
                            metadata: Logger.Metadata) -> String {
        var fields: [(String, String)] = [("time", quote(timestamp(time))), ("level", quote(level.rawValue)),
                                          ("logger", quote(label)), ("message", quote(message))]
        let fixed = Set(fields.map(\.0))
        for key in metadata.keys.sorted() {
            fields.append((fixed.contains(key) ? "md_" + key : key, quote(flatten(metadata[key]!))))
        }
        return "{" + fields.map { "\(quote($0.0)):\($0.1)" }.joined(separator: ",") + "}\n"
    }

    static func flatten(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): return s
        case .stringConvertible(let c): return c.description
        case .array(let a): return "[" + a.map(flatten).joined(separator: ", ") + "]"
        case .dictionary(let d): return "{" + d.keys.sorted().map { "\($0): \(flatten(d[$0]!))" }.joined(separator: ", ") + "}"
        }
    }

    /// RFC 3339 UTC with milliseconds.
    static func timestamp(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&t, &parts)
        let ms = Int((date.timeIntervalSince1970 - Double(t)) * 1000)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), min(ms, 999))
    }

    /// A JSON string literal (RFC 8259): quotes, backslashes and control characters escaped.
    public static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x2028 || scalar.value == 0x2029:
                out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    private static let lock = NSLock()

    /// Writes whole lines to stderr, one writer at a time.
    public static let standardError: @Sendable (String) -> Void = { line in
        JSONLogHandler.lock.lock()
        FileHandle.standardError.write(Data(line.utf8))
        JSONLogHandler.lock.unlock()
    }
}
