// `r2ec bench soak`: a bounded soak and fault test against a real `r2ec serve --store sqlite:PATH` child process on
// loopback. Client threads (SoakClient) pace mixed traffic at a fraction of the measured saturated rate: direct and
// reasoning Recommend, the Events service, and faults (streams cancelled or dropped, clients that stop reading,
// non-reading RecommendBatch clients, requests just under the frame limit, Watch/CANCEL churn, sockets closed or
// half-closed with a call or a Watch open, half-sent metrics requests, bad frames); a hot reload (SIGHUP) half-way
// and SIGTERM at the end. A bystander thread calls Health/Check throughout on its own connection. Afterwards the
// sqlite3 shell checks every acknowledged RecordEvents against the store (SoakLedger), and the server's peak RSS is
// compared with the bound its limits allow (SoakMemoryBound).
import ArgumentParser
import Data
import Foundation
import RPC
import Serving
import Store

struct BenchSoak: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Soak and fault test of a real server process: mixed load with faults, a reload, SIGTERM at the end.",
        discussion: """
            Starts `r2ec serve --store sqlite:DIR/soak.sqlite` (the store imported from --dataset first) with --model \
            and popularity, measures the saturated direct-path rate, then offers --load-fraction of it from --clients \
            threads for --seconds, with faults mixed in, a bystander Health/Check every 20 ms on its own connection, \
            SIGHUP half-way and SIGTERM at the end. Exits 1 on a lost call, an unexpected status, a forbidden server \
            behaviour, an acknowledged event missing from the store (read with the sqlite3 shell), a peak RSS above \
            the bound of the server's limits, a bystander p99 above --max-health-p99-ms, or a server exit code other \
            than 0.
            """)

    @Option(help: "Seconds of load.") var seconds = 600.0
    @Option(help: "Fraction of the measured saturated direct-path rate to offer.") var loadFraction = 0.8
    @Option(help: "Client threads (each does one action at a time).") var clients = 32
    @Option(help: "Dataset the store is imported from and the histories come from.") var dataset = "data/ml-100k"
    @Option(help: "Model the server serves (its first --model).") var model = "models/default"
    @Option(help: "Reasoning tokens per reasoning request.") var reasoningTokens = 16
    @Option(help: "The server's --metrics-request-timeout (seconds); half-sent metrics requests must be closed by twice it.")
    var metricsRequestTimeout = 2.0
    @Option(help: "Largest acceptable bystander Health/Check p99 (ms).") var maxHealthP99Ms = 50.0
    @Option(help: "Directory for the store and the server's log (a fresh temporary one when not given; kept).")
    var workDir: String?
    @Option(help: "Write the report as JSON here.") var json: String?

    func run() throws {
        guard seconds > 0, loadFraction > 0, clients > 0 else {
            throw ValidationError("--seconds, --load-fraction and --clients must be positive")
        }
        let data = try DatasetLoader.load(dataset)
        let histories = BenchServe.testHistories(data)
        let dir = workDir ?? NSTemporaryDirectory() + "r2ec-soak-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let sqlitePath = dir + "/soak.sqlite"
        for suffix in ["", "-wal", "-shm", ".lock"] { try? FileManager.default.removeItem(atPath: sqlitePath + suffix) }
        do {
            let store = try Stores.open("sqlite:" + sqlitePath)
            defer { store.close() }
            _ = try StoreImport.importDataset(dataset, into: store)
        }
        let limits = SoakMemoryBound.Limits()
        let logPath = dir + "/server.log"
        let child = try ServerProcess(arguments: ["serve", "--port", "0", "--metrics-port", "0",
                                                  "--metrics-request-timeout", "\(metricsRequestTimeout)",
                                                  "--store", "sqlite:" + sqlitePath, "--model", model, "--model", "popularity",
                                                  "--max-frame-bytes", "\(limits.maxFrameBytes)",
                                                  "--connection-output-budget", "\(limits.outputBudget)",
                                                  "--user-cache-bytes", "\(limits.userCacheBytes)"],
                                      logPath: logPath)
        defer { child.kill() }
        guard let metricsPort = child.metricsPort else { throw ValidationError("the server did not report its metrics port") }
        Console.status("soak: server pid \(child.pid) on port \(child.port), metrics on \(metricsPort); store and log in \(dir)")

        // Saturated direct rate, closed loop, 64 in flight.
        var probe = LoadGenerator.Plan(port: child.port, method: "/r2ec.v1.Recommender/Recommend",
                                       requests: histories.prefix(256).map { RequestEncoding.recommend(itemIds: $0, topK: 10) })
        probe.connections = 64
        probe.duration = 5
        let saturated = try LoadGenerator(probe).run().throughput
        let rate = saturated * loadFraction
        Console.status(String(format: "soak: saturated direct rate %.0f/s; offering %.0f/s for %.0f s", saturated, rate, seconds))

        // The largest answer the soak asks for, read whole once (the non-reading clients leave theirs unread).
        let largestAnswer = try Client(port: child.port).call("/r2ec.v1.Recommender/RecommendBatch",
                                                               SoakClient.bigBatch(histories[0])).count
        // Empty history events (field 2, length 0) filling a request to just under the frame limit.
        let hugeRequest: [UInt8] = (0..<(limits.maxFrameBytes - 1024) / 2 * 2).map { $0 % 2 == 0 ? 0x12 : 0x00 }
        let setup = SoakClient.Setup(port: child.port, metricsPort: metricsPort, metricsTimeout: metricsRequestTimeout,
                                     histories: histories, items: data.catalog.items.map(\.id), reasoningTokens: reasoningTokens,
                                     reasoning: !ModelLoader.baselineKinds.contains(model), hugeRequest: hugeRequest)

        let tally = Tally()
        let ledger = SoakLedger()
        let rssStart = child.rssKiB()
        var rssSamples: [(Double, Int)] = [(0, rssStart)]
        let start = Date()
        let stop = start.addingTimeInterval(seconds)
        let bystander = Bystander(port: child.port, until: stop)
        let threads = (0..<clients).map { i in
            Thread {
                var rng = SystemRandomNumberGenerator()
                let driver = SoakClient(setup, index: i, tally: tally, ledger: ledger)
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
        bystander.start()
        var reloaded = false
        var loopLag: [LoopLagSample] = LoopLagSample.read(metricsPort: metricsPort).map { [$0] } ?? []
        while Date() < stop {
            Thread.sleep(forTimeInterval: min(1, max(0.05, stop.timeIntervalSinceNow)))
            rssSamples.append((Date().timeIntervalSince(start), child.rssKiB()))
            if Date().timeIntervalSince(start) >= Double(loopLag.count) * 10, let sample = LoopLagSample.read(metricsPort: metricsPort) {
                loopLag.append(sample)
            }
            if !reloaded && Date().timeIntervalSince(start) > seconds / 2 {
                child.signal(SIGHUP)
                reloaded = true
                Console.status("soak: SIGHUP (hot reload) at \(Int(Date().timeIntervalSince(start))) s")
            }
        }
        // SIGTERM while the last calls are in flight; the threads finish their current call and stop.
        let rssEnd = child.rssKiB()
        child.signal(SIGTERM)
        while threads.contains(where: { !$0.isFinished }) || !bystander.isFinished { Thread.sleep(forTimeInterval: 0.05) }
        let exit = child.wait(timeout: 60)
        let stored = try ledger.check(sqlitePath: sqlitePath)
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        let logLines = log.split(separator: "\n")

        // RSS growth after warm-up: from the sample at 10% of the run to the end; the peak against the bound.
        let warm = rssSamples.first { $0.0 >= seconds * 0.1 }?.1 ?? rssStart
        let growth = Double(rssEnd - warm) / Double(max(warm, 1)) * 100
        let peak = rssSamples.map(\.1).max() ?? rssStart
        let bound = SoakMemoryBound(limits: limits, baselineKiB: rssStart, rpcConnections: 2 * clients + 2,
                                    metricsConnections: clients, decodingRequests: clients, largestAnswer: largestAnswer)
        let t = tally.snapshot()
        let health = bystander.latenciesMs.sorted()
        let p99 = Self.percentile(health, 0.99)
        let lost = t.lost + stored.lost
        print("| measure | value |")
        print("|---|---|")
        print(String(format: "| offered rate | %.0f calls/s (%.0f%% of the saturated %.0f/s), %d client threads |",
                     rate, loadFraction * 100, saturated, clients))
        print(String(format: "| calls sent | %d (%.0f/s achieved) |", t.sent, Double(t.sent) / seconds))
        print("| answered (OK or an expected status) | \(t.answered) |")
        print("| abandoned by the client on purpose (dropped connections, non-reading clients) | \(t.abandoned) |")
        print("| not accepted (above GOAWAY's last stream id during the drain) | \(t.notAccepted) |")
        print("| lost calls (sent, not abandoned, never answered) | \(t.lost) |")
        print("| acknowledged RecordEvents events | \(stored.acknowledgedEvents), missing from the store (sqlite3): \(stored.missingEvents) |")
        print("| users deleted (DeleteUser OK) | \(stored.deletedUsers), with events left in the store: \(stored.eventsOfDeletedUsers) |")
        print("| unexpected statuses | \(t.unexpected) |")
        print("| forbidden server behaviour | \(t.failures.isEmpty ? "none" : t.failures.map { "\($0.key): \($0.value)" }.sorted().joined(separator: "; ")) |")
        print("| faults injected | \(t.faults.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", ")) |")
        print("| statuses | \(t.statuses.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", ")) |")
        print(String(format: "| bystander Health/Check (own connection, every 20 ms) | %d calls, %d failed, p50 %.2f ms, p99 %.2f ms, max %.2f ms |",
                     health.count, bystander.failures, Self.percentile(health, 0.5), p99, health.last ?? 0))
        let windows = bystander.windowP99(10)
        print("| bystander p99 per 10 s | \(windows.map { String(format: "%.1f", $0) }.joined(separator: ", ")) ms |")
        let lagWindows = zip(loopLag.dropFirst(), loopLag).map { $0 - $1 }
        if let first = loopLag.first, let last = loopLag.last {
            let all = last - first
            print(String(format: "| server event loop (its 10 ms timer, /metrics) | %.0f ticks, %.0f at least 25 ms late, %.0f at least 50 ms late |",
                         all.ticks, all.late25, all.late50))
            print("| loop ticks >= 50 ms late per 10 s | \(lagWindows.map { String(Int($0.late50)) }.joined(separator: ", ")) |")
        }
        let mixed = t.healthMs.sorted()
        print(String(format: "| Health/Check in the mix (shared connections) | %d calls, p50 %.2f ms, p99 %.2f ms |",
                     mixed.count, Self.percentile(mixed, 0.5), Self.percentile(mixed, 0.99)))
        print(String(format: "| server RSS | start %d KiB, after warm-up %d KiB, peak %d KiB, end %d KiB (%+.1f%% after warm-up) |",
                     rssStart, warm, peak, rssEnd, growth))
        print("| RSS bound | \(bound.formula) = \(bound.kib) KiB; peak at \(String(format: "%.1f", Double(peak) / Double(bound.kib) * 100))% of it |")
        print("| server log | \(logLines.count) lines, \(log.utf8.count) bytes, \(logLines.filter { $0.contains("suppressed") }.count) 'suppressed' lines |")
        print("| server exit | \(exit.map { "code \($0)" } ?? "did not exit within 60 s") |")
        if let json {
            let body: [String: Any] = ["offered_rate": rate, "saturated_rate": saturated, "seconds": seconds, "clients": clients,
                                       "sent": t.sent, "answered": t.answered, "abandoned": t.abandoned, "not_accepted": t.notAccepted,
                                       "lost": lost, "acknowledged_events": stored.acknowledgedEvents,
                                       "missing_events": stored.missingEvents, "deleted_users": stored.deletedUsers,
                                       "events_of_deleted_users": stored.eventsOfDeletedUsers,
                                       "unexpected": t.unexpected, "failures": t.failures, "statuses": t.statuses, "faults": t.faults,
                                       "rss_kib": rssSamples.map { [$0.0, Double($0.1)] }, "rss_growth_percent": growth,
                                       "rss_peak_kib": peak, "rss_bound_kib": bound.kib, "rss_bound": bound.formula,
                                       "largest_answer_bytes": largestAnswer,
                                       "exit_code": exit ?? -1, "health_p99_ms": p99, "health_calls": health.count,
                                       "health_failures": bystander.failures, "health_p99_per_10s_ms": windows,
                                       "loop_ticks_late_50ms_per_10s": lagWindows.map(\.late50),
                                       "loop_ticks_late_25ms_per_10s": lagWindows.map(\.late25), "log_lines": logLines.count, "log_bytes": log.utf8.count]
            try JSONSerialization.data(withJSONObject: body, options: [.prettyPrinted, .sortedKeys])
                .write(to: URL(fileURLWithPath: json))
        }
        var failed: [String] = []
        if lost > 0 { failed.append("\(lost) lost call(s) or event(s)") }
        if t.unexpected > 0 { failed.append("\(t.unexpected) unexpected status(es)") }
        if !t.failures.isEmpty { failed.append("forbidden server behaviour") }
        if exit != 0 { failed.append("server exit \(exit.map { String($0) } ?? "none")") }
        if peak > bound.kib { failed.append("peak RSS \(peak) KiB above the bound \(bound.kib) KiB") }
        if p99 > maxHealthP99Ms || bystander.failures > 0 || health.isEmpty {
            failed.append(String(format: "bystander p99 %.1f ms (limit %.0f), %d failed", p99, maxHealthP99Ms, bystander.failures))
        }
        if !failed.isEmpty {
            Console.status("soak: FAILED: " + failed.joined(separator: "; "))
            throw ExitCode(1)
        }
        Console.status("soak: passed")
    }

    static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]
    }
}
