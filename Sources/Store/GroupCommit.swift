// Group commit: RecordEvents batches from many callers queue here; one writer thread takes everything queued (up to a
// bound) and commits it in one transaction, so a commit's cost (an fsync for SQLite, a round trip for PostgreSQL)
// is shared by every batch that arrived while the previous commit ran. No timer: under light load a batch commits
// alone at once, under heavy load groups grow by themselves. Each batch stays all or nothing: when a group fails
// for a reason that may belong to one batch (a rejected event), its batches are retried one by one.
import Data
import Foundation

final class GroupCommitter: @unchecked Sendable {
    typealias Completion = @Sendable (Result<RecordResult, StoreError>) -> Void
    /// Commits the batches in one transaction: one result per batch, or one error for all of them.
    typealias Commit = ([[UserEvent]]) -> Result<[RecordResult], StoreError>

    struct Pending {
        let events: [UserEvent]
        let completion: Completion
    }

    /// Most events committed in one transaction (a single larger batch still commits whole).
    let maxEventsPerCommit: Int
    /// Most events waiting; a batch beyond it is refused at once (UNAVAILABLE: the store is not keeping up).
    let maxQueuedEvents: Int
    private let commit: Commit
    private let condition = NSCondition()
    private var queue: [Pending] = []
    private var queuedEvents = 0
    private var stopping = false
    private var finished = false
    private var thread: Thread?

    /// Groups committed and batches in them (for tests and the ingest benchmark).
    private(set) var groups = 0
    private(set) var batches = 0

    init(name: String, maxEventsPerCommit: Int = 10_000, maxQueuedEvents: Int = 1_000_000, commit: @escaping Commit) {
        self.maxEventsPerCommit = maxEventsPerCommit
        self.maxQueuedEvents = maxQueuedEvents
        self.commit = commit
        let t = Thread { [unowned self] in self.run() }
        t.name = name
        thread = t
        t.start()
    }

    func submit(_ events: [UserEvent], completion: @escaping Completion) {
        condition.lock()
        if stopping {
            condition.unlock()
            return completion(.failure(.unavailable("the store is closing")))
        }
        if queuedEvents + events.count > maxQueuedEvents && queuedEvents > 0 {
            let waiting = queuedEvents
            condition.unlock()
            return completion(.failure(.unavailable("write queue full (\(waiting) events waiting to commit)")))
        }
        queue.append(Pending(events: events, completion: completion))
        queuedEvents += events.count
        condition.signal()
        condition.unlock()
    }

    /// Commits what is queued, then stops the writer thread.
    func close() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }

    var stats: WriteStats {
        condition.lock(); defer { condition.unlock() }
        return WriteStats(commits: groups, batches: batches)
    }

    private func run() {
        while let group = next() {
            let results = commitKeepingBatchesApart(group.map(\.events))
            for (p, r) in zip(group, results) { p.completion(r) }
        }
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    /// Everything queued up to the bound (at least one batch), or nil once stopping with nothing left.
    private func next() -> [Pending]? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty {
            if stopping { return nil }
            condition.wait()
        }
        var take = 0, events = 0
        while take < queue.count && (take == 0 || events + queue[take].events.count <= maxEventsPerCommit) {
            events += queue[take].events.count
            take += 1
        }
        let group = Array(queue.prefix(take))
        queue.removeFirst(take)
        queuedEvents -= events
        groups += 1
        batches += take
        return group
    }

    private func commitKeepingBatchesApart(_ group: [[UserEvent]]) -> [Result<RecordResult, StoreError>] {
        switch commit(group) {
        case .success(let results): return results.map { .success($0) }
        case .failure(let e):
            if case .rejected = e, group.count > 1 {
                // One batch may be at fault: give each its own transaction and its own answer.
                return group.map { batch in commit([batch]).map { $0[0] } }
            }
            return group.map { _ in .failure(e) }
        }
    }
}
