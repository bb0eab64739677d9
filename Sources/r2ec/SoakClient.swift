// One client thread of `r2ec bench soak`: each action is one scenario, well-behaved or faulty, on the thread's shared
// connection or a fresh one. Every call sent is counted, and ends answered, abandoned on purpose by the client, not
// accepted (above a GOAWAY's last stream id) or lost; a server behaviour the scenario forbids (a half-closed
// connection left open, a metrics request never timed out, a read that misses an acknowledged write) is a failure.
import Foundation
import RPC
import Serving

/// Counts shared by the client threads.
final class Tally: @unchecked Sendable {
    struct Snapshot {
        /// `notAccepted`: calls above a GOAWAY's last_stream_id, which the protocol says were not processed.
        var sent = 0, answered = 0, abandoned = 0, notAccepted = 0, unexpected = 0
        var statuses: [String: Int] = [:]
        var faults: [String: Int] = [:]
        /// Server behaviour a scenario forbids, by kind.
        var failures: [String: Int] = [:]
        /// Health/Check latencies (ms) of the calls in the mix.
        var healthMs: [Double] = []
        var lost: Int { sent - answered - abandoned - notAccepted }
    }
    private let lock = NSLock()
    private var s = Snapshot()

    func sent(_ n: Int = 1) { lock.lock(); s.sent += n; lock.unlock() }
    func abandoned(_ n: Int) { lock.lock(); s.abandoned += n; lock.unlock() }
    func notAccepted() { lock.lock(); s.notAccepted += 1; lock.unlock() }
    func fault(_ name: String) { lock.lock(); s.faults[name, default: 0] += 1; lock.unlock() }
    func failure(_ name: String) { lock.lock(); s.failures[name, default: 0] += 1; lock.unlock() }
    func health(_ ms: Double) { lock.lock(); s.healthMs.append(ms); lock.unlock() }
    /// A trailer arrived; `expected` says whether its status is one the scenario allows.
    func answered(_ code: StatusCode, expected: Bool) {
        lock.lock()
        s.answered += 1
        s.statuses[code.name, default: 0] += 1
        if !expected { s.unexpected += 1 }
        lock.unlock()
    }
    func snapshot() -> Snapshot { lock.lock(); defer { lock.unlock() }; return s }
}

/// One client thread's scenarios, each on its own connection state.
final class SoakClient {
    struct Setup {
        var port: Int
        var metricsPort: Int
        /// The server's --metrics-request-timeout: a half-sent metrics request must be closed by twice it.
        var metricsTimeout: Double
        var histories: [[String]]
        var items: [String]
        var reasoningTokens: Int
        var reasoning: Bool
        /// A RecommendRequest just under the frame limit: empty history events (field 2, length 0), 2 bytes each.
        var hugeRequest: [UInt8]
    }
    let setup: Setup
    let index: Int
    let tally: Tally
    let ledger: SoakLedger
    private var client: Client?
    /// Acknowledged events per user this thread writes ("soak-u-INDEX-N", no other thread writes them).
    private var acknowledgedPerUser: [String: Int] = [:]
    private var sequence = 0

    init(_ setup: Setup, index: Int, tally: Tally, ledger: SoakLedger) {
        self.setup = setup
        self.index = index
        self.tally = tally
        self.ledger = ledger
    }

    private func connection() -> Client? {
        if client == nil { client = try? Client(port: setup.port) }
        return client
    }

    private func reset() {
        client = nil
        goAwayLast = nil
    }

    /// Statuses any call may end with here: OK, a full queue under overload, a drain refusing new calls.
    static let fine: Set<StatusCode> = [.ok, .unavailable, .resourceExhausted]
    /// The last stream id of the GOAWAY this connection got, if any.
    private var goAwayLast: UInt32?

    /// Reads until the trailer of `id`: its status when it came. A call the connection ends without answering is
    /// lost, unless a GOAWAY said it was above the last accepted id. `onMessage` sees each MESSAGE of the call.
    @discardableResult
    private func awaitTrailer(_ c: Client, _ id: UInt32, allowed: Set<StatusCode>,
                              onMessage: (([UInt8]) throws -> Void)? = nil) throws -> StatusCode? {
        while let f = try c.readFrame(timeout: 60) {
            if f.header.type == .goAway {
                goAwayLast = Client.goAwayLastStreamId(f.payload)
                continue
            }
            guard f.header.streamId == id else { continue }
            if f.header.type == .message { try onMessage?(f.payload); continue }
            guard f.header.type == .trailer else { continue }
            let code = (try? Client.decodeStatus(f.payload).code) ?? .unknown
            tally.answered(code, expected: allowed.contains(code))
            return code
        }
        if let last = goAwayLast, id > last { tally.notAccepted() }
        reset()
        return nil
    }

    /// One call on the shared connection: its status and last MESSAGE, nil when it was not answered.
    @discardableResult
    private func unary(_ method: String, _ request: [UInt8], timeoutMs: Int64 = 0,
                       allowed: Set<StatusCode> = fine) -> (code: StatusCode, message: [UInt8])? {
        guard let c = connection() else { return nil }
        do {
            let id = try c.start(method, request, timeoutMs: timeoutMs)
            tally.sent()
            var message: [UInt8] = []
            guard let code = try awaitTrailer(c, id, allowed: allowed, onMessage: { message = $0 }) else { return nil }
            return (code, message)
        } catch {
            reset()
            return nil
        }
    }

    func oneAction<R: RandomNumberGenerator>(_ rng: inout R) {
        var roll = Int.random(in: 0..<100, using: &rng)
        if !setup.reasoning && (70..<88).contains(roll) { roll = 0 }
        let history = setup.histories[Int.random(in: 0..<setup.histories.count, using: &rng)]
        switch roll {
        case 0..<50:
            unary("/r2ec.v1.Recommender/Recommend", RequestEncoding.recommend(itemIds: history, topK: 10))
        case 50..<52:
            nonReadingBatch(history)
        case 52..<53:
            hugeRequest()
        case 53..<55:
            watchChurn()
        case 55..<56:
            vanishesMidCall()
        case 56..<57:
            halfClosedCall()
        case 57..<58:
            watchThenClose()
        case 58..<60:
            metricsHalfSent(closeAtOnce: roll == 58)
        case 60..<64:
            recordEvents(&rng)
        case 64..<65:
            userHistory(&rng)
        case 65..<66:
            deleteUser(&rng)
        case 66..<67:
            upsertItem(&rng)
        case 67..<70:
            let user = "soak-u-\(index)-\(Int.random(in: 0..<20, using: &rng))"
            unary("/r2ec.v1.Recommender/Recommend", RequestEncoding.recommend(userId: user, topK: 10))
        case 70..<80:
            unary("/r2ec.v1.Recommender/Recommend",
                  RequestEncoding.recommend(itemIds: history, topK: 10, reasoning: true, maxReasoningTokens: setup.reasoningTokens))
        case 80..<85:
            cancelledStream(history)
        case 85..<88:
            droppedMidStream(history)
        case 88..<90:
            stopsReading(history)
        case 90..<92:
            badFrames(overLimit: roll == 90)
        case 92..<96:
            let t0 = DispatchTime.now().uptimeNanoseconds
            unary("/r2ec.v1.Health/Check", [])
            tally.health(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        default:
            unary("/r2ec.v1.Recommender/Recommend", RequestEncoding.recommend(itemIds: history, topK: 10), timeoutMs: 1,
                  allowed: SoakClient.fine.union([.deadlineExceeded]))
        }
    }

    // MARK: Recommender faults

    /// A reasoning stream cancelled after its first message: CANCELLED (or OK when it finished first).
    private func cancelledStream(_ history: [String]) {
        guard let c = connection() else { return }
        tally.fault("stream cancelled")
        do {
            let id = try c.start("/r2ec.v1.Recommender/RecommendStream",
                                 RequestEncoding.recommend(itemIds: history, topK: 5, reasoning: true, maxReasoningTokens: 64))
            tally.sent()
            var cancelled = false
            try awaitTrailer(c, id, allowed: SoakClient.fine.union([.cancelled])) { _ in
                guard !cancelled else { return }
                try c.sendRaw(Frame(header: FrameHeader(type: .cancel, streamId: id, length: 0), payload: []).bytes)
                cancelled = true
            }
        } catch {
            reset()
        }
    }

    /// A fresh connection that starts a reasoning stream and disconnects abruptly.
    private func droppedMidStream(_ history: [String]) {
        guard let c = try? Client(port: setup.port) else { return }
        tally.fault("disconnect mid-stream")
        if (try? c.start("/r2ec.v1.Recommender/RecommendStream",
                         RequestEncoding.recommend(itemIds: history, reasoning: true, maxReasoningTokens: 64))) != nil {
            tally.sent()
            tally.abandoned(1)
            _ = try? c.readFrame(timeout: 1)
        }
    }

    /// A fresh connection that sends a burst of calls and never reads the answers, then goes away.
    private func stopsReading(_ history: [String]) {
        guard let c = try? Client(port: setup.port) else { return }
        tally.fault("client stops reading")
        var n = 0
        for _ in 0..<50 {
            guard (try? c.start("/r2ec.v1.Recommender/Recommend", RequestEncoding.recommend(itemIds: history, topK: 500)))
                != nil else { break }
            n += 1
        }
        tally.sent(n)
        tally.abandoned(n)
        Thread.sleep(forTimeInterval: 0.5)
    }

    /// A fresh connection that breaks the framing: the server must answer GOAWAY and close it, nothing else.
    private func badFrames(overLimit: Bool) {
        guard let c = try? Client(port: setup.port) else { return }
        tally.fault(overLimit ? "over-limit frame" : "garbage bytes")
        let bytes = overLimit ? FrameHeader(type: .message, streamId: 1, length: 64 << 20).bytes
            : (0..<64).map { _ in UInt8.random(in: 0...255) }
        try? c.sendRaw(bytes)
        _ = try? c.readFrame(timeout: 2)
    }

    /// The biggest RecommendBatch the soak asks for: 256 requests of top_k 500.
    static func bigBatch(_ history: [String]) -> [UInt8] {
        let one = RequestEncoding.recommend(itemIds: history, topK: 500)
        return (0..<256).flatMap { _ in SoakWire.bytes(1, one) }  // field 1: requests
    }

    /// A fresh connection that asks for big RecommendBatch answers and never reads them, then goes away: the
    /// server holds at most its output budget for it and sheds the rest.
    private func nonReadingBatch(_ history: [String]) {
        guard let c = try? Client(port: setup.port) else { return }
        tally.fault("non-reading RecommendBatch")
        let batch = SoakClient.bigBatch(history)
        var n = 0
        for _ in 0..<8 {
            guard (try? c.start("/r2ec.v1.Recommender/RecommendBatch", batch)) != nil else { break }
            n += 1
        }
        tally.sent(n)
        tally.abandoned(n)
        Thread.sleep(forTimeInterval: 0.5)
    }

    /// A request just under the frame limit, all empty history events (decoded off the loop thread, then refused
    /// on the history limit).
    private func hugeRequest() {
        tally.fault("huge request")
        unary("/r2ec.v1.Recommender/Recommend", setup.hugeRequest, allowed: SoakClient.fine.union([.invalidArgument, .notFound]))
    }

    // MARK: Health faults

    /// Health/Watch then CANCEL, ten times on the shared connection: each ends CANCELLED and its watcher is freed.
    private func watchChurn() {
        guard let c = connection() else { return }
        tally.fault("Watch/CANCEL churn")
        do {
            for _ in 0..<10 {
                let id = try c.start("/r2ec.v1.Health/Watch", [])
                tally.sent()
                try c.sendRaw(Frame(header: FrameHeader(type: .cancel, streamId: id, length: 0), payload: []).bytes)
                try awaitTrailer(c, id, allowed: SoakClient.fine.union([.cancelled]))
            }
        } catch {
            reset()
        }
    }

    /// A fresh connection that opens a Watch, reads its first message and closes with the stream open.
    private func watchThenClose() {
        guard let c = try? Client(port: setup.port) else { return }
        tally.fault("closed with a Watch open")
        guard (try? c.start("/r2ec.v1.Health/Watch", [])) != nil else { return }
        tally.sent()
        tally.abandoned(1)
        _ = try? c.readFrame(timeout: 2)
        c.close()
    }

    // MARK: Half-closed sockets

    /// A fresh connection that sends a CALL and half of its MESSAGE, then closes: its slot must be freed at once.
    private func vanishesMidCall() {
        guard let c = try? Client(port: setup.port) else { return }
        tally.fault("closed with a call open")
        try? c.sendRaw(Frame(header: FrameHeader(type: .call, streamId: 1, length: 0),
                             payload: Client.callHeader(method: "/r2ec.v1.Recommender/Recommend", timeoutMs: 0,
                                                        metadata: [])).bytes
                       + FrameHeader(type: .message, flags: .endStream, streamId: 1, length: 100).bytes.prefix(9))
        c.close()
    }

    /// A fresh connection that sends a CALL without its MESSAGE and half-closes (shutdown of its write side): the
    /// server must end the call (CANCELLED) and close the connection, not leave it in CLOSE-WAIT.
    private func halfClosedCall() {
        guard let c = try? Client(port: setup.port) else { return }
        tally.fault("half-closed with a CALL and no MESSAGE")
        do {
            try c.sendRaw(Frame(header: FrameHeader(type: .call, streamId: 1, length: 0),
                                payload: Client.callHeader(method: "/r2ec.v1.Recommender/Recommend", timeoutMs: 0,
                                                           metadata: [])).bytes)
            tally.sent()
            c.shutdownWrite()
            var answered = false
            while let f = try c.readFrame(timeout: 5) {
                if f.header.type == .trailer, f.header.streamId == 1, !answered {
                    let code = (try? Client.decodeStatus(f.payload).code) ?? .unknown
                    tally.answered(code, expected: SoakClient.fine.union([.cancelled]).contains(code))
                    answered = true
                }
            }
        } catch ClientError.timeout {
            tally.failure("half-closed connection not closed within 5 s")
        } catch {
            // Reset or refused: closed either way.
        }
    }

    // MARK: Metrics endpoint

    /// A fresh connection to the metrics port that sends half an HTTP request, then either closes at once or waits:
    /// the server must answer 408 (or close) within twice its --metrics-request-timeout.
    private func metricsHalfSent(closeAtOnce: Bool) {
        guard let c = try? Client(port: setup.metricsPort) else {
            tally.failure("metrics port refused a connection")
            return
        }
        tally.fault(closeAtOnce ? "half-sent metrics request, closed" : "half-sent metrics request, left open")
        guard (try? c.sendRaw(Array("GET /metrics HTTP/1.1\r\nHost: soak\r\n".utf8))) != nil else { return }
        if closeAtOnce { return c.close() }
        var pfd = pollfd(fd: c.rawDescriptor, events: Int16(POLLIN), revents: 0)
        let sent = Date()
        let deadline = sent.addingTimeInterval(setup.metricsTimeout * 2 + 1)
        var reply = [UInt8](repeating: 0, count: 4096)
        var answer = ""
        while Date() < deadline {
            guard poll(&pfd, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000))) > 0 else { break }
            let n = recv(c.rawDescriptor, &reply, reply.count, 0)
            if n <= 0 { return }  // closed by the server
            if answer.isEmpty {
                answer = String(decoding: reply[..<min(n, 32)], as: UTF8.self).split(separator: "\r\n").first.map(String.init) ?? ""
                answer += String(format: " after %.2f s", Date().timeIntervalSince(sent))
            }
        }
        // The deadline may pass between the answer and the close behind it: one last look, without waiting.
        if recv(c.rawDescriptor, &reply, reply.count, Int32(MSG_DONTWAIT)) == 0 { return }
        tally.failure("half-sent metrics request not closed within twice --metrics-request-timeout")
        Console.status(String(format: "soak: a half-sent metrics request still open %.2f s after it was sent (answer: %@)",
                              Date().timeIntervalSince(sent), answer.isEmpty ? "none" : answer))
    }

    // MARK: Events

    private func nextKey() -> String {
        sequence += 1
        return "soak-\(index)-\(sequence)"
    }

    /// RecordEvents of 1-20 events with fresh idempotency keys for one of this thread's users: acknowledged keys
    /// must be in the store afterwards, and none may come back as a duplicate.
    private func recordEvents<R: RandomNumberGenerator>(_ rng: inout R) {
        let user = "soak-u-\(index)-\(Int.random(in: 0..<20, using: &rng))"
        let events = (0..<Int.random(in: 1...20, using: &rng)).map { _ in
            (user: user, item: setup.items.randomElement(using: &rng)!, key: nextKey())
        }
        guard let answer = unary("/r2ec.v1.Events/RecordEvents", SoakWire.recordEvents(events)),
              answer.code == .ok else { return }
        let r = SoakWire.varints(answer.message)
        guard r[1] == UInt64(events.count), (r[2] ?? 0) == 0 else {
            return tally.failure("RecordEvents answered recorded \(r[1] ?? 0), duplicates \(r[2] ?? 0) for \(events.count) new events")
        }
        ledger.acknowledged(events.map(\.key))
        acknowledgedPerUser[user, default: 0] += events.count
    }

    /// GetUserHistory of one of this thread's users: its total holds at least every acknowledged event (read your
    /// writes); NOT_FOUND only for a user never written.
    private func userHistory<R: RandomNumberGenerator>(_ rng: inout R) {
        let user = "soak-u-\(index)-\(Int.random(in: 0..<20, using: &rng))"
        guard let answer = unary("/r2ec.v1.Events/GetUserHistory", SoakWire.getUserHistory(user, limit: 50),
                                 allowed: SoakClient.fine.union([.notFound])) else { return }
        let (code, message) = (answer.code, answer.message)
        let acknowledged = acknowledgedPerUser[user] ?? 0
        if code == .notFound && acknowledged > 0 {
            tally.failure("GetUserHistory NOT_FOUND for a user with acknowledged events")
        } else if code == .ok, let total = SoakWire.varints(message)[2], total < UInt64(acknowledged) {
            tally.failure("GetUserHistory total below the acknowledged events")
        }
    }

    /// RecordEvents for a fresh user, then DeleteUser: the deletion answers the events recorded, and the store
    /// holds none of them afterwards.
    private func deleteUser<R: RandomNumberGenerator>(_ rng: inout R) {
        sequence += 1
        let user = "soak-d-\(index)-\(sequence)"
        let events = (0..<3).map { i in (user: user, item: setup.items.randomElement(using: &rng)!, key: "soakdel-\(index)-\(sequence)-\(i)") }
        let recorded = unary("/r2ec.v1.Events/RecordEvents", SoakWire.recordEvents(events))?.code == .ok
        guard let answer = unary("/r2ec.v1.Events/DeleteUser", SoakWire.deleteUser(user),
                                 allowed: SoakClient.fine.union([.notFound])),
              answer.code == .ok || answer.code == .notFound else { return }
        if answer.code == .ok { ledger.deleted(user) }
        let deleted = answer.code == .ok ? (SoakWire.varints(answer.message)[1] ?? 0) : 0
        if recorded && deleted != 3 { tally.failure("DeleteUser deleted \(deleted) of 3 acknowledged events") }
    }

    /// UpsertItems of one of eight soak items (created once, then updated: the catalogue stays the same size).
    private func upsertItem<R: RandomNumberGenerator>(_ rng: inout R) {
        let n = Int.random(in: 0..<8, using: &rng)
        sequence += 1
        unary("/r2ec.v1.Events/UpsertItems",
              SoakWire.upsertItem(id: "soak-item-\(n)", title: "Soak item \(n), version \(sequence)", year: 2000 + n))
    }

    func finish() { client = nil }
}
