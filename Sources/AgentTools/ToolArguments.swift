// A tool call's arguments checked against the tool's schema by hand, so every refusal names the argument and says
// what was expected: an unknown name, a wrong JSON type, a number out of range, an empty id.
import MCP

public struct ToolError: Error, Equatable {
    /// A gRPC-style status name: INVALID_ARGUMENT for the agent's mistakes, else the server's own status.
    public var code: String
    public var message: String
    public init(_ code: String, _ message: String) { self.code = code; self.message = message }
    static func invalid(_ field: String, _ problem: String) -> ToolError { ToolError("INVALID_ARGUMENT", "\(field): \(problem)") }
}

struct ToolArguments {
    let values: [String: Value]

    /// The arguments of a call to `tool`; names the schema does not list are refused.
    init(_ arguments: [String: Value]?, tool: Tool) throws {
        values = arguments ?? [:]
        let known = tool.inputSchema.objectValue?["properties"]?.objectValue ?? [:]
        if let unknown = values.keys.sorted().first(where: { known[$0] == nil }) {
            throw ToolError.invalid(unknown, "unknown argument (expected one of: \(known.keys.sorted().joined(separator: ", ")))")
        }
        for name in tool.inputSchema.objectValue?["required"]?.arrayValue?.compactMap(\.stringValue) ?? []
        where values[name] == nil || values[name] == .null {
            throw ToolError.invalid(name, "required")
        }
    }

    func string(_ name: String) throws -> String? {
        guard let v = present(name) else { return nil }
        guard let s = v.stringValue else { throw ToolError.invalid(name, "expected a string, got \(kind(v))") }
        return s
    }

    /// A non-empty string (ids).
    func id(_ name: String) throws -> String? {
        guard let s = try string(name) else { return nil }
        guard !s.isEmpty else { throw ToolError.invalid(name, "empty") }
        return s
    }

    func int(_ name: String, _ range: ClosedRange<Int>) throws -> Int? {
        guard let v = present(name) else { return nil }
        let n: Int
        switch v {
        case .int(let i): n = i
        case .double(let d) where d.rounded() == d && abs(d) < 1e15: n = Int(d)
        default: throw ToolError.invalid(name, "expected an integer, got \(kind(v))")
        }
        guard range.contains(n) else { throw ToolError.invalid(name, "\(n) is out of range \(range.lowerBound)...\(range.upperBound)") }
        return n
    }

    func number(_ name: String) throws -> Double? {
        guard let v = present(name) else { return nil }
        switch v {
        case .int(let i): return Double(i)
        case .double(let d) where d.isFinite: return d
        default: throw ToolError.invalid(name, "expected a number, got \(kind(v))")
        }
    }

    func bool(_ name: String) throws -> Bool? {
        guard let v = present(name) else { return nil }
        guard let b = v.boolValue else { throw ToolError.invalid(name, "expected true or false, got \(kind(v))") }
        return b
    }

    func strings(_ name: String, max: Int) throws -> [String]? {
        guard let v = present(name) else { return nil }
        guard let list = v.arrayValue else { throw ToolError.invalid(name, "expected a list of strings, got \(kind(v))") }
        guard list.count <= max else { throw ToolError.invalid(name, "\(list.count) entries exceed the limit of \(max)") }
        return try list.enumerated().map { i, e in
            guard let s = e.stringValue else { throw ToolError.invalid("\(name)[\(i)]", "expected a string, got \(kind(e))") }
            guard !s.isEmpty else { throw ToolError.invalid("\(name)[\(i)]", "empty") }
            return s
        }
    }

    /// An object of JSON scalars, each as its filter text (strings as themselves, others as JSON text).
    func scalars(_ name: String, max: Int) throws -> [(key: String, value: String)]? {
        guard let v = present(name) else { return nil }
        guard let object = v.objectValue else { throw ToolError.invalid(name, "expected an object, got \(kind(v))") }
        guard object.count <= max else { throw ToolError.invalid(name, "\(object.count) keys exceed the limit of \(max)") }
        return try object.keys.sorted().map { key in
            switch object[key]! {
            case .string(let s): return (key, s)
            case .int(let i): return (key, String(i))
            case .double(let d) where d.isFinite: return (key, d.rounded() == d && abs(d) < 1e15 ? String(Int(d)) : String(d))
            case .bool(let b): return (key, b ? "true" : "false")
            case .null: return (key, "null")
            case let other: throw ToolError.invalid("\(name).\(key)", "expected a string, number, boolean or null, got \(kind(other))")
            }
        }
    }

    /// The value, or nil when absent or JSON null (null means "not given", as an omitted argument).
    private func present(_ name: String) -> Value? {
        guard let v = values[name], v != .null else { return nil }
        return v
    }

    private func kind(_ v: Value) -> String {
        switch v {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .data: return "data"
        case .array: return "a list"
        case .object: return "an object"
        }
    }
}
