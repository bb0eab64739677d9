// The agent tools' one connection to a running r2ec server over the custom protocol. Calls are serialised on one
// queue (an agent calls its tools one at a time); a connection that broke is reopened once per call, and only for
// calls that are safe to repeat (record_feedback always carries an idempotency key, so every tool call is).
import Dispatch
import Foundation
import RPC
import Serving

public final class ServerLink: @unchecked Sendable {
    public let host: String
    public let port: Int
    let metadata: [(String, String)]
    let timeoutMs: Int64
    private let queue = DispatchQueue(label: "r2ec-mcp-link")
    private var client: Client?

    /// `target` is HOST:PORT; `token` the bearer token, if the server wants one.
    public init(target: String, token: String?, timeoutMs: Int64) throws {
        guard let colon = target.lastIndex(of: ":"), let port = Int(target[target.index(after: colon)...]),
              (1...65535).contains(port), colon != target.startIndex else {
            throw ToolError("INVALID_ARGUMENT", "target: expected HOST:PORT, got '\(target)'")
        }
        host = String(target[..<colon])
        self.port = port
        metadata = token.map { [("authorization", "Bearer \($0)")] } ?? []
        self.timeoutMs = timeoutMs
    }

    /// One unary call; a non-OK status becomes a ToolError carrying the server's code and message.
    public func call(_ method: String, _ request: [UInt8]) async throws -> [UInt8] {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try self.callNow(method, request) }) }
        }
    }

    private func callNow(_ method: String, _ request: [UInt8]) throws -> [UInt8] {
        for attempt in 0..<2 {
            do {
                if client == nil { client = try Client(host: host, port: port) }
                return try client!.call(method, request, timeoutMs: timeoutMs, metadata: metadata)
            } catch ClientError.status(let status) {
                throw ToolError(status.code.name, status.message)
            } catch {
                client?.close()
                client = nil
                if attempt == 1 {
                    throw ToolError("UNAVAILABLE", "the r2ec server at \(host):\(port) did not answer: \(error)")
                }
            }
        }
        throw ToolError("UNAVAILABLE", "unreachable")
    }
}
