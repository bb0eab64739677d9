// `r2ec serve` as a child process of a benchmark: its ports read from its "listening on" line, its log (stderr) in a
// file, its resident memory from /proc.
import ArgumentParser
import Foundation

final class ServerProcess {
    let process = Process()
    let port: Int
    /// The metrics endpoint's port, when the arguments asked for one.
    let metricsPort: Int?
    var pid: Int32 { process.processIdentifier }

    /// `logPath`: where the server's stderr goes (inherited when nil).
    init(arguments: [String], logPath: String? = nil) throws {
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        if let logPath {
            FileManager.default.createFile(atPath: logPath, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: logPath)
        }
        try process.run()
        var line = Data()
        while true {
            let byte = out.fileHandleForReading.readData(ofLength: 1)
            guard !byte.isEmpty else { throw ValidationError("the server exited before listening") }
            if byte.first == 10, String(decoding: line, as: UTF8.self).contains("listening on") { break }
            line += byte
            if byte.first == 10 { line.removeAll() }
        }
        let text = String(decoding: line, as: UTF8.self)
        guard let range = text.range(of: #":(\d+) "#, options: .regularExpression),
              let p = Int(text[range].dropFirst().dropLast()) else { throw ValidationError("no port in '\(text)'") }
        port = p
        metricsPort = text.range(of: #"metrics on http://[^ ]*:(\d+)/"#, options: .regularExpression).flatMap { r in
            Int(text[r].split(separator: ":").last!.dropLast())
        }
    }

    func signal(_ s: Int32) { Foundation.kill(pid, s) }
    func kill() { if process.isRunning { signal(SIGKILL) } }

    func wait(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Resident set size from /proc.
    func rssKiB() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
        return 0
    }
}
