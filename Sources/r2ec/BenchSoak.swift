// `r2ec bench soak`: a bounded soak and fault test against a real `r2ec serve` child process on loopback. Client
// threads pace mixed traffic at a fraction of the measured saturated rate: direct and reasoning Recommend, streams
// cancelled mid-way, connections dropped mid-stream, clients that stop reading, non-reading RecommendBatch clients,
// ~1 MB requests, Watch/CANCEL churn, clients that close with a call open, over-limit and garbage frames; a hot
// reload (SIGHUP) half-way and SIGTERM at the end. Bystander Health/Check latency is reported (p50/p99). Every call the server accepted must end with OK or an
// expected status; the report counts calls sent, answered and lost, statuses, and the server's RSS over time.
import ArgumentParser
import Data
import Foundation
import RPC
import Serving

struct BenchSoak: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Soak and fault test of a real server process: mixed load with faults, a reload, SIGTERM at the end.")

    @Option(help: "Seconds of load.") var seconds = 600.0
    @Option(help: "Fraction of the measured saturated direct-path rate to offer.") var loadFraction = 0.8
    @Option(help: "Client threads (each does one action at a time).") var clients = 32
    @Option(help: "Dataset the server serves and the histories come from.") var dataset = "data/ml-100k"
    @Option(help: "Model the server serves (its first --model).") var model = "models/default"
    @Option(help: "Reasoning tokens per reasoning request.") var reasoningTokens = 16
    @Option(help: "Write the report as JSON here.") var json: String?

    func run() throws {
        let data = try DatasetLoader.load(dataset)
        let histories = BenchServe.testHistories(data)
        let child = try ServerProcess(arguments: ["serve", "--port", "0", "--dataset", dataset, "--model", model,
                                                  "--model", "popularity", "--max-frame-bytes", "1048576"])
        defer { child.kill() }
        Console.status("soak: server pid \(child.pid) on port \(child.port)")

        // Saturated direct rate, closed loop, 64 in flight.
        var probe = LoadGenerator.Plan(port: child.port, method: "/r2ec.v1.Recommender/Recommend",
                                       requests: histories.prefix(256).map { RequestEncoding.recommend(itemIds: $0, topK: 10) })
        probe.connections = 64
        probe.duration = 5
        let saturated = try LoadGenerator(probe).run().throughput
        let rate = saturated * loadFraction
        Console.status(String(format: "soak: saturated direct rate %.0f/s; offering %.0f/s for %.0f s", saturated, rate, seconds))

        // Baselines have no LM head: their soak sends direct calls where it would send reasoning ones.
        let reasoning = !ModelLoader.baselineKinds.contains(model)
        let tally = Tally()
        let rssStart = child.rssKiB()
        var rssSamples: [(Double, Int)] = [(0, rssStart)]
        let start = Date()
        let stop = start.addingTimeInterval(seconds)
        let threads = (0..<clients).map { i in
            Thread {
                var rng = SystemRandomNumberGenerator()
                let driver = SoakClient(port: child.port, histories: histories, tally: tally,
                                        reasoningTokens: reasoningTokens, reasoning: reasoning)
                let interval = Double(clients) / rate
                var next = Date()
                while Date() < stop {
                    driver.oneAction(&rng)
                    next += interval
                    let wait = next.timeIntervalSinceNow
                    if wait > 0 { Thread.sleep(forTimeInterval: wait) } else if wait < -1 { next = Date() }
                }
                driver.finish()
            }
        }
        threads.forEach { $0.start() }
        var reloaded = false
        while Date() < stop {
            Thread.sleep(forTimeInterval: min(10, max(0.1, stop.timeIntervalSinceNow)))
            rssSamples.append((Date().timeIntervalSince(start), child.rssKiB()))
            if !reloaded && Date().timeIntervalSince(start) > seconds / 2 {
                child.signal(SIGHUP)
                reloaded = true
                Console.status("soak: SIGHUP (hot reload) at \(Int(Date().timeIntervalSince(start))) s")
            }
        }
        // SIGTERM while the last calls are in flight; the threads finish their current call and stop.
        let rssEnd = child.rssKiB()
        child.signal(SIGTERM)
        while threads.contains(where: { !$0.isFinished }) { Thread.sleep(forTimeInterval: 0.05) }
        let exit = child.wait(timeout: 60)

        // RSS growth after warm-up: from the sample at 10% of the run to the end.
        let warm = rssSamples.first { $0.0 >= seconds * 0.1 }?.1 ?? rssStart
        let growth = Double(rssEnd - warm) / Double(max(warm, 1)) * 100
        let t = tally.snapshot()
        print("| measure | value |")
        print("|---|---|")
        print(String(format: "| offered rate | %.0f calls/s (%.0f%% of the saturated %.0f/s) |", rate, loadFraction * 100, saturated))
        print(String(format: "| calls sent | %d (%.0f/s achieved) |", t.sent, Double(t.sent) / seconds))
        print("| answered (OK or an expected status) | \(t.answered) |")
        print("| abandoned by the client on purpose (dropped connections) | \(t.abandoned) |")
        print("| not accepted (above GOAWAY's last stream id during the drain) | \(t.notAccepted) |")
        print("| lost (sent, not abandoned, never answered) | \(t.lost) |")
        print("| unexpected statuses | \(t.unexpected) |")
        print("| faults injected | \(t.faults.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", ")) |")
        print("| statuses | \(t.statuses.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", ")) |")
        print(String(format: "| server RSS | start %d KiB, after warm-up %d KiB, end %d KiB (%+.1f%% after warm-up) |",
                     rssStart, warm, rssEnd, growth))
        print("| server exit | \(exit.map { "code \($0)" } ?? "did not exit within 60 s") |")
        let health = t.healthMs.sorted()
        let p99 = health.isEmpty ? 0 : health[min(health.count - 1, Int(Double(health.count) * 0.99))]
        print(String(format: "| bystander Health/Check | %d calls, p50 %.2f ms, p99 %.2f ms, max %.2f ms |", health.count,
                     health.isEmpty ? 0 : health[health.count / 2], p99, health.last ?? 0))
        if let json {
            let body: [String: Any] = ["offered_rate": rate, "saturated_rate": saturated, "seconds": seconds,
                                       "sent": t.sent, "answered": t.answered, "abandoned": t.abandoned, "not_accepted": t.notAccepted,
                                       "lost": t.lost,
                                       "unexpected": t.unexpected, "statuses": t.statuses, "faults": t.faults,
                                       "rss_kib": rssSamples.map { [$0.0, Double($0.1)] }, "rss_growth_percent": growth,
                                       "exit_code": exit ?? -1, "health_p99_ms": p99]
            try JSONSerialization.data(withJSONObject: body, options: [.prettyPrinted, .sortedKeys])
                .write(to: URL(fileURLWithPath: json))
        }
        if t.lost > 0 || t.unexpected > 0 || exit != 0 { throw ExitCode(1) }
    }
}

/// Counts shared by the client threads.
final class Tally: @unchecked Sendable {
    struct Snapshot {
        /// `notAccepted`: calls above a GOAWAY's last_stream_id, which the protocol says were not processed.
        var sent = 0, answered = 0, abandoned = 0, notAccepted = 0, unexpected = 0
        var statuses: [String: Int] = [:]
        var faults: [String: Int] = [:]
        /// Bystander Health/Check latencies (ms).
        var healthMs: [Double] = []
        var lost: Int { sent - answered - abandoned - notAccepted }
    }
    private let lock = NSLock()
    private var s = Snapshot()

    func sent(_ n: Int = 1) { lock.lock(); s.sent += n; lock.unlock() }
    func abandoned(_ n: Int) { lock.lock(); s.abandoned += n; lock.unlock() }
    func notAccepted() { lock.lock(); s.notAccepted += 1; lock.unlock() }
    func fault(_ name: String) { lock.lock(); s.faults[name, default: 0] += 1; lock.unlock() }
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
    let port: Int
    let histories: [[String]]
    let tally: Tally
    let reasoningTokens: Int
    private var client: Client?

    let reasoning: Bool

    init(port: Int, histories: [[String]], tally: Tally, reasoningTokens: Int, reasoning: Bool) {
        self.port = port
        self.histories = histories
        self.tally = tally
        self.reasoningTokens = reasoningTokens
        self.reasoning = reasoning
    }

    private func connection() -> Client? {
        if client == nil { client = try? Client(port: port) }
        return client
    }

    /// Statuses any call may end with here: OK, a full queue under overload, a drain refusing new calls.
    static let fine: Set<StatusCode> = [.ok, .unavailable, .resourceExhausted]
    /// The last stream id of the GOAWAY this connection got, if any.
    private var goAwayLast: UInt32?

    /// Reads until the trailer of `id`: true when it came. A call the connection ends without answering is lost,
    /// unless a GOAWAY said it was above the last accepted id.
    private func awaitTrailer(_ c: Client, _ id: UInt32, allowed: Set<StatusCode>, onMessage: (() throws -> Void)? = nil) throws {
        while let f = try c.readFrame(timeout: 60) {
            if f.header.type == .goAway {
                goAwayLast = Client.goAwayLastStreamId(f.payload)
                continue
            }
            guard f.header.streamId == id else { continue }
            if f.header.type == .message { try onMessage?(); continue }
            guard f.header.type == .trailer else { continue }
            let code = (try? Client.decodeStatus(f.payload).code) ?? .unknown
            tally.answered(code, expected: allowed.contains(code))
            return
        }
        if let last = goAwayLast, id > last { tally.notAccepted() }
        client = nil
        goAwayLast = nil
    }

    private func unary(_ method: String, _ request: [UInt8], timeoutMs: Int64 = 0, allowed: Set<StatusCode> = fine) {
        guard let c = connection() else { return }
        do {
            let id = try c.start(method, request, timeoutMs: timeoutMs)
            tally.sent()
            try awaitTrailer(c, id, allowed: allowed)
        } catch {
            client = nil
            goAwayLast = nil
        }
    }

    func oneAction<R: RandomNumberGenerator>(_ rng: inout R) {
        var roll = Int.random(in: 0..<100, using: &rng)
        if !reasoning && (70..<88).contains(roll) { roll = 0 }
        let history = histories[Int.random(in: 0..<histories.count, using: &rng)]
        switch roll {
        case 0..<62:
            unary("/r2ec.v1.Recommender/Recommend", RequestEncoding.recommend(itemIds: history, topK: 10))
        case 62..<64:
            nonReadingBatch(history)
        case 64..<66:
            hugeRequest()
        case 66..<68:
            watchChurn()
        case 68..<70:
            vanishesMidCall()
        case 70..<80:
            unary("/r2ec.v1.Recommender/Recommend",
                  RequestEncoding.recommend(itemIds: history, topK: 10, reasoning: true, maxReasoningTokens: reasoningTokens))
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

    /// A reasoning stream cancelled after its first message: CANCELLED (or OK when it finished first).
    private func cancelledStream(_ history: [String]) {
        guard let c = connection() else { return }
        tally.fault("stream cancelled")
        do {
            let id = try c.start("/r2ec.v1.Recommender/RecommendStream",
                                 RequestEncoding.recommend(itemIds: history, topK: 5, reasoning: true, maxReasoningTokens: 64))
            tally.sent()
            var cancelled = false
            try awaitTrailer(c, id, allowed: SoakClient.fine.union([.cancelled])) {
                guard !cancelled else { return }
                try c.sendRaw(Frame(header: FrameHeader(type: .cancel, streamId: id, length: 0), payload: []).bytes)
                cancelled = true
            }
        } catch {
            client = nil
            goAwayLast = nil
        }
    }

    /// A fresh connection that starts a reasoning stream and disconnects abruptly.
    private func droppedMidStream(_ history: [String]) {
        guard let c = try? Client(port: port) else { return }
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
        guard let c = try? Client(port: port) else { return }
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
        guard let c = try? Client(port: port) else { return }
        tally.fault(overLimit ? "over-limit frame" : "garbage bytes")
        let bytes = overLimit ? FrameHeader(type: .message, streamId: 1, length: 64 << 20).bytes
            : (0..<64).map { _ in UInt8.random(in: 0...255) }
        try? c.sendRaw(bytes)
        _ = try? c.readFrame(timeout: 2)
    }

    /// A fresh connection that asks for big RecommendBatch answers and never reads them, then goes away: the
    /// server holds at most its output budget for it and sheds the rest.
    private func nonReadingBatch(_ history: [String]) {
        guard let c = try? Client(port: port) else { return }
        tally.fault("non-reading RecommendBatch")
        let one = RequestEncoding.recommend(itemIds: history, topK: 500)
        var batch: [UInt8] = []
        for _ in 0..<256 { batch += [0x0a] + SoakClient.varint(one.count) + one }  // field 1: requests
        var n = 0
        for _ in 0..<8 {
            guard (try? c.start("/r2ec.v1.Recommender/RecommendBatch", batch)) != nil else { break }
            n += 1
        }
        tally.sent(n)
        tally.abandoned(n)
        Thread.sleep(forTimeInterval: 0.5)
    }

    /// A request of ~1 MB of empty history events (decoded off the loop thread, then refused on the history limit).
    private func hugeRequest() {
        tally.fault("huge request")
        let event: [UInt8] = [0x12, 0x00]  // field 2 (history): an empty HistoryEvent
        let request = [UInt8]((0..<(1_000_000 / event.count)).map { _ in event }.joined())
        unary("/r2ec.v1.Recommender/Recommend", request, allowed: SoakClient.fine.union([.invalidArgument, .notFound]))
    }

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
            client = nil
            goAwayLast = nil
        }
    }

    /// A fresh connection that sends a CALL and half of its MESSAGE, then closes: its slot must be freed at once.
    private func vanishesMidCall() {
        guard let c = try? Client(port: port) else { return }
        tally.fault("closed with a call open")
        try? c.sendRaw(Frame(header: FrameHeader(type: .call, streamId: 1, length: 0),
                             payload: Client.callHeader(method: "/r2ec.v1.Recommender/Recommend", timeoutMs: 0,
                                                        metadata: [])).bytes
                       + FrameHeader(type: .message, flags: .endStream, streamId: 1, length: 100).bytes.prefix(9))
        c.close()
    }

    static func varint(_ v: Int) -> [UInt8] {
        var v = UInt64(v), out: [UInt8] = []
        while v >= 0x80 { out.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
        return out + [UInt8(v)]
    }

    func finish() { client = nil }
}

/// `r2ec serve` as a child process, with its port read from its first stdout line.
final class ServerProcess {
    let process = Process()
    let port: Int
    var pid: Int32 { process.processIdentifier }

    init(arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var line = Data()
        while true {
            let byte = out.fileHandleForReading.readData(ofLength: 1)
            guard !byte.isEmpty else { throw ValidationError("the server exited before listening") }
            if byte.first == 10, String(decoding: line, as: UTF8.self).contains("listening on") { break }
            line += byte
            if byte.first == 10 { line.removeAll() }
        }
        let text = String(decoding: line, as: UTF8.self)
        guard let range = text.range(of: #":(\d+) "#, options: .regularExpression),
              let p = Int(text[range].dropFirst().dropLast()) else { throw ValidationError("no port in '\(text)'") }
        port = p
    }

    func signal(_ s: Int32) { Foundation.kill(pid, s) }
    func kill() { if process.isRunning { signal(SIGKILL) } }

    func wait(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Resident set size from /proc.
    func rssKiB() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
        return 0
    }
}
