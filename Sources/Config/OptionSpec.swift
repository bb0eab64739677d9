// The long-named options of a command, as a settings file and the environment may set them: read from the command's
// own argument definitions (ArgumentParser's help dump), so the keys are never a second, hand-kept list.
import Foundation

public struct OptionSpec: Equatable, Sendable {
    public enum Kind: Sendable { case option, flag }
    /// The long name without its dashes: `max-connections` (the settings file's key).
    public let name: String
    public let kind: Kind
    /// An option that may be given several times (`--model A --model B`).
    public let repeats: Bool

    public init(name: String, kind: Kind, repeats: Bool) {
        (self.name, self.kind, self.repeats) = (name, kind, repeats)
    }

    /// The environment variable that overrides this key: `R2EC_MAX_CONNECTIONS` for `max-connections`.
    public var environmentName: String {
        "R2EC_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    /// The options and flags with a long name in ArgumentParser's help dump of one command (`Command._dumpHelp()`,
    /// JSON with `command.arguments[].names[]`), minus `excluding` (help, and the options that name the file itself).
    public static func table(helpDump json: String, excluding: Set<String>) throws -> [OptionSpec] {
        guard let root = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let command = root["command"] as? [String: Any],
              let arguments = command["arguments"] as? [[String: Any]] else {
            throw ConfigError(message: "the command's help dump has no command.arguments")
        }
        var table: [OptionSpec] = []
        for argument in arguments {
            let kind: Kind
            switch argument["kind"] as? String {
            case "option": kind = .option
            case "flag": kind = .flag
            default: continue // positional arguments have no key
            }
            let names = argument["names"] as? [[String: Any]] ?? []
            guard let long = names.first(where: { $0["kind"] as? String == "long" })?["name"] as? String,
                  !excluding.contains(long) else { continue }
            table.append(OptionSpec(name: long, kind: kind, repeats: argument["isRepeating"] as? Bool ?? false))
        }
        return table
    }
}
