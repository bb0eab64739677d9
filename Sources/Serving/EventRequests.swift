// The Events service's requests, independent of the wire, and their checks: every bad field of a batch is refused
// before anything is written, with a status naming it ("events[3].item_id"). Limits are settings (EventLimits).
import Data
import Foundation

/// Bounds of the Events service; each refusal names the field and counts as a limit hit.
public struct EventLimits: Sendable, Equatable {
    /// Events per RecordEvents call.
    public var maxEventsPerCall = 1000
    /// Items per UpsertItems call.
    public var maxItemsPerCall = 1000
    /// GetUserHistory's largest `limit`.
    public var maxHistoryLimit = 10_000
    /// GetUserHistory's `limit` when the request leaves it 0.
    public var defaultHistoryLimit = 100
    /// How far past the server's clock an event's time may be, in seconds.
    public var maxFutureSeconds: Int64 = 86_400
    public init() {}

    static let maxKindBytes = 32
    static let maxKeyBytes = 128
    static let maxTitleBytes = 512
    static let maxGenres = 32
    static let maxGenreBytes = 64
    static let maxDescriptionBytes = 8192
    static let maxMetadataBytes = 16_384
    static let maxMetadataDepth = 64
    static let maxRating: Float = 1e6
}

/// One event as a RecordEvents request carries it.
public struct EventInput: Sendable, Equatable {
    public var userId: String
    public var itemId: String
    /// Unix seconds; 0 = the server's clock when it reads the request.
    public var timestamp: Int64
    /// "" = "interaction".
    public var kind: String
    /// 0 = none.
    public var rating: Float
    /// "" = none.
    public var idempotencyKey: String

    public init(userId: String, itemId: String, timestamp: Int64 = 0, kind: String = "", rating: Float = 0,
                idempotencyKey: String = "") {
        self.userId = userId; self.itemId = itemId; self.timestamp = timestamp; self.kind = kind; self.rating = rating
        self.idempotencyKey = idempotencyKey
    }
}

/// One item as an UpsertItems request carries it.
public struct ItemInput: Sendable, Equatable {
    public var itemId: String
    public var title: String
    public var year: Int
    public var genres: [String]
    public var description: String
    /// A JSON object; "" = {}.
    public var metadataJSON: String

    public init(itemId: String, title: String, year: Int = 0, genres: [String] = [], description: String = "",
                metadataJSON: String = "") {
        self.itemId = itemId; self.title = title; self.year = year; self.genres = genres; self.description = description
        self.metadataJSON = metadataJSON
    }
}

public struct RecordEventsResult: Sendable, Equatable {
    public var recorded: Int
    /// Indices of the events skipped as duplicates of a stored idempotency key, ascending.
    public var duplicates: [Int]
    public init(recorded: Int, duplicates: [Int]) { self.recorded = recorded; self.duplicates = duplicates }
}

public struct UpsertItemsResult: Sendable, Equatable {
    public var created: Int
    public var updated: Int
    public var catalogVersion: UInt64
    /// Loaded models that can recommend the new and changed items now.
    public var encodedBy: [String]
    public init(created: Int, updated: Int, catalogVersion: UInt64, encodedBy: [String]) {
        self.created = created; self.updated = updated; self.catalogVersion = catalogVersion; self.encodedBy = encodedBy
    }
}

enum EventChecks {
    /// A user or item id (Identifier's rule: 1..128 bytes, no control characters).
    static func id(_ value: String, field: String) throws {
        if let problem = Identifier.problem(value) { throw ServingError.invalid(field, problem) }
    }

    static func maxBytes(_ value: String, _ limit: Int, field: String) throws {
        let n = value.utf8.count
        guard n <= limit else { throw ServingError.invalid(field, "\(n) bytes, at most \(limit)") }
    }

    /// No C0/C1 control characters (tabs and line breaks included) and no U+FFFD (what invalid UTF-8 decodes to).
    static func noControl(_ value: String, field: String, allowLineBreaks: Bool = false) throws {
        if let problem = Identifier.controlProblem(value, allowLineBreaks: allowLineBreaks) {
            throw ServingError.invalid(field, problem)
        }
    }

    /// Checks a RecordEvents batch whole and returns its events as stored (times and kinds defaulted).
    /// `knownItem` says whether the catalogue has an item; an unknown one is NOT_FOUND naming the event.
    static func events(_ input: [EventInput], limits: EventLimits, now: Int64,
                       knownItem: (String) -> Bool) throws -> [UserEvent] {
        guard !input.isEmpty else { throw ServingError.invalid("events", "empty: send 1 to \(limits.maxEventsPerCall) events") }
        guard input.count <= limits.maxEventsPerCall else {
            throw ServingError(.invalidArgument, "events: \(input.count) exceeds the server's limit of \(limits.maxEventsPerCall)",
                               field: "events", limit: "events_per_call")
        }
        return try input.enumerated().map { i, e in
            let f = "events[\(i)]"
            try id(e.userId, field: "\(f).user_id")
            try id(e.itemId, field: "\(f).item_id")
            guard e.timestamp >= 0 else { throw ServingError.invalid("\(f).timestamp", "\(e.timestamp) is before 1970") }
            guard e.timestamp <= now + limits.maxFutureSeconds else {
                throw ServingError.invalid("\(f).timestamp",
                    "\(e.timestamp) is \(e.timestamp - now) s after the server's clock (\(now)); at most \(limits.maxFutureSeconds) s ahead")
            }
            let kind = e.kind.isEmpty ? UserEvent.defaultKind : e.kind
            guard kind.utf8.count <= EventLimits.maxKindBytes,
                  kind.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F || $0 == 0x2E || $0 == 0x2D }) else {
                throw ServingError.invalid("\(f).kind", "'\(kind.prefix(40))' is not 1..32 bytes of [a-z0-9_.-]")
            }
            guard e.rating.isFinite, abs(e.rating) <= EventLimits.maxRating else {
                throw ServingError.invalid("\(f).rating", "\(e.rating) is not a finite number in [-1e6, 1e6]")
            }
            try maxBytes(e.idempotencyKey, EventLimits.maxKeyBytes, field: "\(f).idempotency_key")
            try noControl(e.idempotencyKey, field: "\(f).idempotency_key")
            guard knownItem(e.itemId) else {
                throw ServingError(.notFound, "\(f).item_id: unknown item id '\(e.itemId)' (add it with UpsertItems first)",
                                   field: "\(f).item_id")
            }
            return UserEvent(userId: e.userId, itemId: e.itemId, timestamp: e.timestamp == 0 ? now : e.timestamp, kind: kind,
                             rating: e.rating, idempotencyKey: e.idempotencyKey)
        }
    }

    /// Checks an UpsertItems batch whole and returns its items as stored.
    static func items(_ input: [ItemInput], limits: EventLimits) throws -> [CatalogItem] {
        guard !input.isEmpty else { throw ServingError.invalid("items", "empty: send 1 to \(limits.maxItemsPerCall) items") }
        guard input.count <= limits.maxItemsPerCall else {
            throw ServingError(.invalidArgument, "items: \(input.count) exceeds the server's limit of \(limits.maxItemsPerCall)",
                               field: "items", limit: "items_per_call")
        }
        var first: [String: Int] = [:]
        return try input.enumerated().map { i, x in
            let f = "items[\(i)]"
            try id(x.itemId, field: "\(f).item_id")
            if let j = first[x.itemId] { throw ServingError.invalid("\(f).item_id", "'\(x.itemId)' repeats items[\(j)]") }
            first[x.itemId] = i
            guard !x.title.isEmpty else { throw ServingError.invalid("\(f).title", "empty: every item needs a title") }
            try maxBytes(x.title, EventLimits.maxTitleBytes, field: "\(f).title")
            try noControl(x.title, field: "\(f).title")
            guard x.genres.count <= EventLimits.maxGenres else {
                throw ServingError.invalid("\(f).genres", "\(x.genres.count) genres, at most \(EventLimits.maxGenres)")
            }
            for (g, genre) in x.genres.enumerated() {
                guard !genre.isEmpty else { throw ServingError.invalid("\(f).genres[\(g)]", "empty") }
                try maxBytes(genre, EventLimits.maxGenreBytes, field: "\(f).genres[\(g)]")
                try noControl(genre, field: "\(f).genres[\(g)]")
            }
            try maxBytes(x.description, EventLimits.maxDescriptionBytes, field: "\(f).description")
            try noControl(x.description, field: "\(f).description", allowLineBreaks: true)
            let metadata = x.metadataJSON.isEmpty ? "{}" : x.metadataJSON
            try maxBytes(metadata, EventLimits.maxMetadataBytes, field: "\(f).metadata_json")
            try jsonObject(metadata, field: "\(f).metadata_json")
            return CatalogItem(item: Item(id: x.itemId, title: x.title, year: x.year, genres: x.genres,
                                          description: x.description), metadataJSON: metadata)
        }
    }

    /// A JSON object, nested at most 64 deep (checked before the parser sees it, so no input can exhaust its stack).
    static func jsonObject(_ text: String, field: String) throws {
        var depth = 0, inString = false, escaped = false
        for b in text.utf8 {
            if inString {
                if escaped { escaped = false } else if b == 0x5C { escaped = true } else if b == 0x22 { inString = false }
                continue
            }
            switch b {
            case 0x22: inString = true
            case 0x5B, 0x7B:
                depth += 1
                guard depth <= EventLimits.maxMetadataDepth else {
                    throw ServingError.invalid(field, "nested deeper than \(EventLimits.maxMetadataDepth)")
                }
            case 0x5D, 0x7D: depth -= 1
            default: break
            }
        }
        let value: Any
        do {
            value = try JSONSerialization.jsonObject(with: Foundation.Data(text.utf8), options: [.fragmentsAllowed])
        } catch {
            let detail = ((error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String).map { ": \($0)" } ?? ""
            throw ServingError.invalid(field, "not valid JSON\(ClientText.clip(detail, limit: 200))")
        }
        guard value is [String: Any] else {
            throw ServingError.invalid(field, "valid JSON, but \(value is [Any] ? "an array" : "not an object"); give an object, {...}")
        }
    }

    static func user(_ userId: String, field: String = "user_id") throws { try id(userId, field: field) }

    static func historyLimit(_ limit: Int, limits: EventLimits) throws -> Int {
        guard limit <= limits.maxHistoryLimit else {
            throw ServingError(.invalidArgument, "limit: \(limit) exceeds the server's limit of \(limits.maxHistoryLimit)",
                               field: "limit", limit: "history_limit")
        }
        return limit == 0 ? limits.defaultHistoryLimit : limit
    }
}

extension StoreError {
    /// The status a store failure answers with: UNAVAILABLE is retryable; a full store is RESOURCE_EXHAUSTED.
    var serving: ServingError {
        switch self {
        case .unavailable(let m): return ServingError(.unavailable, "store unavailable (retry later): \(m)")
        case .full(let m): return ServingError(.resourceExhausted, "store full, nothing of this call was stored: \(m)")
        case .rejected(let field, let m):
            return field.isEmpty ? ServingError(.failedPrecondition, m) : ServingError(.notFound, "\(field): \(m)", field: field)
        case .unusable(let m): return ServingError(.failedPrecondition, "store unusable: \(m)")
        }
    }
}
