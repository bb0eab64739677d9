// Typed, range-checked settings read from JSON. Each settings type lists its fields once (key, where the value
// lives, which values are accepted); that one table reads a config (every error collected and named by its path,
// `stages[1].steps: must be >= 1, got -5`), rejects keys it does not know (suggesting the nearest known one), and
// writes the settings back as JSON.
import Foundation

/// A JSON value as read from a config file or a `--set` override.
public enum JSONValue: Codable, Equatable, Sendable {
    case null
    case bool(Bool)
    case integer(Int)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .integer(i) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .integer(let i): try c.encode(i)
        case .number(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// Parses JSON text (any value, not only objects and arrays).
    public static func parse(_ text: String) throws -> JSONValue {
        // Wrapped in an array so that a bare number or string parses on every Foundation.
        let wrapped = try JSONDecoder().decode([JSONValue].self, from: Data(("[" + text + "\n]").utf8))
        guard wrapped.count == 1 else { throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "not one JSON value")) }
        return wrapped[0]
    }

    /// How a message shows the value: JSON, strings quoted.
    var shown: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return String(b)
        case .integer(let i): return String(i)
        case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) + ".0" : String(d)
        case .string(let s): return "\"\(s)\""
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    var number: Double? {
        switch self {
        case .integer(let i): return Double(i)
        case .number(let d): return d
        default: return nil
        }
    }
}

/// The values a numeric setting accepts, and how a message says it ("must be >= 1", "must be in [0, 1)").
public struct Bounds: Sendable {
    var low: Double?
    var lowOpen = false
    var high: Double?
    var highOpen = false

    public static func atLeast(_ x: Double) -> Bounds { Bounds(low: x) }
    public static func above(_ x: Double) -> Bounds { Bounds(low: x, lowOpen: true) }
    /// [a, b].
    public static func within(_ a: Double, _ b: Double) -> Bounds { Bounds(low: a, high: b) }
    /// [a, b).
    public static func from(_ a: Double, below b: Double) -> Bounds { Bounds(low: a, high: b, highOpen: true) }

    func contains(_ v: Double) -> Bool {
        guard v.isFinite else { return false }
        if let low, lowOpen ? v <= low : v < low { return false }
        if let high, highOpen ? v >= high : v > high { return false }
        return true
    }

    var description: String {
        func f(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x) }
        switch (low, high) {
        case let (l?, h?): return "in \(lowOpen ? "(" : "[")\(f(l)), \(f(h))\(highOpen ? ")" : "]")"
        case let (l?, nil): return (lowOpen ? "> " : ">= ") + f(l)
        case let (nil, h?): return (highOpen ? "< " : "<= ") + f(h)
        case (nil, nil): return "finite"
        }
    }
}

/// Where errors of one read are gathered, each naming the path of its setting.
public struct ConfigErrors {
    public private(set) var messages: [String] = []
    public mutating func add(_ path: String, _ message: String) { messages.append("\(path): \(message)") }
    public var isEmpty: Bool { messages.isEmpty }
}

/// One setting of a config object: its key, how a JSON value becomes the field (checked against what the field
/// accepts), and how the field is written back.
public struct ConfigField<Root> {
    public let key: String
    let read: (inout Root, JSONValue, String, inout ConfigErrors) -> Void
    let write: (Root) -> JSONValue

    /// This field of a settings value stored at `path` in `Outer` (settings shared by several types, written flat).
    func lifted<Outer>(_ path: WritableKeyPath<Outer, Root>) -> ConfigField<Outer> {
        let read = self.read, write = self.write
        return ConfigField<Outer>(key: key, read: { outer, v, p, e in read(&outer[keyPath: path], v, p, &e) },
                                  write: { write($0[keyPath: path]) })
    }

    public static func int(_ key: String, _ path: WritableKeyPath<Root, Int>, _ bounds: Bounds) -> ConfigField {
        ConfigField(key: key, read: { root, v, p, errors in
            guard let x = v.number, x == x.rounded(), abs(x) < 9e15 else {
                return errors.add(p, "expected an integer, got \(v.shown)")
            }
            guard bounds.contains(x) else { return errors.add(p, "must be \(bounds.description), got \(Int(x))") }
            root[keyPath: path] = Int(x)
        }, write: { .integer($0[keyPath: path]) })
    }

    public static func seed(_ key: String, _ path: WritableKeyPath<Root, UInt64>) -> ConfigField {
        ConfigField(key: key, read: { root, v, p, errors in
            guard let x = v.number, x == x.rounded(), x >= 0, x < 9_007_199_254_740_992 else {
                return errors.add(p, "expected an integer in [0, 2^53), got \(v.shown)")
            }
            root[keyPath: path] = UInt64(x)
        }, write: { .integer(Int($0[keyPath: path])) })
    }

    public static func double(_ key: String, _ path: WritableKeyPath<Root, Double>, _ bounds: Bounds) -> ConfigField {
        ConfigField(key: key, read: { root, v, p, errors in
            guard let x = v.number else { return errors.add(p, "expected a number, got \(v.shown)") }
            guard bounds.contains(x) else { return errors.add(p, "must be \(bounds.description), got \(x)") }
            root[keyPath: path] = x
        }, write: { .number($0[keyPath: path]) })
    }

    public static func float(_ key: String, _ path: WritableKeyPath<Root, Float>, _ bounds: Bounds) -> ConfigField {
        ConfigField(key: key, read: { root, v, p, errors in
            guard let x = v.number else { return errors.add(p, "expected a number, got \(v.shown)") }
            guard bounds.contains(x), Float(x).isFinite else { return errors.add(p, "must be \(bounds.description), got \(x)") }
            root[keyPath: path] = Float(x)
        }, write: { .number(Double($0[keyPath: path])) })
    }

    public static func bool(_ key: String, _ path: WritableKeyPath<Root, Bool>) -> ConfigField {
        ConfigField(key: key, read: { root, v, p, errors in
            guard case .bool(let b) = v else { return errors.add(p, "expected true or false, got \(v.shown)") }
            root[keyPath: path] = b
        }, write: { .bool($0[keyPath: path]) })
    }

    /// A string; with `oneOf`, only those values.
    public static func string(_ key: String, _ path: WritableKeyPath<Root, String>, oneOf: [String]? = nil) -> ConfigField {
        ConfigField(key: key, read: { root, v, p, errors in
            guard case .string(let s) = v, !s.isEmpty else { return errors.add(p, "expected a non-empty string, got \(v.shown)") }
            if let oneOf, !oneOf.contains(s) {
                return errors.add(p, "expected \(ConfigReader.list(oneOf)), got \"\(s)\"" + ConfigReader.suggestion(s, oneOf))
            }
            root[keyPath: path] = s
        }, write: { .string($0[keyPath: path]) })
    }

    /// A nested object with its own fields.
    public static func object<T>(_ key: String, _ path: WritableKeyPath<Root, T>, _ fields: [ConfigField<T>],
                                 what: String) -> ConfigField {
        ConfigField(key: key, read: { root, v, p, errors in
            ConfigReader.read(v, into: &root[keyPath: path], fields: fields, path: p, what: what, errors: &errors)
        }, write: { ConfigReader.write($0[keyPath: path], fields: fields) })
    }
}

public enum ConfigReader {
    /// Reads `value` (an object) into `root` field by field; unknown keys are errors suggesting the nearest known
    /// key, or explaining a key `elsewhere` knows (e.g. a setting of another stage kind).
    public static func read<Root>(_ value: JSONValue, into root: inout Root, fields: [ConfigField<Root>], path: String,
                                  what: String, elsewhere: [String: String] = [:], errors: inout ConfigErrors) {
        guard case .object(let object) = value else {
            return errors.add(path.isEmpty ? "config" : path, "expected an object, got \(value.shown)")
        }
        let byKey = Dictionary(uniqueKeysWithValues: fields.map { ($0.key, $0) })
        for key in object.keys.sorted() {
            let p = path.isEmpty ? key : path + "." + key
            guard let field = byKey[key] else {
                if let why = elsewhere[key] { errors.add(p, why); continue }
                errors.add(p, "unknown setting of \(what)" + suggestion(key, fields.map(\.key), listing: true))
                continue
            }
            field.read(&root, object[key]!, p, &errors)
        }
    }

    public static func write<Root>(_ root: Root, fields: [ConfigField<Root>]) -> JSONValue {
        .object(Dictionary(uniqueKeysWithValues: fields.map { ($0.key, $0.write(root)) }))
    }

    /// "; did you mean 'steps'?" when a known key is close, else (with `listing`) the known keys.
    static func suggestion(_ key: String, _ known: [String], listing: Bool = false) -> String {
        let k = key.lowercased()
        let scored = known.map { ($0, distance(k, $0.lowercased())) }.min { $0.1 < $1.1 }
        if let (best, d) = scored, d <= max(2, key.count / 3) { return "; did you mean '\(best)'?" }
        // A key cut short or run on ("vocab" for "vocab_size").
        if k.count >= 3, let best = known.first(where: { $0.lowercased().hasPrefix(k) || k.hasPrefix($0.lowercased()) }) {
            return "; did you mean '\(best)'?"
        }
        return listing ? " (known: \(known.sorted().joined(separator: ", ")))" : ""
    }

    static func list(_ values: [String]) -> String {
        values.count <= 1 ? values.joined() : values.dropLast().joined(separator: ", ") + " or " + values.last!
    }

    /// Levenshtein distance.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(1, a.count) where !a.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in 1...max(1, b.count) where !b.isEmpty {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return a.isEmpty ? b.count : row[b.count]
    }
}
