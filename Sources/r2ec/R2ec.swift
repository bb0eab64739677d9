// The r2ec command-line program: serve, train, eval, store, data, bench, call.
import ArgumentParser
import Config
import Foundation

@main
struct R2ecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "r2ec",
        abstract: "A dual-head recommender network: serve, train, evaluate, benchmark, make data.",
        version: R2ecVersion.current,
        subcommands: [Serve.self, Call.self, TrainCommand.self, TuneCommand.self, EvalCommand.self, StoreCommand.self, DataCommand.self,
                      Bench.self, MCPCommand.self]
    )

    /// Parses and runs like ArgumentParser's own main, after folding `serve`'s settings file and R2EC_* environment
    /// variables into its arguments (Serve.settings); a parse error names the file line or variable that set the value.
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        var settings: CommandSettings?
        if arguments.first == "serve" {
            do {
                let resolved = try Serve.settings(commandLine: Array(arguments.dropFirst()),
                                                  environment: ProcessInfo.processInfo.environment)
                arguments = ["serve"] + resolved.arguments
                settings = resolved
            } catch {
                FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
                Foundation.exit(ExitCode.validationFailure.rawValue)
            }
            Serve.resolvedSettings = settings?.settings ?? []
        }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch {
            let code = exitCode(for: error)
            guard let settings, !code.isSuccess else { exit(withError: error) }
            let message = settings.annotate(fullMessage(for: error))
            FileHandle.standardError.write(Data((message.hasSuffix("\n") ? message : message + "\n").utf8))
            Foundation.exit(code.rawValue)
        }
    }
}
