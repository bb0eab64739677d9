// The tools `r2ec mcp` offers an LLM agent (the InteRecAgent pattern: the agent plans, r2ec ranks, searches and
// records): their names, descriptions and JSON Schemas. Every schema is closed (additionalProperties false), so an
// argument the agent invents is refused by name instead of ignored.
import MCP

public enum ToolCatalog {
    public static let recommend = "recommend"
    public static let searchItems = "search_items"
    public static let getItems = "get_items"
    public static let similarItems = "similar_items"
    public static let recordFeedback = "record_feedback"

    public static let tools: [Tool] = [
        Tool(name: recommend, title: "Recommend items",
             description: """
                 Rank the catalogue for a user: by user_id (the server reads the user's stored history; a new user \
                 gets a cold-start answer) and/or by history, a list of item ids the user interacted with, oldest \
                 first. Items already in the history are left out unless include_seen is true. Returns rank, \
                 item_id, title and score (higher is better), and a calibrated probability when the model has one.
                 """,
             inputSchema: object([
                 "user_id": string("The backend's user id (needs a server started with --store)."),
                 "history": stringArray("Item ids the user interacted with, oldest first."),
                 "top_k": integer("How many items to return.", 1, 100, default: 10),
                 "exclude": stringArray("Item ids never to return."),
                 "include_seen": .object(["type": "boolean", "description": "Allow items of the history."]),
                 "model": string("A loaded model's name; omitted: the server's default model."),
             ]),
             annotations: .init(readOnlyHint: true, openWorldHint: false)),
        Tool(name: searchItems, title: "Search the catalogue",
             description: """
                 Find items by title substring (case-insensitive), genres (all must match), release-year range and \
                 metadata key/value pairs. Matches come most-rated first; total_matches counts them all, use offset \
                 to page.
                 """,
             inputSchema: object([
                 "query": string("Part of the title, e.g. \"star wars\"."),
                 "genres": stringArray("Genres the item must all have, e.g. [\"Comedy\", \"Romance\"]."),
                 "min_year": integer("Earliest release year.", 1, 9999),
                 "max_year": integer("Latest release year.", 1, 9999),
                 "metadata": .object([
                     "type": "object",
                     "description": "Top-level keys of the item's metadata JSON and the values they must have.",
                     "additionalProperties": .object(["type": ["string", "number", "boolean", "null"]]),
                 ]),
                 "limit": integer("Matches to return.", 1, 1000, default: 20),
                 "offset": integer("Matches to skip.", 0, 1_000_000_000, default: 0),
                 "model": string("A loaded model's name; omitted: the server's default model."),
             ]),
             annotations: .init(readOnlyHint: true, openWorldHint: false)),
        Tool(name: getItems, title: "Look items up",
             description: "Everything the catalogue holds about items: title, year, genres, description, rating "
                 + "count and mean, metadata JSON, creation time.",
             inputSchema: object(["item_ids": stringArray("Item ids to look up (1..100).", minItems: 1, maxItems: 100),
                                  "model": string("A loaded model's name; omitted: the server's default model.")],
                                 required: ["item_ids"]),
             annotations: .init(readOnlyHint: true, openWorldHint: false)),
        Tool(name: similarItems, title: "Similar items",
             description: "The items nearest to one item in the model's item space (the item itself left out), "
                 + "most similar first.",
             inputSchema: object(["item_id": string("The item to start from."),
                                  "top_k": integer("How many items to return.", 1, 100, default: 10),
                                  "model": string("A loaded model's name; omitted: the server's default model.")],
                                 required: ["item_id"]),
             annotations: .init(readOnlyHint: true, openWorldHint: false)),
        Tool(name: recordFeedback, title: "Record feedback",
             description: """
                 Record that a user interacted with an item (a view, click, like, purchase or rating). Stored before \
                 the tool answers; the user's next recommend reflects it. A repeated idempotency_key is a no-op, so \
                 a retried call is never counted twice (one is generated when omitted).
                 """,
             inputSchema: object([
                 "user_id": string("The backend's user id."),
                 "item_id": string("The item's id."),
                 "kind": string("What happened: 1..32 characters of [a-z0-9_.-], e.g. \"click\"; default \"interaction\"."),
                 "rating": .object(["type": "number", "description": "An explicit rating, e.g. 1..5."]),
                 "timestamp": integer("Unix seconds; omitted: now.", 0, 32_503_680_000),
                 "idempotency_key": string("Up to 128 bytes; a key already recorded makes the call a no-op."),
             ], required: ["user_id", "item_id"]),
             annotations: .init(destructiveHint: false, idempotentHint: true, openWorldHint: false)),
    ]

    static func object(_ properties: [String: Value], required: [String] = []) -> Value {
        var schema: [String: Value] = ["type": "object", "properties": .object(properties),
                                       "additionalProperties": false]
        if !required.isEmpty { schema["required"] = .array(required.map { .string($0) }) }
        return .object(schema)
    }

    static func string(_ description: String) -> Value {
        .object(["type": "string", "description": .string(description)])
    }

    static func integer(_ description: String, _ minimum: Int, _ maximum: Int, default value: Int? = nil) -> Value {
        var schema: [String: Value] = ["type": "integer", "description": .string(description),
                                       "minimum": .int(minimum), "maximum": .int(maximum)]
        if let value { schema["default"] = .int(value) }
        return .object(schema)
    }

    static func stringArray(_ description: String, minItems: Int = 0, maxItems: Int = 1000) -> Value {
        .object(["type": "array", "items": ["type": "string"], "description": .string(description),
                 "minItems": .int(minItems), "maxItems": .int(maxItems)])
    }
}
