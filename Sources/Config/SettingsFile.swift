// A YAML settings file: one mapping from option names (`max-connections: 512`) to scalars, or lists for the options
// that repeat. Anything else (an unknown key, a list for a single option, a nested mapping, no value) is an error
// naming the file, line and key.
import Foundation
import Yams

public enum SettingsFile {
    /// Reads and checks the file at `path` against `options`.
    public static func read(path: String, options: [OptionSpec]) throws -> [Setting] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(message: "\(path): cannot read the settings file (\((error as NSError).localizedDescription))")
        }
        return try parse(text, path: path, options: options)
    }

    /// Checks YAML `text` (named `path` in errors) against `options`.
    public static func parse(_ text: String, path: String, options: [OptionSpec]) throws -> [Setting] {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let YamlError.duplicatedKeysInMapping(duplicates, context) {
            let keys = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            throw ConfigError(message: "\(path):\(context.mark.line): \(keys) set more than once")
        } catch {
            throw ConfigError(message: "\(path): not valid YAML: \(error)")
        }
        guard let root else { return [] } // an empty file (or only comments) sets nothing
        guard let mapping = root.mapping else {
            throw ConfigError(message: "\(path):\(root.mark?.line ?? 1): expected a mapping of option names to values")
        }
        let byName = Dictionary(uniqueKeysWithValues: options.map { ($0.name, $0) })
        var settings: [Setting] = []
        var seen: [String: Int] = [:]
        for (keyNode, valueNode) in mapping {
            let line = keyNode.mark?.line ?? 0
            let place = "\(path):\(line)"
            guard let key = keyNode.scalar?.string else {
                throw ConfigError(message: "\(place): a key must be a plain name, not a list or mapping")
            }
            guard let option = byName[key] else {
                throw ConfigError(message: "\(place): unknown key '\(key)'" + suggestion(for: key, among: options))
            }
            if let first = seen[key] {
                throw ConfigError(message: "\(place): '\(key)' is set twice (first on line \(first))")
            }
            seen[key] = line
            settings.append(Setting(key: key, values: try values(of: valueNode, option: option, place: place),
                                    origin: .file(path: path, line: line)))
        }
        return settings
    }

    private static func values(of node: Node, option: OptionSpec, place: String) throws -> [String] {
        let key = option.name
        switch node {
        case let .scalar(scalar):
            if isNull(node) { throw ConfigError(message: "\(place): '\(key)' has no value") }
            if option.kind == .flag {
                switch scalar.string.lowercased() {
                case "true", "yes", "on": return ["true"]
                case "false", "no", "off": return ["false"]
                default: throw ConfigError(message: "\(place): '\(key)' is a flag: true or false, got '\(scalar.string)'")
                }
            }
            return [scalar.string]
        case let .sequence(sequence):
            guard option.repeats else {
                throw ConfigError(message: "\(place): '\(key)' takes one value, not a list")
            }
            return try sequence.map { element in
                guard let scalar = element.scalar, !isNull(element) else {
                    throw ConfigError(message: "\(place): '\(key)': every list entry must be a plain value")
                }
                return scalar.string
            }
        case .mapping:
            throw ConfigError(message: "\(place): '\(key)' takes \(option.repeats ? "a value or a list" : "one value"), not a mapping")
        case .alias:
            throw ConfigError(message: "\(place): '\(key)': aliases are not supported")
        }
    }

    /// `key:` with nothing after it, `~` or `null` (the tag resolved as YAML's core schema says).
    private static func isNull(_ node: Node) -> Bool { node.tag.rawValue == Tag.Name.null.rawValue }

    /// " (did you mean 'max-connections'?)" for the nearest key within a small edit distance, else a pointer to the
    /// key names.
    static func suggestion(for key: String, among options: [OptionSpec]) -> String {
        let dashed = key.replacingOccurrences(of: "_", with: "-")
        let nearest = options.map { ($0.name, editDistance(dashed, $0.name)) }.min { $0.1 < $1.1 }
        if let nearest, nearest.1 <= max(2, dashed.count / 4) {
            return " (did you mean '\(nearest.0)'?)"
        }
        return " (keys are the long names of the command's options, such as '\(options.first?.name ?? "")')"
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8), b = Array(b.utf8)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in stride(from: 1, through: b.count, by: 1) {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }
}
