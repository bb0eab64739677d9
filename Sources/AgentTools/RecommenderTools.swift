// Runs the agent tools: a call's arguments checked (ToolArguments), turned into one RPC to the r2ec server
// (ServerLink), and its answer returned as structured JSON plus the same JSON as text for clients that read only
// text. Refusals and server errors are tool results with isError set and "CODE: message" text, so the agent reads
// what to fix; only an unknown tool name is a protocol error.
import Foundation
import MCP
import RPC
import Serving

public final class RecommenderTools: Sendable {
    let link: ServerLink
    /// The model every call asks unless it names one ("" = the server's default).
    let defaultModel: String

    public init(link: ServerLink, defaultModel: String = "") {
        self.link = link
        self.defaultModel = defaultModel
    }

    /// Registers tools/list and tools/call on `server`.
    public func register(on server: MCP.Server) async {
        await server.withMethodHandler(ListTools.self) { _ in ListTools.Result(tools: ToolCatalog.tools) }
        await server.withMethodHandler(CallTool.self) { [self] params in
            try await self.call(params.name, params.arguments)
        }
    }

    public func call(_ name: String, _ arguments: [String: Value]?) async throws -> CallTool.Result {
        guard let tool = ToolCatalog.tools.first(where: { $0.name == name }) else {
            throw MCPError.invalidParams("unknown tool '\(name)' (tools: \(ToolCatalog.tools.map(\.name).joined(separator: ", ")))")
        }
        do {
            let args = try ToolArguments(arguments, tool: tool)
            let output: Value
            switch name {
            case ToolCatalog.recommend: output = try await recommend(args)
            case ToolCatalog.searchItems: output = try await searchItems(args)
            case ToolCatalog.getItems: output = try await getItems(args)
            case ToolCatalog.similarItems: output = try await similarItems(args)
            default: output = try await recordFeedback(args)
            }
            return try CallTool.Result(content: [.text(text: Self.text(output), annotations: nil, _meta: nil)],
                                   structuredContent: output)
        } catch let e as ToolError {
            return CallTool.Result(content: [.text(text: "\(e.code): \(e.message)", annotations: nil, _meta: nil)],
                                   isError: true)
        }
    }

    private func model(_ args: ToolArguments) throws -> String { try args.string("model") ?? defaultModel }

    private func recommend(_ args: ToolArguments) async throws -> Value {
        let user = try args.id("user_id") ?? ""
        let history = try args.strings("history", max: 1000) ?? []
        guard !user.isEmpty || !history.isEmpty else {
            throw ToolError.invalid("user_id", "give a user_id, a history, or both")
        }
        let request = RequestEncoding.recommend(
            itemIds: history, userId: user, topK: try args.int("top_k", 1...100) ?? 10,
            includeSeen: try args.bool("include_seen") ?? false, model: try model(args),
            exclude: try args.strings("exclude", max: 1000) ?? [], returnProbabilities: true)
        let answer = try ResponseDecoding.recommend(try await link.call("/r2ec.v1.Recommender/Recommend", request))
        return .object(["model": .string(answer.model), "items": .array(answer.items.map(Self.scored))])
    }

    private func searchItems(_ args: ToolArguments) async throws -> Value {
        var q = ItemSearchQuery()
        q.query = try args.string("query") ?? ""
        q.genres = try args.strings("genres", max: ItemSearch.maxFilters) ?? []
        q.minYear = try args.int("min_year", 1...9999) ?? 0
        q.maxYear = try args.int("max_year", 1...9999) ?? 0
        q.metadata = (try args.scalars("metadata", max: ItemSearch.maxFilters) ?? []).map { MetadataFilter(key: $0.key, value: $0.value) }
        q.limit = try args.int("limit", 1...ItemSearch.maxLimit) ?? ItemSearch.defaultLimit
        q.offset = try args.int("offset", 0...1_000_000_000) ?? 0
        q.model = try model(args)
        let found = try ResponseDecoding.searchItems(try await link.call("/r2ec.v1.Recommender/SearchItems",
                                                                         RequestEncoding.searchItems(q)))
        return .object(["total_matches": .int(found.totalMatches), "offset": .int(q.offset),
                        "items": .array(found.items.map(Self.item))])
    }

    private func getItems(_ args: ToolArguments) async throws -> Value {
        let ids = try args.strings("item_ids", max: 100) ?? []
        guard !ids.isEmpty else { throw ToolError.invalid("item_ids", "empty: name the items to look up") }
        let items = try ResponseDecoding.getItems(try await link.call("/r2ec.v1.Recommender/GetItems",
                                                                      RequestEncoding.getItems(ids, model: try model(args))))
        return .object(["items": .array(items.map(Self.item))])
    }

    private func similarItems(_ args: ToolArguments) async throws -> Value {
        let request = RequestEncoding.similarItems(try args.id("item_id") ?? "", topK: try args.int("top_k", 1...100) ?? 10,
                                                   model: try model(args))
        let items = try ResponseDecoding.similarItems(try await link.call("/r2ec.v1.Recommender/SimilarItems", request))
        return .object(["items": .array(items.map(Self.scored))])
    }

    private func recordFeedback(_ args: ToolArguments) async throws -> Value {
        let key = try args.string("idempotency_key") ?? "mcp-\(UUID().uuidString)"
        let event = EventInput(userId: try args.id("user_id") ?? "", itemId: try args.id("item_id") ?? "",
                               timestamp: Int64(try args.int("timestamp", 0...32_503_680_000) ?? 0),
                               kind: try args.string("kind") ?? "", rating: Float(try args.number("rating") ?? 0),
                               idempotencyKey: key)
        let result = try ResponseDecoding.recordEvents(try await link.call("/r2ec.v1.Events/RecordEvents",
                                                                           RequestEncoding.recordEvents([event])))
        return .object(["recorded": .bool(result.recorded == 1), "duplicate": .bool(!result.duplicates.isEmpty),
                        "idempotency_key": .string(key)])
    }

    static func scored(_ s: ScoredItemResult) -> Value {
        var o: [String: Value] = ["rank": .int(s.rank), "item_id": .string(s.itemId), "title": .string(s.title),
                                  "score": .double(Double(s.score))]
        if let p = s.probability { o["probability"] = .double(Double(p)) }
        return .object(o)
    }

    static func item(_ i: ItemInfo) -> Value {
        var o: [String: Value] = ["item_id": .string(i.itemId), "title": .string(i.title),
                                  "genres": .array(i.genres.map { .string($0) }),
                                  "num_ratings": .int(i.numRatings), "mean_rating": .double(Double(i.meanRating))]
        if i.year != 0 { o["year"] = .int(i.year) }
        if !i.description.isEmpty { o["description"] = .string(i.description) }
        if i.metadataJSON != "{}", !i.metadataJSON.isEmpty,
           let metadata = try? JSONDecoder().decode(Value.self, from: Data(i.metadataJSON.utf8)) {
            o["metadata"] = metadata
        }
        if i.created != 0 { o["created"] = .int(Int(i.created)) }
        return .object(o)
    }

    static func text(_ v: Value) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(v)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }
}
