// One key's values and where they came from: a settings file's line, an environment variable or the command line.

public enum SettingOrigin: Equatable, Sendable, CustomStringConvertible {
    case file(path: String, line: Int)
    case environment(String)
    case commandLine

    public var description: String {
        switch self {
        case let .file(path, line): return "\(path):\(line)"
        case let .environment(name): return "environment variable \(name)"
        case .commandLine: return "the command line"
        }
    }
}

public struct Setting: Equatable, Sendable {
    public let key: String
    /// One value for an option, one or more for a repeating option, "true"/"false" for a flag.
    public let values: [String]
    public let origin: SettingOrigin

    public init(key: String, values: [String], origin: SettingOrigin) {
        (self.key, self.values, self.origin) = (key, values, origin)
    }

    /// The command-line arguments that give this setting.
    func arguments(kind: OptionSpec.Kind) -> [String] {
        switch kind {
        case .flag: return values == ["true"] ? ["--\(key)"] : []
        case .option: return values.flatMap { ["--\(key)", $0] }
        }
    }
}
