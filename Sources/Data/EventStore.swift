// The store of the live loop: the source of truth for the catalogue, the users and what they did. One protocol,
// implemented by the Store target over SQLite and PostgreSQL (`--store URL`); Serving and the command line use it
// without knowing which. A write returns (or calls back) only after it is committed: that is what "acknowledged"
// means on the wire (docs/protocol.md, "The Events service").
import Foundation

/// One thing a user did with an item, as the store keeps it.
public struct UserEvent: Sendable, Equatable {
    /// The backend's own user id.
    public var userId: String
    /// A catalogue item id (the store holds the item).
    public var itemId: String
    /// Unix seconds.
    public var timestamp: Int64
    /// What happened ("interaction", "click", "purchase", ...).
    public var kind: String
    /// Explicit rating; 0 for none.
    public var rating: Float
    /// A key the store keeps once: a second event with the same key is a duplicate and not stored. "" for none.
    public var idempotencyKey: String

    public static let defaultKind = "interaction"

    public init(userId: String, itemId: String, timestamp: Int64, kind: String = UserEvent.defaultKind,
                rating: Float = 0, idempotencyKey: String = "") {
        self.userId = userId
        self.itemId = itemId
        self.timestamp = timestamp
        self.kind = kind
        self.rating = rating
        self.idempotencyKey = idempotencyKey
    }
}

/// A catalogue item as the store keeps it: the text models read, plus what only clients read.
public struct CatalogItem: Sendable, Equatable {
    public var item: Item
    /// A JSON object, kept as given ("{}" for none).
    public var metadataJSON: String
    /// Unix seconds when the item entered the catalogue; 0 for imported items.
    public var created: Int64

    public init(item: Item, metadataJSON: String = "{}", created: Int64 = 0) {
        self.item = item
        self.metadataJSON = metadataJSON
        self.created = created
    }
}

/// A user's latest events, oldest first (ties in time keep the order they were recorded in), and how many events
/// the store holds for the user in all.
public struct UserEvents: Sendable, Equatable {
    public var events: [UserEvent]
    public var total: Int
    public init(events: [UserEvent], total: Int) { self.events = events; self.total = total }
}

/// What a committed RecordEvents batch did.
public struct RecordResult: Sendable, Equatable {
    /// Events newly stored.
    public var recorded: Int
    /// Indices (into the batch) of the events skipped because their idempotency key was already stored, ascending.
    public var duplicates: [Int]
    public init(recorded: Int, duplicates: [Int]) { self.recorded = recorded; self.duplicates = duplicates }
}

/// What a committed UpsertItems batch did, by index into the batch.
public struct UpsertResult: Sendable, Equatable {
    public var created: [Int]
    /// Items whose stored fields changed (title, year, genres, description or metadata).
    public var updated: [Int]
    /// The catalogue's version after the call: bumped once by a call that created or changed anything.
    public var catalogVersion: UInt64
    public init(created: [Int], updated: [Int], catalogVersion: UInt64) {
        self.created = created; self.updated = updated; self.catalogVersion = catalogVersion
    }
}

/// What a store holds, in numbers.
public struct StoreInfo: Sendable, Equatable {
    /// The name of the dataset first imported into it ("store" when none was).
    public var name: String
    public var items: Int
    public var users: Int
    public var events: Int
    public var catalogVersion: UInt64
    /// The schema version of its tables (the last migration applied).
    public var schemaVersion: Int
    public init(name: String, items: Int, users: Int, events: Int, catalogVersion: UInt64, schemaVersion: Int) {
        self.name = name; self.items = items; self.users = users; self.events = events
        self.catalogVersion = catalogVersion; self.schemaVersion = schemaVersion
    }
}

/// How RecordEvents batches were committed since the store opened (group commit: several batches per commit).
public struct WriteStats: Sendable, Equatable {
    public var commits: Int
    public var batches: Int
    public init(commits: Int, batches: Int) { self.commits = commits; self.batches = batches }
    public var batchesPerCommit: Double { Double(batches) / Double(max(1, commits)) }
}

/// Why a store call failed. Nothing of a failed write was committed, except where `unavailable` says the outcome is
/// unknown.
public enum StoreError: Error, Equatable, CustomStringConvertible {
    /// The store cannot be reached now (connection refused or lost, server restarting, the file busy beyond the
    /// timeout): retry later. When the connection dropped while a commit was in flight the outcome is unknown;
    /// idempotency keys make the retry safe.
    case unavailable(String)
    /// The disk, or the database's size limit, is full: nothing of the call was committed.
    case full(String)
    /// The call is wrong for what the store holds (an event naming an item the store does not have); `field` names
    /// the request field at fault when known.
    case rejected(field: String, message: String)
    /// The location cannot be used as a store: not a database, a schema newer than this program, a file another
    /// server is writing, corrupt.
    case unusable(String)

    public var description: String {
        switch self {
        case .unavailable(let m): return "store unavailable: \(m)"
        case .full(let m): return "store full: \(m)"
        case .rejected(let field, let m): return field.isEmpty ? m : "\(field): \(m)"
        case .unusable(let m): return "store unusable: \(m)"
        }
    }
}

/// The source of truth of the live loop. Implementations are safe to call from any thread.
public protocol EventStore: AnyObject, Sendable {
    /// Where the store is, without credentials ("sqlite:data/r2ec.sqlite", "postgres://host:5432/db").
    var location: String { get }

    /// Stores a batch of events atomically and calls `completion` once, on a store thread, after the commit (or the
    /// failure). Every item must be in the store. Concurrent batches may share one transaction (group commit); each
    /// batch is still all or nothing.
    func record(_ events: [UserEvent], completion: @escaping @Sendable (Result<RecordResult, StoreError>) -> Void)

    /// Creates or replaces items, atomically.
    func upsertItems(_ items: [CatalogItem]) throws -> UpsertResult

    /// The latest `limit` events of a user (oldest first) and the user's total; no events for an unknown user.
    func history(of user: String, limit: Int) throws -> UserEvents

    /// Erases the user's events and the user; returns how many events were erased.
    func deleteUser(_ user: String) throws -> Int

    /// Every item created or changed after catalogue version `version` (0: the whole catalogue), and the
    /// catalogue's current version.
    func items(changedAfter version: UInt64) throws -> (items: [CatalogItem], version: UInt64)

    /// Every event in the order it was recorded, in chunks of up to `chunk`, read from one consistent snapshot.
    func forEachEvent(chunk: Int, _ body: ([UserEvent]) throws -> Void) throws

    func info() throws -> StoreInfo

    var writeStats: WriteStats { get }

    /// Bulk load for `r2ec store import`: creates or replaces `items`, creates the items named by `events` that
    /// the store lacks (with their id alone), and appends `events`. Faster than `record`; one transaction per call.
    /// `name` becomes the store's name when it has none yet.
    func importRows(items: [CatalogItem], events: [UserEvent], name: String) throws

    /// Calls `changed` (on a store thread) with users whose events other processes recorded or erased from now
    /// on, and `gap` whenever some may have been missed (then nothing cached about any user can be trusted).
    /// Returns at once; ends at `close()`. A store with one writer process (SQLite) has nothing to report.
    func followUserChanges(changed: @escaping @Sendable ([String]) -> Void, gap: @escaping @Sendable () -> Void)

    /// Finishes queued writes and closes the connections.
    func close()
}

extension EventStore {
    public func followUserChanges(changed: @escaping @Sendable ([String]) -> Void, gap: @escaping @Sendable () -> Void) {}

    /// `record`, waiting for the commit on the calling thread.
    public func recordAndWait(_ events: [UserEvent]) throws -> RecordResult {
        let done = ResultBox<RecordResult>()
        record(events) { done.set($0) }
        return try done.wait().get()
    }
}

/// What a store held at one moment, as a Dataset: every item (canonical catalogue order) and every event as an
/// interaction in the order recorded, with the catalogue version the items were read at.
public struct StoreSnapshot: Sendable {
    public var dataset: Dataset
    /// Metadata and creation time of every item, by item id.
    public var items: [String: CatalogItem]
    public var catalogVersion: UInt64
}

extension EventStore {
    /// Reads the whole store (items first, then the events: an item created in between joins with its id alone,
    /// and the catalogue version says what a later `items(changedAfter:)` must catch up on).
    public func snapshot() throws -> StoreSnapshot {
        let name = try info().name
        let (items, version) = try items(changedAfter: 0)
        var builder = DatasetBuilder()
        var byId: [String: CatalogItem] = [:]
        for c in items { builder.item(c.item); byId[c.item.id] = c }
        try forEachEvent(chunk: 10_000) { events in
            for e in events {
                builder.interaction(user: e.userId, item: e.itemId, rating: e.rating, timestamp: e.timestamp)
            }
        }
        return StoreSnapshot(dataset: builder.build(name: name), items: byId, catalogVersion: version)
    }
}

/// A result handed from the thread that produces it to one that waits for it.
final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let ready = DispatchSemaphore(value: 0)
    private var value: Result<T, StoreError>?
    func set(_ r: Result<T, StoreError>) { value = r; ready.signal() }
    func wait() -> Result<T, StoreError> { ready.wait(); return value! }
}
