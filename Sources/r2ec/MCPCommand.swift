// `r2ec mcp`: an MCP server (Model Context Protocol) in front of a running r2ec server, so an LLM agent can drive
// r2ec as InteRecAgent drives its tools: recommend, search_items, get_items, similar_items, record_feedback. Each
// tool call is one RPC over the custom protocol; the agent sees JSON. Speaks MCP over stdio (the default: an
// agent host starts it as a subprocess) or over Streamable HTTP (`--http HOST:PORT`, POST /mcp, stateless).
import AgentTools
import ArgumentParser
import Foundation
import MCP
import Logging

struct MCPCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "Serve r2ec's agent tools over the Model Context Protocol (stdio, or HTTP with --http).",
        discussion: """
            Tools (JSON Schemas in tools/list; docs/mcp.md): recommend (user_id and/or history -> ranked items), \
            search_items (title substring, genres, year range, metadata filters), get_items (item facts), \
            similar_items (nearest items), record_feedback (one event, stored before the answer; idempotent).
            A refused argument or a server error is a tool result with isError true and "CODE: message" text \
            naming the field, so the agent can correct itself. The server at TARGET must be running \
            (`r2ec serve`); record_feedback and recommend by user_id need it started with --store.
            Example (stdio, as an agent host's config runs it): r2ec mcp 127.0.0.1:50051
            Example (HTTP): r2ec mcp 127.0.0.1:50051 --http 127.0.0.1:8765   (endpoint http://127.0.0.1:8765/mcp)
            """)

    @Argument(help: "The r2ec server, HOST:PORT.") var target: String
    @Option(help: "Serve MCP over HTTP at HOST:PORT (POST /mcp) instead of stdio. Port 0 picks a free port (printed on stderr).")
    var http: String?
    @Option(help: "File holding the server's bearer token (serve --token-file).") var tokenFile: String?
    @Option(help: "Model every tool asks unless a call names one; default: the server's default model.") var model = ""
    @Option(help: "Deadline of each RPC in milliseconds (1..600000).") var timeoutMs: Int64 = 10_000
    @Option(help: "Concurrent HTTP connections (1..4096); more are answered 503.") var maxConnections = 64

    func validate() throws {
        guard (1...600_000).contains(timeoutMs) else { throw ValidationError("--timeout-ms: \(timeoutMs) is out of range 1...600000") }
        guard (1...4096).contains(maxConnections) else {
            throw ValidationError("--max-connections: \(maxConnections) is out of range 1...4096")
        }
    }

    func run() throws {
        var token: String?
        if let tokenFile {
            do {
                token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            } catch { throw ValidationError("--token-file: cannot read '\(tokenFile)': \(error.localizedDescription)") }
        }
        let link: ServerLink
        do { link = try ServerLink(target: target, token: token, timeoutMs: timeoutMs) } catch let e as ToolError {
            throw ValidationError(e.message)
        }
        let tools = RecommenderTools(link: link, defaultModel: model)
        let instructions = "Recommendations, catalogue search and feedback from an r2ec server at \(target)."
        let makeServer: @Sendable () async -> MCP.Server = {
            let server = MCP.Server(name: "r2ec", version: R2ecVersion.current, instructions: instructions,
                                    capabilities: .init(tools: .init(listChanged: false)))
            await tools.register(on: server)
            return server
        }
        if let http {
            guard let colon = http.lastIndex(of: ":"), let port = Int(http[http.index(after: colon)...]),
                  (0...65535).contains(port) else { throw ValidationError("--http: expected HOST:PORT, got '\(http)'") }
            let listener: MCPHTTPServer
            do {
                listener = try MCPHTTPServer(host: String(http[..<colon]), port: port, maxConnections: maxConnections,
                                             makeServer: makeServer)
            } catch let e as ToolError { throw ValidationError(e.message) }
            FileHandle.standardError.write(Data("r2ec mcp: serving http://\(http[..<colon]):\(listener.port)\(MCPHTTPServer.path) for \(target)\n".utf8))
            listener.run()
        } else {
            try wait {
                let server = await makeServer()
                try await server.start(transport: StdioTransport())
                await server.waitUntilCompleted()
            }
        }
    }

    /// Runs async work to its end on the cooperative pool while the main thread waits.
    private func wait(_ work: @escaping @Sendable () async throws -> Void) throws {
        let done = DispatchSemaphore(value: 0)
        let failure = FailureBox()
        Task {
            do { try await work() } catch { failure.error = error }
            done.signal()
        }
        done.wait()
        if let error = failure.error { throw error }
    }
}

private final class FailureBox: @unchecked Sendable {
    var error: Error?
}
