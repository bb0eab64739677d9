// Settings files and R2EC_* variables against a real ArgumentParser command: the keys come from its help dump and
// the folded arguments are parsed by ArgumentParser itself (the independent peer), never compared to our own output.
import ArgumentParser
@testable import Config
import XCTest

private struct Toy: ParsableCommand {
    @Option var host = "127.0.0.1"
    @Option var port = 7878
    @Option var maxConnections = 4096
    @Option(name: .customLong("model")) var models: [String] = []
    @Option var drainGrace = 0.0
    @Flag var verbose = false
    @Option var config: String?
}

final class SettingsTests: XCTestCase {
    private var options: [OptionSpec] {
        get throws { try OptionSpec.table(helpDump: Toy._dumpHelp(), excluding: ["help", "config"]) }
    }

    private func resolve(_ yaml: String?, env: [String: String] = [:], cli: [String] = []) throws -> (Toy, CommandSettings) {
        let options = try self.options
        let commandLine = yaml == nil ? cli : ["--config", "toy.yaml"] + cli
        let settings = try CommandSettings.resolve(commandLine: commandLine, environment: env, options: options,
                                                   readFile: { path, options in
                                                       try SettingsFile.parse(yaml ?? "", path: path, options: options)
                                                   })
        return (try Toy.parse(settings.arguments), settings)
    }

    private func assertError(_ yaml: String?, env: [String: String] = [:], contains parts: [String],
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try resolve(yaml, env: env), file: file, line: line) { error in
            let text = "\(error)"
            for part in parts { XCTAssertTrue(text.contains(part), "'\(text)' lacks '\(part)'", file: file, line: line) }
        }
    }

    func testKeysAreTheCommandsLongNames() throws {
        let table = try options
        XCTAssertEqual(table.map(\.name), ["host", "port", "max-connections", "model", "drain-grace", "verbose"])
        XCTAssertEqual(table.first { $0.name == "model" }?.repeats, true)
        XCTAssertEqual(table.first { $0.name == "verbose" }?.kind, .flag)
        XCTAssertEqual(table.first { $0.name == "max-connections" }?.environmentName, "R2EC_MAX_CONNECTIONS")
    }

    func testFileSetsEveryKindOfOption() throws {
        let (toy, _) = try resolve("""
            # a comment
            host: 0.0.0.0
            port: 9000
            model: [wals, popularity]
            drain-grace: 2.5
            verbose: true
            """)
        XCTAssertEqual(toy.host, "0.0.0.0")
        XCTAssertEqual(toy.port, 9000)
        XCTAssertEqual(toy.models, ["wals", "popularity"])
        XCTAssertEqual(toy.drainGrace, 2.5)
        XCTAssertTrue(toy.verbose)
        XCTAssertEqual(toy.maxConnections, 4096)
        let (single, _) = try resolve("model: bpr\nverbose: false\n")
        XCTAssertEqual(single.models, ["bpr"])
        XCTAssertFalse(single.verbose)
        let (empty, _) = try resolve("# nothing set\n")
        XCTAssertEqual(empty.port, 7878)
    }

    func testUnknownKeyNamesKeyFileAndLine() {
        assertError("port: 1\n\nmax-conections: 5\n", contains: ["toy.yaml:3", "unknown key 'max-conections'",
                                                               "did you mean 'max-connections'"])
        assertError("max_connections: 5\n", contains: ["toy.yaml:1", "'max_connections'", "did you mean 'max-connections'"])
        assertError("zzzzzzzzzzzzzzzz: 1\n", contains: ["unknown key 'zzzzzzzzzzzzzzzz'", "long names"])
        // config and help are not settings of the file.
        assertError("config: other.yaml\n", contains: ["unknown key 'config'"])
    }

    func testBadShapesAreErrorsNamingTheKey() {
        assertError("port: [1, 2]\n", contains: ["toy.yaml:1", "'port' takes one value, not a list"])
        assertError("host:\n", contains: ["toy.yaml:1", "'host' has no value"])
        assertError("host: {a: 1}\n", contains: ["'host' takes one value, not a mapping"])
        assertError("model: [wals, [x]]\n", contains: ["'model': every list entry must be a plain value"])
        assertError("verbose: maybe\n", contains: ["'verbose' is a flag"])
        assertError("- port\n- 1\n", contains: ["toy.yaml:1", "expected a mapping"])
        assertError("port: 1\nport: 2\n", contains: ["toy.yaml:", "'port' set more than once"])
        assertError("port: [1\n", contains: ["toy.yaml: not valid YAML"])
    }

    func testBadValueIsTheParsersErrorWithItsOrigin() throws {
        let options = try self.options
        let settings = try CommandSettings.resolve(
            commandLine: ["--config", "toy.yaml"], environment: ["R2EC_MAX_CONNECTIONS": "many"], options: options,
            readFile: { try SettingsFile.parse("host: h\n\nport: seven\n", path: $0, options: $1) })
        XCTAssertThrowsError(try Toy.parse(settings.arguments)) { error in
            let message = settings.annotate(Toy.message(for: error))
            XCTAssertTrue(message.contains("--port was set by toy.yaml:3") || message.contains("--max-connections was set by environment variable R2EC_MAX_CONNECTIONS"), message)
        }
    }

    func testEnvironmentOverridesFileAndCommandLineOverridesBoth() throws {
        let yaml = "port: 9000\nhost: filehost\nmodel: [a, b]\n"
        let (toy, settings) = try resolve(yaml, env: ["R2EC_PORT": "9100", "R2EC_MODEL": "c, d", "R2EC_BIN": "/x"])
        XCTAssertEqual(toy.port, 9100)
        XCTAssertEqual(toy.host, "filehost")
        XCTAssertEqual(toy.models, ["c", "d"])
        XCTAssertEqual(settings.settings.first { $0.key == "port" }?.origin, .environment("R2EC_PORT"))
        XCTAssertEqual(settings.settings.first { $0.key == "host" }?.origin, .file(path: "toy.yaml", line: 2))

        let (cli, _) = try resolve(yaml, env: ["R2EC_PORT": "9100"], cli: ["--port=9200", "--model", "e"])
        XCTAssertEqual(cli.port, 9200)
        XCTAssertEqual(cli.models, ["e"])
        XCTAssertEqual(cli.host, "filehost")

        let (flag, _) = try resolve(nil, env: ["R2EC_VERBOSE": "1", "R2EC_DRAIN_GRACE": "4"])
        XCTAssertTrue(flag.verbose)
        XCTAssertEqual(flag.drainGrace, 4)
    }

    func testBadEnvironmentValuesNameTheVariable() {
        assertError(nil, env: ["R2EC_VERBOSE": "perhaps"], contains: ["R2EC_VERBOSE", "flag"])
        assertError(nil, env: ["R2EC_PORT": ""], contains: ["R2EC_PORT: empty"])
        assertError(nil, env: ["R2EC_MODEL": "a,,b"], contains: ["R2EC_MODEL: an empty entry"])
    }

    func testConfigGivenTwiceOrWithoutFile() throws {
        let options = try self.options
        XCTAssertThrowsError(try CommandSettings.resolve(commandLine: ["--config", "a", "--config=b"], environment: [:],
                                                         options: options)) { XCTAssertTrue("\($0)".contains("2 times")) }
        XCTAssertThrowsError(try CommandSettings.resolve(commandLine: ["--config"], environment: [:], options: options))
    }

    func testMissingFileIsAnErrorNamingIt() throws {
        let options = try self.options
        XCTAssertThrowsError(try CommandSettings.resolve(commandLine: ["--config", "/nonexistent/r2ec.yaml"],
                                                         environment: [:], options: options)) {
            XCTAssertTrue("\($0)".contains("/nonexistent/r2ec.yaml: cannot read"), "\($0)")
        }
    }

    func testEditDistance() {
        XCTAssertEqual(SettingsFile.editDistance("kitten", "sitting"), 3)
        XCTAssertEqual(SettingsFile.editDistance("", "abc"), 3)
        XCTAssertEqual(SettingsFile.editDistance("abc", ""), 3)
        XCTAssertEqual(SettingsFile.editDistance("port", "port"), 0)
    }
}
