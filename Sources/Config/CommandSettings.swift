// A command's arguments from three layers, later ones winning per key: the settings file (--config FILE), then
// R2EC_* environment variables, then the command line itself. The result is a plain argument list that the
// command's own parser checks, so every value meets the same validation wherever it was written.

public struct CommandSettings: Equatable {
    /// The arguments to parse: the file's and environment's settings first, then the command line unchanged.
    public let arguments: [String]
    /// Where each key set outside the command line came from (for error messages and --check-config).
    public let settings: [Setting]

    /// `commandLine` holds the command's own arguments (after its name). `--config FILE` (or `--config=FILE`) in it
    /// names the settings file, read with `readFile` (SettingsFile.read by default).
    public static func resolve(
        commandLine: [String], environment: [String: String], options: [OptionSpec],
        readFile: (String, [OptionSpec]) throws -> [Setting] = { try SettingsFile.read(path: $0, options: $1) }
    ) throws -> CommandSettings {
        let fileSettings = try configPath(in: commandLine).map { try readFile($0, options) } ?? []
        let environmentSettings = try environmentSettings(environment, options: options)
        let onCommandLine = keysGiven(in: commandLine)
        var layered: [String: Setting] = [:]
        var order: [String] = []
        for setting in fileSettings + environmentSettings where !onCommandLine.contains(setting.key) {
            if layered[setting.key] == nil { order.append(setting.key) }
            layered[setting.key] = setting
        }
        let kinds = Dictionary(uniqueKeysWithValues: options.map { ($0.name, $0.kind) })
        let settings = order.compactMap { layered[$0] }
        let arguments = settings.flatMap { $0.arguments(kind: kinds[$0.key] ?? .option) } + commandLine
        return CommandSettings(arguments: arguments, settings: settings)
    }

    /// The settings file named by --config, if any; given twice is an error.
    static func configPath(in commandLine: [String]) throws -> String? {
        var paths: [String] = []
        var index = 0
        while index < commandLine.count {
            let argument = commandLine[index]
            if argument == "--" { break }
            if argument == "--config" {
                guard index + 1 < commandLine.count else { throw ConfigError(message: "--config: needs a file") }
                paths.append(commandLine[index + 1])
                index += 1
            } else if argument.hasPrefix("--config=") {
                paths.append(String(argument.dropFirst("--config=".count)))
            }
            index += 1
        }
        guard paths.count <= 1 else { throw ConfigError(message: "--config: given \(paths.count) times; give one file") }
        return paths.first
    }

    /// The long option names the command line gives (`--port 1` and `--port=1` both give `port`).
    static func keysGiven(in commandLine: [String]) -> Set<String> {
        var keys = Set<String>()
        for argument in commandLine {
            if argument == "--" { break }
            guard argument.hasPrefix("--") else { continue }
            keys.insert(String(argument.dropFirst(2).prefix { $0 != "=" }))
        }
        return keys
    }

    /// R2EC_KEY variables for the keys of `options` (R2EC_MAX_CONNECTIONS=512). A repeating option takes a
    /// comma-separated list; a flag true or false. Other R2EC_* variables are not settings and are left alone.
    static func environmentSettings(_ environment: [String: String], options: [OptionSpec]) throws -> [Setting] {
        try options.compactMap { option in
            let name = option.environmentName
            guard let text = environment[name] else { return nil }
            let values: [String]
            switch option.kind {
            case .flag:
                switch text.lowercased() {
                case "1", "true", "yes", "on": values = ["true"]
                case "0", "false", "no", "off", "": values = ["false"]
                default: throw ConfigError(message: "\(name): '\(option.name)' is a flag: true or false, got '\(text)'")
                }
            case .option where option.repeats:
                values = text.split(separator: ",", omittingEmptySubsequences: false)
                    .map { String($0).trimmingWhitespace() }
                if values.contains("") { throw ConfigError(message: "\(name): an empty entry in '\(text)'") }
            case .option:
                guard !text.isEmpty else { throw ConfigError(message: "\(name): empty (unset it to use the default)") }
                values = [text]
            }
            return Setting(key: option.name, values: values, origin: .environment(name))
        }
    }

    /// `message` (the parser's error) with the origin of each file or environment key it names, so a bad value
    /// points back to the line that set it.
    public func annotate(_ message: String) -> String {
        let named = settings.filter { message.contains("--\($0.key) ") || message.contains("--\($0.key)'")
            || message.contains("--\($0.key):") || message.hasSuffix("--\($0.key)") }
        guard !named.isEmpty else { return message }
        let origins = named.map { "--\($0.key) was set by \($0.origin)" }.joined(separator: "; ")
        // After the first line (the error itself), before ArgumentParser's help and usage lines.
        let end = message.firstIndex(of: "\n") ?? message.endIndex
        return message[..<end] + " (" + origins + ")" + message[end...]
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s = s.dropFirst() }
        while s.last?.isWhitespace == true { s = s.dropLast() }
        return String(s)
    }
}
