// `r2ec call`: a one-shot client for scripts and smoke tests (health, recommend, items); the Python package is the
// full client.
import ArgumentParser
import Foundation
import R2ecProtoC
import RPC
import Serving

struct Call: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Call a running server once: health, recommend ITEM_ID..., or items ITEM_ID....")

    @Argument(help: "The server, HOST:PORT.") var target: String
    @Argument(help: "health | recommend | items") var method: String
    @Argument(help: "Item ids (recommend: the history, oldest first; items: ids to look up).") var itemIds: [String] = []
    @Option(help: "Items to return.") var topK = 10
    @Option(help: "Model to ask; default: the server's default.") var model = ""
    @Option(help: "Deadline in milliseconds; 0 = none.") var timeoutMs: Int64 = 0
    @Option(help: "File holding a bearer token.") var tokenFile: String?

    func run() throws {
        let parts = target.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("target: expected HOST:PORT") }
        let client = try Client(host: String(parts[0]), port: port)
        var metadata: [(String, String)] = []
        if let tokenFile {
            let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            metadata.append(("authorization", "Bearer \(token)"))
        }
        do {
            switch method {
            case "health":
                let r = try client.call("/r2ec.v1.Health/Check", [], timeoutMs: timeoutMs, metadata: metadata)
                print(r == [0x08, 0x01] ? "SERVING" : "NOT_SERVING")
            case "recommend":
                guard !itemIds.isEmpty else { throw ValidationError("recommend: give the history's item ids") }
                let r = try client.call("/r2ec.v1.Recommender/Recommend",
                                        RequestEncoding.recommend(itemIds: itemIds, topK: topK, model: model),
                                        timeoutMs: timeoutMs, metadata: metadata)
                for (rank, item) in RequestEncoding.recommendedItems(r).enumerated() {
                    let id = item.id.padding(toLength: max(8, item.id.count), withPad: " ", startingAt: 0)
                    print(String(format: "%2d  ", rank + 1) + id + String(format: " %10.4f  ", item.score) + item.title)
                }
            case "items":
                guard !itemIds.isEmpty else { throw ValidationError("items: give item ids") }
                let r = try client.call("/r2ec.v1.Recommender/GetItems", RequestEncoding.getItems(itemIds, model: model),
                                        timeoutMs: timeoutMs, metadata: metadata)
                for item in RequestEncoding.items(r) { print("\(item.id)\t\(item.title)") }
            default:
                throw ValidationError("method: expected health, recommend or items")
            }
        } catch ClientError.status(let e) {
            FileHandle.standardError.write(Data("error: \(e.code.name): \(e.message)\n".utf8))
            throw ExitCode(2)
        }
    }
}
