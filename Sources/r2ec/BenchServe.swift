// `r2ec bench serve`: a perf_analyzer-style load generator for the serving core. A concurrency sweep (closed loop)
// or a fixed request rate (open loop) of direct or reasoning Recommend calls whose histories come from the dataset's
// users (each user's items but the last, as at test time), or a replay of a JSONL file of requests (--requests),
// reporting throughput and p50/p90/p99 (HdrHistogram) per level as a table and JSON. `--suite` runs issue 6's comparisons side by side in one run against in-process servers:
// batching vs max_batch_size 1, p99 at half the saturated rate, iteration-level vs one-at-a-time reasoning.
import ArgumentParser
import Data
import Foundation
import Model
import RPC
import Serving
import Tensor

struct BenchServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serving throughput and latency: a concurrency sweep or fixed rate, direct or reasoning.")

    @Option(help: "Server to load (HOST:PORT); default: one in this process serving --model.") var target: String?
    @Option(help: "Dataset the histories come from (and the in-process server serves).") var dataset = "data/ml-100k"
    @Option(help: "Without --target: the model the in-process server loads (a checkpoint directory, or popularity/wals/bpr; default models/default). With --target: the loaded model the requests ask for (default: the server's default model; a --requests line's own model wins).")
    var model: String?
    @Option(help: "direct or reasoning.") var mode = "direct"
    @Option(help: ArgumentHelp(
        "Replay this JSONL file of Recommend requests instead of the dataset's histories.",
        discussion: "One JSON object per line: user_id (string or integer) or history (a list of item ids), and "
            + "optionally top_k, mode (direct or reasoning), model, max_reasoning_tokens. The lines are sent in order, "
            + "round-robin over the connections, again from the top when the file is used up, so the calls of a run "
            + "have the file's mix."))
    var requests: String?
    @Option(help: "Bearer token sent with every call (servers with --auth-token-file).") var token: String?
    @Option(help: "Concurrency levels (calls in flight) to sweep.") var concurrency: [Int] = [1, 4, 16, 64]
    @Option(help: "Open loop: calls per second (overrides the sweep).") var rate: Double?
    @Flag(help: "Open loop: Poisson arrivals (exponential gaps of mean 1/rate) instead of evenly spaced calls.")
    var poisson = false
    @Option(help: "Seed of the Poisson arrivals.") var seed: UInt64 = 1
    @Option(help: "Seconds measured per level (after one second of warm-up).") var seconds = 5.0
    @Option(help: "Reasoning tokens per request (reasoning mode).") var reasoningTokens = 32
    @Option(help: "In-process server: most requests per direct batch.") var maxBatchSize = 32
    @Option(help: "In-process server: reasoning chains decoded together.") var reasoningSlots = 32
    @Option(help: "In-process server: how reasoning KV caches store keys and values (float16 or float32).")
    var kvPrecision = KVPrecision.float16
    @Flag(help: "Run issue 6's three comparisons (in-process servers) instead of one sweep.") var suite = false
    @Flag(help: ArgumentHelp(
        "Returning users (issue 17): one new event on a cached history, with and without the prefix cache.",
        discussion: "Each dataset user with 20 or more events has its first 20 (times and ratings as recorded) "
            + "prefilled into the in-process server's prefix cache; then Recommend(history) calls each add one event "
            + "to what the user last sent (the user's next recorded events, 21st to 29th, so the window does not move), "
            + "users in turn, 64 calls in flight. Three in-process servers in one run: prefix cache and dynamic "
            + "batching (--max-batch-size), no prefix cache (every prompt prefilled whole), prefix cache with "
            + "max_batch_size 1. Needs a checkpoint trained with the stable-prefix prompt format. With --target: the "
            + "server there (e.g. `r2ec serve --prefix-cache 2G`) is primed over RPC (a closed loop over the 20-event "
            + "calls) and measured at one level, its own configuration."))
    var returning = false
    @Option(help: "--returning: the prefix cache's memory (bytes, or 512M, 2G).") var prefixCache = "2G"
    @Option(help: ArgumentHelp(
        "--returning: which of its levels run (cached, full, single, model; comma-separated; default: cached,full,single), e.g. one level alone to profile it.",
        discussion: "cached: prefix cache with --max-batch-size; full: every prompt prefilled whole; single: prefix cache "
            + "with max_batch_size 1; model: the same calls without a server (the model's direct path and top-k called "
            + "in batches of --max-batch-size, then of 1, on one thread), with the time of each phase. A ratio is "
            + "printed when both its levels ran."))
    var levels: String?
    @Option(help: ArgumentHelp(
        "Compare Recommend(user_id) against Recommend(history) at half the saturated rate, over this store (sqlite:PATH or postgres://...).",
        discussion: "An in-process server serves --model over the store as `serve --store` does (--dataset is not read); "
            + "saturation is measured with history requests at 64 calls in flight, then both kinds run open loop at half "
            + "that rate for the same users: by history (each user's latest 20 events, with their times and ratings, "
            + "as the request's: the prompt a user-id call builds from the store) and by "
            + "user id alone: first alone with the user cache empty (each call reads the user's events from the store), "
            + "then, after one closed-loop pass over every user has filled the cache, interleaved with the history "
            + "requests in one load (history, user id, history, ...; each kind at a quarter of the saturated rate), so "
            + "both kinds' percentiles come from the same seconds; that level runs --repeats times."))
    var store: String?
    @Option(help: ArgumentHelp("With --store: how many times the interleaved level runs; the median of the levels' "
            + "p99 differences (cached user id minus history) is reported."))
    var repeats = 1
    @Option(help: "Write the results as JSON here (the Python package plots it: python -m r2ec_client.plots latency).")
    var json: String?

    func validate() throws {
        if poisson && rate == nil { throw ValidationError("--poisson: needs --rate (an open-loop rate)") }
        if let rate, !(rate > 0 && rate.isFinite) { throw ValidationError("--rate: \(rate) must be a positive number") }
        guard (1...100).contains(repeats) else { throw ValidationError("--repeats: \(repeats) is not in 1...100") }
        if repeats > 1 && store == nil { throw ValidationError("--repeats: applies to --store only") }
        if let levels {
            let chosen = levels.split(separator: ",").map { String($0) }
            if let bad = chosen.first(where: { !Self.returningLevels.contains($0) }) {
                throw ValidationError("--levels: unknown level '\(bad)' (known: \(Self.returningLevels.joined(separator: ", ")))")
            }
            if chosen.isEmpty { throw ValidationError("--levels: name at least one level") }
            if !returning { throw ValidationError("--levels: applies to --returning only") }
            if target != nil { throw ValidationError("--levels: with --target one level runs, the server's own configuration") }
        }
        if requests != nil && (suite || store != nil) {
            throw ValidationError("--requests: replays against one server; drop --suite and --store")
        }
        guard ["direct", "reasoning"].contains(mode) else { throw ValidationError("--mode: direct or reasoning, got '\(mode)'") }
    }

    /// The levels --returning runs without --levels.
    static let defaultReturningLevels = "cached,full,single"
    /// --returning's levels, in the order they run.
    static let returningLevels = ["cached", "full", "single", "model"]

    /// The model the in-process server loads.
    var localModel: String { model ?? "models/default" }
    /// The model name the requests ask for: with --target, --model; in process, the loaded model is the default.
    var requestedModel: String { target == nil ? "" : model ?? "" }

    func run() throws {
        if let store { return try compareUserId(store: store) }
        if let requests { return try replay(file: requests) }
        let data = try DatasetLoader.load(dataset)
        var report: [String: Any]
        if returning {
            report = ["bench": "serve-returning", "model": localModel, "returning": try returningUsers(data: data)]
        } else {
            let histories = BenchServe.testHistories(data)
            report = ["bench": "serve", "mode": mode, "model": target ?? localModel]
            if suite {
                report["suite"] = try runSuite(data: data, histories: histories)
            } else {
                let (host, port, local) = try server(data: data, batch: maxBatchSize, slots: reasoningSlots)
                defer { local?.stop() }
                report["levels"] = try sweep(host: host, port: port, histories: histories, reasoning: mode == "reasoning")
            }
        }
        try write(report)
    }

    /// Writes `report` to --json, when given.
    private func write(_ report: [String: Any]) throws {
        guard let json else { return }
        try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: json))
        Console.status("wrote \(json)")
    }

    /// Each user's history without its last item (the leave-one-out test target), at most 20 items.
    static func testHistories(_ data: Dataset) -> [[String]] {
        data.sequences().filter { $0.items.count >= 2 }.map { s in
            s.items.dropLast().suffix(20).map { data.catalog[$0].id }
        }
    }

    private func server(data: Dataset, batch: Int, slots: Int) throws -> (String, Int, InProcessServer?) {
        if let target {
            let (h, p) = try parseTarget(target)
            return (h, p, nil)
        }
        let registry = ModelRegistry()
        Console.status("bench serve: loading \(localModel)")
        registry.install(try ModelLoader(dataset: data, checkpoints: Serve.checkpointLoader(budget: nil)).load(spec: localModel))
        var batching = BatchingConfig()
        batching.maxBatchSize = batch
        var reasoning = ReasoningConfig()
        reasoning.maxSlots = slots
        reasoning.stepTokenBudget = max(reasoning.stepTokenBudget, slots)
        reasoning.maxTokensLimit = max(reasoning.maxTokensLimit, reasoningTokens)
        reasoning.kvPrecision = kvPrecision
        let s = try InProcessServer(registry: registry, batching: batching, reasoning: reasoning)
        return ("127.0.0.1", s.port, s)
    }

    private func plan(host: String, port: Int, histories: [[String]], reasoning: Bool, concurrency: Int) -> LoadGenerator.Plan {
        let requests = histories.map {
            RequestEncoding.recommend(itemIds: $0, topK: 10, reasoning: reasoning, maxReasoningTokens: reasoning ? reasoningTokens : 0,
                                      model: requestedModel)
        }
        var p = LoadGenerator.Plan(port: port, method: "/r2ec.v1.Recommender/Recommend", requests: requests)
        p.host = host
        p.connections = concurrency
        p.inFlight = 1
        p.duration = seconds
        p.countTokens = reasoning ? RequestEncoding.reasoningTokens : nil
        p.metadata = token.map { [("authorization", "Bearer \($0)")] } ?? []
        p.poisson = poisson
        p.seed = seed
        return p
    }

    /// --requests: the file's requests in order against --target (or an in-process server), per concurrency level or
    /// at --rate; prints the file's mix first.
    private func replay(file: String) throws {
        let lines: [ReplayRequest]
        do { lines = try RequestFile.read(file) } catch let e as RequestFile.Error { throw ValidationError("\(e)") }
        var mix: [String: Int] = [:]
        for line in lines { mix[line.kind, default: 0] += 1 }
        Console.status("replaying \(lines.count) request(s) of \(file):")
        for (kind, count) in mix.sorted(by: { $0.key < $1.key }) { Console.status("  \(count)  \(kind)") }
        let reasoning = lines.contains(where: \.reasoning)
        // The dataset is read only for an in-process server.
        let (host, port, local): (String, Int, InProcessServer?)
        if let target {
            (host, port) = try parseTarget(target)
            local = nil
        } else {
            (host, port, local) = try server(data: try DatasetLoader.load(dataset), batch: maxBatchSize, slots: reasoningSlots)
        }
        defer { local?.stop() }
        let encoded = lines.map { $0.encoded(defaultModel: requestedModel) }
        func plan(concurrency: Int) -> LoadGenerator.Plan {
            var p = self.plan(host: host, port: port, histories: [], reasoning: reasoning, concurrency: concurrency)
            p.requests = encoded
            return p
        }
        header()
        var levels: [[String: Any]] = []
        if let rate {
            var p = plan(concurrency: 64)
            p.rate = rate
            levels.append(try measure(p, label: "replay at \(Int(rate))/s\(poisson ? " (Poisson)" : "")"))
        } else {
            for c in concurrency { levels.append(try measure(plan(concurrency: c), label: "replay x\(c)")) }
        }
        try write(["bench": "serve-replay", "requests": file, "mix": mix, "levels": levels, "target": target ?? localModel])
    }

    /// One measured level as a JSON row, printed as a table row.
    private func measure(_ p: LoadGenerator.Plan, label: String) throws -> [String: Any] {
        let r = try LoadGenerator(p).run()
        return row(p, label: label, calls: r.calls, seconds: r.seconds, percentile: r.percentile, tokens: r.tokens,
                   statuses: r.statuses)
    }

    /// One load whose requests interleave classes (`p.classes`): a row per class, `labels[c]` for class c, each class
    /// at its share of the rate. Errors are counted over the whole load, on every row.
    private func measure(_ p: LoadGenerator.Plan, labels: [String]) throws -> (rows: [[String: Any]], result: LoadResult) {
        let r = try LoadGenerator(p).run()
        return (labels.indices.map { c in
            let calls = Int(r.classLatencies[c].totalCount)
            var share = p
            share.rate = p.rate.map { $0 * Double(p.classes.filter { $0 == c }.count) / Double(p.classes.count) }
            return row(share, label: labels[c], calls: calls, seconds: r.seconds,
                       percentile: { r.percentile($0, ofClass: c) }, tokens: 0, statuses: r.statuses)
        }, r)
    }

    private func row(_ p: LoadGenerator.Plan, label: String, calls: Int, seconds: Double, percentile: (Double) -> Double,
                     tokens: Int, statuses: [StatusCode: Int]) -> [String: Any] {
        // Every answer other than OK is an error; the row names them by status (e.g. RESOURCE_EXHAUSTED: shed).
        let failed = statuses.filter { $0.key != .ok }
        let errors = failed.values.reduce(0, +)
        let throughput = Double(calls) / seconds, tokensPerSecond = Double(tokens) / seconds
        let (p50, p90, p99) = (percentile(50) * 1e3, percentile(90) * 1e3, percentile(99) * 1e3)
        print(String(format: "| %@ | %.0f | %.1f | %.2f | %.2f | %.2f | %.0f | %d |", label, p.rate ?? Double(p.connections),
                     throughput, p50, p90, p99, tokensPerSecond, errors))
        fflush(stdout)
        return ["label": label, "concurrency": p.connections, "rate": p.rate ?? 0, "throughput": throughput,
                "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "tokens_per_s": tokensPerSecond, "errors": errors,
                "error_statuses": Dictionary(uniqueKeysWithValues: failed.map { ($0.key.name, $0.value) }), "calls": calls]
    }

    private func header() {
        print("| load | concurrency or rate | calls/s | p50 ms | p90 ms | p99 ms | reasoning tokens/s | errors |")
        print("|---|---|---|---|---|---|---|---|")
    }

    private func sweep(host: String, port: Int, histories: [[String]], reasoning: Bool) throws -> [[String: Any]] {
        header()
        if let rate {
            var p = plan(host: host, port: port, histories: histories, reasoning: reasoning, concurrency: 64)
            p.rate = rate
            return [try measure(p, label: "\(mode) at \(Int(rate))/s")]
        }
        return try concurrency.map { c in
            try measure(plan(host: host, port: port, histories: histories, reasoning: reasoning, concurrency: c),
                        label: "\(mode) x\(c)")
        }
    }

    /// Recommend(user_id) p99 vs Recommend(history) p99 at half the saturated history rate, over a store.
    private func compareUserId(store url: String) throws {
        guard target == nil, !suite else { throw ValidationError("--store starts its own server; drop --target and --suite") }
        let opened = try Serve.openStore(url)
        defer { opened.store.close() }
        let data = opened.snapshot.dataset
        let registry = ModelRegistry()
        Console.status("bench serve --store: loading \(localModel) over \(opened.location)")
        registry.install(try ModelLoader(dataset: data, checkpoints: Serve.checkpointLoader(budget: nil),
                                         catalogVersion: opened.snapshot.catalogVersion, keepsUserHistories: false)
            .load(spec: localModel))
        var batching = BatchingConfig()
        batching.maxBatchSize = maxBatchSize
        let server = try InProcessServer(registry: registry, batching: batching) { metrics in
            LiveLoop(store: opened.store, snapshot: opened.snapshot, registry: registry, metrics: metrics)
        }
        defer { server.stop() }
        let sequences = data.sequences()
        let users = data.userIds.indices.filter { !sequences[$0].items.isEmpty }
        // The user's latest events as the store holds them (item, time, rating), so both kinds score the same prompt.
        let byHistory = users.map { u -> [UInt8] in
            let s = sequences[u], recent = max(0, s.count - Prompts.historyLength)..<s.count
            return RequestEncoding.recommend(itemIds: recent.map { data.catalog[s.items[$0]].id },
                                             timestamps: Array(s.timestamps[recent]), ratings: Array(s.ratings[recent]),
                                             topK: 10)
        }
        let byUser = users.map { RequestEncoding.recommend(userId: data.userIds[$0], topK: 10) }
        func load(_ requests: [[UInt8]], rate: Double?) -> LoadGenerator.Plan {
            var p = LoadGenerator.Plan(port: server.port, method: "/r2ec.v1.Recommender/Recommend", requests: requests)
            p.host = "127.0.0.1"
            p.connections = 64
            p.inFlight = 1
            p.duration = seconds
            p.rate = rate
            return p
        }
        header()
        let saturated = try measure(load(byHistory, rate: nil), label: "history x64 (saturation)")["throughput"] as? Double ?? 0
        let half = saturated / 2
        let cache = server.server.core.live!.cache
        let before = cache.stats
        let uncached = try measure(load(byUser, rate: half), label: "user_id at half saturation, cache empty")
        let missed = cache.stats
        // One closed-loop pass over every user (at the saturated rate, with a margin) fills the cache.
        var fill = load(byUser, rate: nil)
        fill.warmup = 0
        fill.duration = 1.5 * Double(users.count) / max(saturated, 1) + 1
        _ = try measure(fill, label: "user_id closed loop, filling the cache")
        let filled = cache.stats
        // The cached levels interleave the two kinds in one open-loop load (history, user id, history, ... for users
        // in turn, over the same connections): both are measured over the same seconds, so the machine's drift, which
        // moves a p99 by tens of milliseconds from one level to the next on a shared VM, falls on both alike.
        var mixed = load(zip(byHistory, byUser).flatMap { [$0, $1] }, rate: half)
        mixed.classes = byHistory.indices.flatMap { _ in [0, 1] }
        var pairs: [(history: [String: Any], user: [String: Any], difference: Double)] = []
        var levels: [LoadResult] = []
        for r in 1...repeats {
            let n = repeats > 1 ? " (\(r))" : ""
            let (rows, result) = try measure(mixed, labels: ["history, interleaved" + n, "user_id cached, interleaved" + n])
            pairs.append((rows[0], rows[1], (rows[1]["p99_ms"] as? Double ?? .nan) - (rows[0]["p99_ms"] as? Double ?? .nan)))
            levels.append(result)
        }
        // Every interleaved call of a kind in one distribution: a p99 of all the levels' calls, not of each level's few.
        let pooled = (0...1).map { LoadResult.pooledPercentile(99, ofClass: $0, in: levels) * 1e3 }
        let after = cache.stats
        let (history, user) = (pairs[0].history, pairs[0].user)
        let hp99 = history["p99_ms"] as? Double ?? .nan
        let (up99, cp99) = (user["p99_ms"] as? Double ?? .nan, uncached["p99_ms"] as? Double ?? .nan)
        let differences = pairs.map(\.difference).sorted()
        let median = differences.count % 2 == 1 ? differences[differences.count / 2]
            : (differences[differences.count / 2 - 1] + differences[differences.count / 2]) / 2
        print(String(format: "\nat %.0f calls/s (half of %.0f), the two kinds interleaved: Recommend(history) p99 %.2f ms; "
                     + "Recommend(user_id) p99 %.2f ms from the cache (%+.2f ms; %d hits, %d misses); alone with the cache "
                     + "empty %.2f ms (%+.2f ms against the first history level; %d hits, %d misses); %d users cached",
                     half, saturated, hp99, up99,
                     up99 - hp99, after.hits - filled.hits, after.misses - filled.misses, cp99, cp99 - hp99,
                     missed.hits - before.hits, missed.misses - before.misses, after.users))
        if repeats > 1 {
            print("cached user_id p99 minus history p99, level by level: "
                  + pairs.map { String(format: "%+.2f", $0.difference) }.joined(separator: ", ")
                  + String(format: " ms; median %+.2f ms", median))
            print(String(format: "over all %d interleaved levels together: history p99 %.2f ms, cached user_id p99 %.2f ms (%+.2f ms)",
                         repeats, pooled[0], pooled[1], pooled[1] - pooled[0]))
        }
        if let json {
            let report: [String: Any] = ["bench": "serve-store", "model": localModel, "store": opened.location,
                                         "saturated": saturated, "interleaved_rate": half,
                                         "history": history, "user_id": user,
                                         "user_id_cache_empty": uncached, "p99_difference_ms": up99 - hp99,
                                         "p99_difference_cache_empty_ms": cp99 - hp99,
                                         "pairs": pairs.map { ["history": $0.history, "user_id": $0.user,
                                                               "p99_difference_ms": $0.difference] as [String: Any] },
                                         "p99_difference_median_ms": median,
                                         "pooled_p99_ms": ["history": pooled[0], "user_id": pooled[1]],
                                         "pooled_p99_difference_ms": pooled[1] - pooled[0],
                                         "cache": ["cache_empty": ["hits": missed.hits - before.hits,
                                                                   "misses": missed.misses - before.misses],
                                                   "cached": ["hits": after.hits - filled.hits,
                                                              "misses": after.misses - filled.misses],
                                                   "users": after.users] as [String: Any]]
            try write(report)
        }
    }

    /// --returning: see its help. One row per server; the two ratios from this one run.
    private func returningUsers(data: Dataset) throws -> [String: Any] {
        guard !suite, store == nil else { throw ValidationError("--returning: drop --suite and --store") }
        let cacheBytes = try Serve.prefixCacheBytes(prefixCache)
        guard cacheBytes > 0 else { throw ValidationError("--prefix-cache: --returning needs a cache (not 0)") }
        let steps = 9, base = Prompts.historyLength
        let sequences = data.sequences()
        let users = sequences.indices.filter { sequences[$0].count >= base }
        // Per user: the 20 events prefilled, then 9 more, each after the one before (a user's recorded ones, or, past
        // its last, a catalogue item an hour later).
        var events: [[(item: Int, time: Int64, rating: Float)]] = []
        for u in users {
            let s = sequences[u]
            var e: [(item: Int, time: Int64, rating: Float)] = []
            for i in 0..<(base + steps) {
                let time = i < s.count ? s.timestamps[i] : 0
                let previous = e.last?.time ?? 0
                e.append(i < s.count ? (s.items[i], max(time, previous + (i < base ? 0 : 1)), s.ratings[i])
                                     : ((u * 31 + i * 7) % data.catalog.count, previous + 3600, 4))
            }
            events.append(e)
        }
        let primed = events.map { e in
            UserHistory(items: e[0..<base].map(\.item), timestamps: e[0..<base].map(\.time), ratings: e[0..<base].map(\.rating))
        }
        // Step-major: every user's 21st-event call, then every user's 22nd, ...: a user's next call comes a whole
        // round of users after its last (long done), so each call extends exactly what the cache holds.
        var requests: [[UInt8]] = []
        for k in 1...steps {
            for e in events {
                let h = e[0..<(base + k)]
                requests.append(RequestEncoding.recommend(itemIds: h.map { data.catalog[$0.item].id },
                                                          timestamps: h.map(\.time), ratings: h.map(\.rating), topK: 10,
                                                          model: requestedModel))
            }
        }
        header()
        func plan(port: Int, host: String = "127.0.0.1") -> LoadGenerator.Plan {
            var p = LoadGenerator.Plan(port: port, method: "/r2ec.v1.Recommender/Recommend", requests: requests)
            p.host = host
            p.connections = 64
            p.inFlight = 1
            p.duration = seconds
            p.warmup = 0.5
            p.metadata = token.map { [("authorization", "Bearer \($0)")] } ?? []
            return p
        }
        if let target {
            // A server in another process (`r2ec serve --model ... --prefix-cache ...`): its caches are primed over
            // RPC by one closed-loop pass of every user's 20-event call, then one level measures whatever it is
            // configured with; its cache counts are not visible from here.
            let (host, port) = try parseTarget(target)
            var prime = plan(port: port, host: host)
            prime.requests = primed.map { h in
                RequestEncoding.recommend(itemIds: h.items.map { data.catalog[$0].id }, timestamps: h.timestamps,
                                          ratings: h.ratings, topK: 10, model: requestedModel)
            }
            prime.warmup = 0
            prime.duration = Double(primed.count) / 200
            Console.status("returning users: priming \(primed.count) users' caches at \(target) (\(prime.duration) s)")
            _ = try LoadGenerator(prime).run()
            let row = try measure(plan(port: port, host: host), label: "returning x64 against \(target)")
            return ["users": users.count, "target": target, "level": row]
        }
        func level(batch: Int, cache: Bool, label: String) throws -> (throughput: Double, row: [String: Any]) {
            let registry = ModelRegistry()
            let loaded = try ModelLoader(dataset: data, checkpoints: Serve.checkpointLoader(budget: nil,
                                            prefixCacheBytes: cache ? cacheBytes : 0)).load(spec: localModel)
            registry.install(loaded)
            guard let dual = loaded.dualHead else { throw ValidationError("--returning: \(localModel) is not a dual-head checkpoint") }
            if cache && dual.prefixCache == nil {
                Console.status("warning: \(localModel) shows histories in the \(dual.promptFormat.rawValue) format: "
                               + "no prompt extends another, so it gets no prefix cache (train with prompt_format stable-prefix)")
            }
            // Prefill every user's 20 events (both servers, so they start alike).
            for start in stride(from: 0, to: primed.count, by: 64) {
                _ = try dual.scoreAll(Array(primed[start..<min(primed.count, start + 64)]))
            }
            var batching = BatchingConfig()
            batching.maxBatchSize = batch
            let s = try InProcessServer(registry: registry, batching: batching)
            defer { s.stop() }
            let p = plan(port: s.port)
            let before = dual.prefixCache?.statistics ?? PrefixCache.Stats()
            Console.status("  \(label): primed, measuring")
            var row = try measure(p, label: label)
            let after = dual.prefixCache?.statistics ?? PrefixCache.Stats()
            row["cache_hits"] = after.hits - before.hits
            row["cache_misses"] = after.misses - before.misses
            row["cache_bytes"] = after.bytes
            if cache {
                Console.status("  prefix cache: \(after.hits - before.hits) hits, \(after.misses - before.misses) misses, "
                               + "\(after.entries) prompts, \(after.bytes >> 20) MiB")
            }
            return (row["throughput"] as? Double ?? .nan, row)
        }
        /// The same calls without the server: the model's direct path (scoreForRanking, then top-k) called in
        /// batches of `batch` on this thread, every call once, with each phase's time per call.
        func modelLevel(batch: Int) throws -> [String: Any] {
            let loaded = try ModelLoader(dataset: data, checkpoints: Serve.checkpointLoader(budget: nil, prefixCacheBytes: cacheBytes))
                .load(spec: localModel)
            guard let dual = loaded.dualHead else { throw ValidationError("--returning: \(localModel) is not a dual-head checkpoint") }
            for start in stride(from: 0, to: primed.count, by: 64) {
                _ = try dual.scoreAll(Array(primed[start..<min(primed.count, start + 64)]))
            }
            let calls = (1...steps).flatMap { k in
                events.map { e in
                    UserHistory(items: e[0..<(base + k)].map(\.item), timestamps: e[0..<(base + k)].map(\.time),
                                ratings: e[0..<(base + k)].map(\.rating))
                }
            }
            let profile = PhaseProfile()
            dual.profile = profile
            defer { dual.profile = nil }
            let items = dual.catalog.count
            let before = dual.prefixCache?.statistics ?? PrefixCache.Stats()
            let began = GEMMBenchmark.now()
            for start in stride(from: 0, to: calls.count, by: batch) {
                let chunk = Array(calls[start..<min(calls.count, start + batch)])
                let scores = try dual.scoreForRanking(chunk, targetTimes: nil,
                                                      needs: chunk.map { RankingNeed(depth: 10 + Set($0.items).count) })
                profile.start()
                scores.withUnsafeBufferPointer { all in
                    for q in chunk.indices {
                        _ = Ranking.topK(UnsafeBufferPointer(rebasing: all[(q * items)..<((q + 1) * items)]), k: 10,
                                         masked: Set(chunk[q].items))
                    }
                }
                profile.lap("top-k")
            }
            let elapsed = GEMMBenchmark.now() - began
            let after = dual.prefixCache?.statistics ?? PrefixCache.Stats()
            let perCall = profile.order.map { ($0, profile.seconds[$0]! / Double(calls.count) * 1e6) }
            let accounted = perCall.reduce(0) { $0 + $1.1 }
            let throughput = Double(calls.count) / elapsed
            print(String(format: "model alone (no server), batches of %d: %.1f calls/s, %.1f us per call: ", batch, throughput,
                         elapsed / Double(calls.count) * 1e6)
                  + perCall.map { String(format: "%@ %.1f", $0.0, $0.1) }.joined(separator: ", ")
                  + String(format: ", other %.1f (us per call); cache hits %d of %d", elapsed / Double(calls.count) * 1e6 - accounted,
                           after.hits - before.hits, calls.count))
            fflush(stdout)
            return ["batch": batch, "throughput": throughput, "calls": calls.count, "cache_hits": after.hits - before.hits,
                    "us_per_call": Dictionary(uniqueKeysWithValues: perCall)]
        }
        Console.status("returning users: \(users.count) users, \(requests.count) distinct calls (one new event each)")
        let chosen = Set((levels ?? Self.defaultReturningLevels).split(separator: ",").map { String($0) })
        var out: [String: Any] = ["users": users.count]
        var cached: Double?, full: Double?, single: Double?
        if chosen.contains("cached") {
            let l = try level(batch: maxBatchSize, cache: true, label: "returning x64, prefix cache, max_batch_size \(maxBatchSize)")
            cached = l.throughput
            out["cached"] = l.row
        }
        if chosen.contains("full") {
            let l = try level(batch: maxBatchSize, cache: false, label: "returning x64, full prefill, max_batch_size \(maxBatchSize)")
            full = l.throughput
            out["full_prefill"] = l.row
        }
        if chosen.contains("model") {
            for batch in [maxBatchSize, 1] { out["model_max_batch_\(batch)"] = try modelLevel(batch: batch) }
        }
        if chosen.contains("single") {
            let l = try level(batch: 1, cache: true, label: "returning x64, prefix cache, max_batch_size 1")
            single = l.throughput
            out["cached_max_batch_1"] = l.row
        }
        print("")
        if let cached, let full {
            out["cache_speedup"] = cached / max(full, 1e-9)
            print(String(format: "returning users: the prefix cache gives %.1fx the full prefill's Recommend throughput",
                         cached / max(full, 1e-9)))
        }
        if let cached, let single {
            out["batching_speedup"] = cached / max(single, 1e-9)
            print(String(format: "returning users: dynamic batching gives %.1fx max_batch_size 1 (64 concurrent calls)",
                         cached / max(single, 1e-9)))
        }
        return out
    }

    private func runSuite(data: Dataset, histories: [[String]]) throws -> [String: Any] {
        guard target == nil else { throw ValidationError("--suite starts its own servers; drop --target") }
        header()
        /// One measured level against a fresh in-process server of the given configuration: the row's `metric`.
        func level(batch: Int, slots: Int, reasoning: Bool, concurrency: Int, rate: Double? = nil, label: String,
                   metric: String) throws -> Double {
            let (h, p, s) = try server(data: data, batch: batch, slots: slots)
            defer { s?.stop() }
            var load = plan(host: h, port: p, histories: histories, reasoning: reasoning, concurrency: concurrency)
            load.rate = rate
            return (try measure(load, label: label)[metric] as? Double) ?? .nan
        }
        // 1. Direct path at 64 concurrent calls: dynamic batching against max_batch_size 1.
        let saturated = try level(batch: maxBatchSize, slots: reasoningSlots, reasoning: false, concurrency: 64,
                                  label: "direct x64, max_batch_size \(maxBatchSize)", metric: "throughput")
        let unbatched = try level(batch: 1, slots: reasoningSlots, reasoning: false, concurrency: 64,
                                  label: "direct x64, max_batch_size 1", metric: "throughput")
        let speedup = saturated / max(unbatched, 1e-9)
        // 2. p99 at half the saturated direct throughput (open loop).
        let p99 = try level(batch: maxBatchSize, slots: reasoningSlots, reasoning: false, concurrency: 64,
                            rate: saturated / 2, label: "direct at half saturation", metric: "p99_ms")
        // 3. Reasoning at 32 concurrent streams: iteration-level batching against one request at a time.
        let batchedTokens = try level(batch: maxBatchSize, slots: reasoningSlots, reasoning: true, concurrency: 32,
                                      label: "reasoning x32, \(reasoningSlots) slot(s)", metric: "tokens_per_s")
        let singleTokens = try level(batch: maxBatchSize, slots: 1, reasoning: true, concurrency: 32,
                                     label: "reasoning x32, 1 slot(s)", metric: "tokens_per_s")
        let reasoningSpeedup = batchedTokens / max(singleTokens, 1e-9)
        let out: [String: Any] = ["direct_batching_speedup": speedup, "p99_ms_at_half_saturation": p99,
                                  "reasoning_batching_speedup": reasoningSpeedup]
        print(String(format: "\ndirect batching: %.1fx throughput of max_batch_size 1 at 64 concurrent calls", speedup))
        print(String(format: "direct p99 at half the saturated rate (%.0f/s): %.2f ms", saturated / 2, p99))
        print(String(format: "reasoning: %.1fx the tokens/s of one request at a time at 32 streams", reasoningSpeedup))
        return out
    }
}
