// The live loop (docs/architecture.md): the store is the source of truth, the server keeps what the hot path reads.
//  - RecordEvents: checked whole, committed by the store (group commit), then written through to the user cache,
//    then acknowledged.
//  - Recommend(user_id): the user's latest events from the cache (a miss reads the store on a store thread and
//    fills it), merged with the request's events by RecommendService; no events at all is a cold start.
//  - UpsertItems: committed, then every loaded model is brought to the new catalogue version (the dual-head network
//    encodes the items from their prompts; the others cannot score them until a refit), swapped in atomically, and
//    only then acknowledged: the next Recommend can return the item.
//  - DeleteUser: erased from the store, then from the cache (fills in flight are not installed).
// Catalogue versions are applied by one thread, in order; a model installed later (LoadModel, SIGHUP) is brought up
// to date by the same thread before or just after it serves.
import Data
import Foundation
import Model

public struct LiveLoopConfig: Sendable {
    /// Latest events kept per cached user (what Recommend(user_id) reads).
    public var eventsPerUser = 1000
    /// Bytes the user cache may hold.
    public var cacheBudgetBytes = 256 << 20
    /// Threads for store reads (cache fills, GetUserHistory, DeleteUser).
    public var storeThreads = 2
    public var limits = EventLimits()
    public init() {}
}

public final class LiveLoop: @unchecked Sendable {
    public let store: EventStore
    public let cache: UserHistoryCache
    public let limits: EventLimits
    private let registry: ModelRegistry
    private let metrics: ServingMetrics?
    private let readers: WorkerPool
    /// Applies catalogue versions to the loaded models, one at a time.
    private let catalogWorker: WorkerPool
    private let lock = NSLock()
    /// The catalogue as the store last told this server: every item by id, and its version.
    private var items: [String: CatalogItem]
    private var version: UInt64

    public init(store: EventStore, snapshot: StoreSnapshot, registry: ModelRegistry, config: LiveLoopConfig = LiveLoopConfig(),
                metrics: ServingMetrics? = nil) {
        self.store = store
        self.registry = registry
        self.metrics = metrics
        limits = config.limits
        cache = UserHistoryCache(eventsPerUser: config.eventsPerUser, budgetBytes: config.cacheBudgetBytes)
        readers = WorkerPool(threads: config.storeThreads, name: "r2ec-store")
        catalogWorker = WorkerPool(threads: 1, name: "r2ec-catalog")
        items = snapshot.items
        version = snapshot.catalogVersion
        registry.onInstall = { [weak self] model in
            guard let self else { return }
            self.catalogWorker.submit { self.catchUp(model) }
        }
        // Other servers sharing the store write too: the users they changed are dropped from the cache (the next
        // read fills them from the store), and everything when some changes may have been missed.
        if config.cacheBudgetBytes > 0 {
            store.followUserChanges(changed: { [cache] users in for u in users { cache.remove(u) } },
                                    gap: { [cache] in cache.removeAll() })
        }
    }

    public var catalogVersion: UInt64 { lock.lock(); defer { lock.unlock() }; return version }

    /// The stored item (metadata, creation time) for GetItems.
    public func catalogItem(_ id: String) -> CatalogItem? { lock.lock(); defer { lock.unlock() }; return items[id] }

    private func knows(_ id: String) -> Bool { lock.lock(); defer { lock.unlock() }; return items[id] != nil }

    /// Finishes queued store and catalogue work.
    public func shutdown() {
        readers.shutdown()
        catalogWorker.shutdown()
    }

    // MARK: Recommend(user_id)

    /// The user's latest events, oldest first: from the cache at once, else from the store (on a store thread).
    /// An unknown user has none (a cold start). Fails UNAVAILABLE only when the user is not cached and the store
    /// cannot be read.
    public func storedHistory(of user: String, ctx: CallContext,
                              _ done: @escaping (Result<[HistoryEvent], ServingError>) -> Void) {
        do { try EventChecks.user(user) } catch let e as ServingError { return done(.failure(e)) } catch {}
        if let entry = cache.lookup(user) { return done(.success(entry.events.map(Self.historyEvent))) }
        readers.submit { [self] in
            if let stop = ctx.stopReason { return done(.failure(stop)) }
            done(fill(user).map { $0.events.map(Self.historyEvent) })
        }
    }

    static func historyEvent(_ e: UserHistoryCache.Event) -> HistoryEvent {
        HistoryEvent(itemId: e.itemId, timestamp: e.timestamp, rating: e.rating)
    }

    /// Reads the user's latest events from the store into the cache (unless a write raced the read).
    private func fill(_ user: String) -> Result<UserHistoryCache.Entry, ServingError> {
        cache.beginFill(user)
        do {
            let h = try store.history(of: user, limit: cache.eventsPerUser)
            let entry = UserHistoryCache.Entry(events: h.events.map(UserHistoryCache.Event.init), total: h.total)
            cache.finishFill(user, entry)
            return .success(entry)
        } catch {
            cache.cancelFill(user)
            return .failure((error as? StoreError)?.serving ?? ServingError(.internal, "store: \(error)"))
        }
    }

    // MARK: The Events service

    /// RecordEvents: answered after the commit. `done` runs on a store thread.
    public func recordEvents(_ input: [EventInput], ctx: CallContext,
                             done: @escaping (Result<RecordEventsResult, ServingError>) -> Void) {
        let events: [UserEvent]
        do {
            events = try EventChecks.events(input, limits: limits, now: Int64(Date().timeIntervalSince1970), knownItem: knows)
        } catch let e as ServingError {
            if let limit = e.limit { metrics?.limitHit(limit) }
            return done(.failure(e))
        } catch { return done(.failure(ServingError(.internal, "\(error)"))) }
        if let stop = ctx.stopReason { return done(.failure(stop)) }
        store.record(events) { [cache] result in
            switch result {
            case .success(let r):
                // Write-through, per user in recorded order, duplicates left out.
                let duplicates = Set(r.duplicates)
                var byUser: [String: [UserHistoryCache.Event]] = [:]
                var order: [String] = []
                for (i, e) in events.enumerated() where !duplicates.contains(i) {
                    if byUser[e.userId] == nil { order.append(e.userId) }
                    byUser[e.userId, default: []].append(UserHistoryCache.Event(e))
                }
                for user in order { cache.recorded(user, byUser[user]!) }
                done(.success(RecordEventsResult(recorded: r.recorded, duplicates: r.duplicates)))
            case .failure(let e):
                done(.failure(e.serving))
            }
        }
    }

    /// UpsertItems: committed, applied to every loaded model, then answered (on the catalogue thread).
    public func upsertItems(_ input: [ItemInput], ctx: CallContext,
                            done: @escaping (Result<UpsertItemsResult, ServingError>) -> Void) {
        let records: [CatalogItem]
        do {
            records = try EventChecks.items(input, limits: limits)
        } catch let e as ServingError {
            if let limit = e.limit { metrics?.limitHit(limit) }
            return done(.failure(e))
        } catch { return done(.failure(ServingError(.internal, "\(error)"))) }
        catalogWorker.submit { [self] in
            if let stop = ctx.stopReason { return done(.failure(stop)) }
            do {
                let r = try store.upsertItems(records)
                let changed = Set((r.created + r.updated).map { records[$0].item.id })
                let models = try refreshCatalogue()
                let encodedBy = models.filter { m in changed.allSatisfy { m.canRecommend($0) } }.map(\.name)
                done(.success(UpsertItemsResult(created: r.created.count, updated: r.updated.count,
                                                catalogVersion: r.catalogVersion, encodedBy: encodedBy)))
            } catch let e as StoreError {
                done(.failure(e.serving))
            } catch let e as ServingError {
                done(.failure(e))
            } catch {
                done(.failure(ServingError(.internal, "catalogue update: \(error)")))
            }
        }
    }

    /// GetUserHistory: from the cache when it holds the answer, else from the store.
    public func userHistory(_ user: String, limit: Int, ctx: CallContext,
                            done: @escaping (Result<UserEvents, ServingError>) -> Void) {
        let n: Int
        do {
            try EventChecks.user(user)
            n = try EventChecks.historyLimit(limit, limits: limits)
        } catch let e as ServingError { return done(.failure(e)) } catch { return }
        if let entry = cache.lookup(user), entry.isComplete || entry.events.count >= n {
            return done(.success(Self.latest(entry, n, user)))
        }
        readers.submit { [self] in
            if let stop = ctx.stopReason { return done(.failure(stop)) }
            if n <= cache.eventsPerUser {
                done(fill(user).map { Self.latest($0, n, user) })
            } else {
                do { done(.success(try store.history(of: user, limit: n))) } catch {
                    done(.failure((error as? StoreError)?.serving ?? ServingError(.internal, "\(error)")))
                }
            }
        }
    }

    static func latest(_ entry: UserHistoryCache.Entry, _ n: Int, _ user: String) -> UserEvents {
        UserEvents(events: entry.events.suffix(n).map { $0.userEvent(user) }, total: entry.total)
    }

    /// DeleteUser: erased from the store, then from the cache.
    public func deleteUser(_ user: String, ctx: CallContext, done: @escaping (Result<Int, ServingError>) -> Void) {
        do { try EventChecks.user(user) } catch let e as ServingError { return done(.failure(e)) } catch { return }
        readers.submit { [self] in
            if let stop = ctx.stopReason { return done(.failure(stop)) }
            do {
                let n = try store.deleteUser(user)
                cache.remove(user)
                // Every model's cached prompt prefixes of the user's requests too (privacy: no copy is left).
                for m in registry.all { m.dualHead?.prefixCache?.remove(user: user) }
                done(.success(n))
            } catch {
                done(.failure((error as? StoreError)?.serving ?? ServingError(.internal, "\(error)")))
            }
        }
    }

    // MARK: Catalogue versions (on the catalogue thread)

    /// Reads what changed in the store since this server's version and brings every loaded model up to date.
    /// Returns the models as they serve now.
    @discardableResult
    private func refreshCatalogue() throws -> [ServedModel] {
        let current = catalogVersion
        let (changed, latest) = try store.items(changedAfter: current)
        lock.lock()
        for c in changed { items[c.item.id] = c }
        version = max(version, latest)
        lock.unlock()
        var changes: [UInt64: [CatalogItem]] = [current: changed]
        return registry.all.map { catchUp($0, changes: &changes) }
    }

    /// Brings one model to the latest catalogue version (a model installed after the version it was loaded at).
    private func catchUp(_ model: ServedModel) {
        var changes: [UInt64: [CatalogItem]] = [:]
        _ = catchUp(model, changes: &changes)
    }

    /// `changes` memoises the store's answer per starting version (models loaded together share it).
    private func catchUp(_ model: ServedModel, changes: inout [UInt64: [CatalogItem]]) -> ServedModel {
        let target = catalogVersion
        guard model.catalogVersion < target, (try? registry.model(model.name)) === model else { return model }
        do {
            let news: [CatalogItem]
            if let known = changes[model.catalogVersion] { news = known } else {
                news = try store.items(changedAfter: model.catalogVersion).items
                changes[model.catalogVersion] = news
            }
            let next = try model.updating(with: news, catalogVersion: target)
            return registry.replace(model, with: next) ? next : model
        } catch {
            FileHandle.standardError.write(Foundation.Data(
                "r2ec: model '\(model.name)' stays at catalogue version \(model.catalogVersion): \(error)\n".utf8))
            return model
        }
    }
}
