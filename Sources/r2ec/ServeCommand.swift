// `r2ec serve`: loads the models and serves them over the r2ec protocol until SIGTERM/SIGINT drains it.
import ArgumentParser
import Config
import Data
import Foundation
import Logging
import Model
import RPC
import Serving
import Store
import Tensor
import Train

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve models over the r2ec RPC protocol (docs/protocol.md).",
        discussion: """
        Every option may also be set in a YAML file given by --config (its key is the option's long name: \
        'max-connections: 512'; a list for --model) or by an environment variable R2EC_ and the name in capitals with \
        underscores (R2EC_MAX_CONNECTIONS=512; R2EC_MODEL=a,b for several models). The command line wins over the \
        environment, which wins over the file. Unknown keys in the file are errors (docs/deployment.md).
        """)

    @Option(help: "A YAML settings file of serve options (keys are the options' long names); see the discussion above.")
    var config: String?
    @Flag(help: "Check the settings (file, environment, command line, token file, TLS files, model specs) and exit: 0 when usable.")
    var checkConfig = false

    @Option(help: "Address to bind: an IPv4 or IPv6 address, or a host name resolved at start (IPv4 preferred).")
    var host = "127.0.0.1"
    @Option(help: "TCP port, 0...65535; 0 picks a free one (printed when listening).") var port = 7878
    @Option(help: "Dataset directory the models serve (catalogue, known users, item statistics); not read with --store.")
    var dataset = "data/ml-100k"
    @Option(help: ArgumentHelp(
        "The live loop's store: sqlite:PATH or postgres://USER@HOST:PORT/DATABASE (r2ec store import fills it).",
        discussion: """
        With a store, the models serve its catalogue and events instead of --dataset; the Events service \
        (RecordEvents, UpsertItems, GetUserHistory, DeleteUser) writes to it, answering only after the commit; \
        Recommend, RecommendStream and ScoreItems with a user_id read the user's latest events from it (through an \
        in-memory cache written through), and a user without events gets a cold-start answer. SQLite options: \
        sqlite:PATH?synchronous=full|normal&max_bytes=N&busy_timeout_ms=N (full, the default, fsyncs every commit). \
        One server writes a SQLite file; PostgreSQL takes several.
        """))
    var store: String?
    @Option(help: "With --store: most events per RecordEvents call.") var maxEventsPerCall = 1000
    @Option(help: "With --store: most items per UpsertItems call.") var maxItemsPerCall = 1000
    @Option(help: "With --store: latest events kept per cached user (what Recommend with a user_id reads).")
    var userHistoryEvents = 1000
    @Option(help: "With --store: bytes the user-history cache may hold (or with K/M/G: 256M); 0: no cache, every Recommend by user id reads the store. With a shared PostgreSQL store, users that other servers write are dropped from the cache when PostgreSQL notifies them (LISTEN/NOTIFY).")
    var userCacheBytes = "256M"
    @Option(name: .customLong("model"),
            help: "A model to load: popularity, wals, bpr or a checkpoint directory; repeat for several. The first is the default.")
    var models: [String] = []
    @Option(help: "Also serve every method over gRPC (HTTP/2) on this port, on --host; 0 picks a free one. Off when not given.")
    var grpcPort: Int?
    @Option(help: "PEM certificate chain for TLS on the gRPC port (with --tls-key).") var tlsCert: String?
    @Option(help: "PEM private key for TLS on the gRPC port (with --tls-cert).") var tlsKey: String?
    @Option(help: "Port of the HTTP endpoint serving /metrics (Prometheus) and /healthz on --host, 0...65535 and not --port (0 picks a free one); off when not given.")
    var metricsPort: Int?
    @Option(help: "Most open connections to the metrics endpoint; one more is answered 503 and closed.")
    var metricsMaxConnections = 64
    @Option(help: "Seconds a metrics connection may take to send its whole request (else 408 and close; closed at twice this).")
    var metricsRequestTimeout = 10.0
    @Option(help: "Largest frame payload in bytes.") var maxFrameBytes = FrameHeader.defaultMaxPayload
    @Option(help: "Most open connections. At start the open-file soft limit (RLIMIT_NOFILE) is raised to fit them plus the metrics connections plus 64; when the hard limit is too low, this is lowered to fit, and the log says so.")
    var maxConnections = 4096
    @Option(help: "Most calls in flight per connection.") var maxCallsPerConnection = 1024
    @Option(help: "Bytes of unsent answers one connection may hold; an answer beyond it is shed with RESOURCE_EXHAUSTED (one answer alone may be larger when nothing else is pending).")
    var connectionOutputBudget = 32 << 20
    @Option(help: "Most requests scored in one batch (direct path).") var maxBatchSize = 32
    @Option(help: "Longest wait, in microseconds, for a batch to fill after its oldest request arrived.")
    var maxQueueDelayUs = 1000
    @Option(help: "Most requests waiting; one more is answered RESOURCE_EXHAUSTED.") var maxQueueSize = 4096
    @Option(help: "Priority levels (request priority 1 is the most urgent).") var priorityLevels = 2
    @Option(help: "Deadline in milliseconds for calls that carry none; 0 = none.") var defaultTimeoutMs: Int64 = 0
    @Option(help: "Seconds a connection may sit idle (no call, no bytes) before it is closed.") var idleTimeout = 300.0
    @Option(help: ArgumentHelp("Seconds after which a connection gets GOAWAY (each within +-10%), so long-lived clients reconnect and a balancer can spread them; 0 = never.",
                               discussion: "Calls in flight finish on the old connection; the client opens a new one for the next call."))
    var maxConnectionAge = 0.0
    @Option(help: "Seconds a begun frame may take to arrive whole (slowloris guard).") var frameReadTimeout = 10.0
    @Option(help: "Most history events per request.") var maxHistoryEvents = 1000
    @Option(help: "Most items per answer (top_k).") var maxTopK = 10_000
    @Option(help: "Most item ids per list in a request (exclude, candidates, ScoreItems, GetItems).") var maxItemIds = 10_000
    @Option(help: "Most requests per RecommendBatch call.") var maxBatchRequests = 1024
    @Option(help: "Threads for calls other than Recommend (ScoreItems, SimilarItems).") var workers = 1
    @Option(help: "Reasoning chains decoded together (1 = one request at a time).") var reasoningSlots = 32
    @Option(help: "Tokens fed per reasoning step across chains (decode tokens, then prompt chunks).")
    var stepTokenBudget = 1024
    @Option(help: "KV-cache tokens reserved across reasoning chains in flight.") var kvTokenBudget = 65536
    @Option(help: "How reasoning chains' KV caches store keys and values: float16 or float32.")
    var kvPrecision = KVPrecision.float16
    @Option(help: "Reasoning tokens when a request asks for 0.") var defaultReasoningTokens = 64
    @Option(help: "Most reasoning tokens one request may ask for.") var maxReasoningTokens = 512
    @Option(help: "Seconds accepted calls may take to finish after SIGTERM/SIGINT.") var drainTimeout = 30.0
    @Option(help: "Seconds between SIGTERM/SIGINT and the drain during which health answers NOT_SERVING (/healthz 503) while calls are still accepted, so a load balancer stops routing here first; 0 drains at once. A second signal drains at once.")
    var drainGrace = 0.0
    @Option(help: "Least severe log lines written: trace, debug (adds a line per call), info, notice, warning (failed and refused calls), error, critical.")
    var logLevel = Logger.Level.info
    @Option(help: "Log lines as text, or json (one object per line: time, level, logger, message, then fields such as request_id).")
    var logFormat = LogFormat.text
    @Option(help: "File of bearer tokens, one per line; a line 'admin TOKEN' also allows the Admin service. Enables auth.")
    var authTokenFile: String?
    @Option(help: "Most memory one checkpoint load may take (bytes, or with K/M/G: 8G); checked against config.json and the weights before allocating. Default: 80% of the memory available at each load.")
    var memoryBudget: String?
    @Option(help: "Weights of the dual-head models in inference: float32, or bfloat16 (projections and item table in bfloat16 with float32 sums, about half the weight bytes; the table is re-encoded by the bfloat16 network at each load, or read from --item-table-cache; needs a CPU with AVX512_BF16). Applies to every load: start, Admin LoadModel, SIGHUP reload.")
    var precision: PackedMatrix.Precision = .float32
    @Option(help: "Item table the dual-head models score against: float32, or int8 (one float32 scale per row: a quarter of the bytes per scoring pass; ranking by the dequantised table; SimilarItems keeps float32).")
    var itemTablePrecision = ItemTablePrecision.float32
    @Option(help: ArgumentHelp(
        "A directory this server owns where the dual-head models' item tables are kept across starts; off when not given.",
        discussion: """
        Without it every start reads every catalogue item out again (about 5 minutes at 10^6 items on 2 cores) unless \
        the checkpoint holds a matching item_table.safetensors (r2ec train writes one; serving never writes into a \
        checkpoint). With it, a table is read from DIR when the weights, item prompts and --precision are those it was \
        built for (one file per combination, named by their hashes, so models and catalogues share DIR), else built \
        and saved in chunks: a server stopped mid-build resumes where it left off. Damaged files are ignored with a \
        warning. Items added at run time (UpsertItems) are not kept there. Files are never deleted: remove stale ones \
        by hand (items x hidden x 4 bytes each).
        """))
    var itemTableCache: String?
    @Option(help: "Weight W in [0, 1] of new items' content prior in the dual-head models: an item without a training interaction (one UpsertItems adds, or one in the catalogue the model never trained on) gets unit((1-W)*text vector + W*mean of its genres' centroids), a centroid being the mean vector of the trained items of that genre, taken at load (text alone when none of its genres has one); 0 = text alone.")
    var newItemPrior: Float = 0
    @Option(help: "Memory for the dual-head models' per-user KV caches (bytes, or with K/M/G: 512M), per loaded model; 0 turns them off. A direct Recommend whose prompt extends a cached one (a returning user with new events) prefills only the new lines; least recently used prompts go first. DeleteUser removes the user's cached prompts, a model swap the old model's. About 1 KB per prompt token for the default model (a 20-line prompt: ~0.45 MB). Only for checkpoints trained with prompt_format stable-prefix (r2ec train --set prompt_format=stable-prefix): the default target-relative prompt changes whole with every event, so nothing is kept for it.")
    var prefixCache = "256M"

    func validate() throws {
        guard (0...1).contains(newItemPrior) else {
            throw ValidationError("--new-item-prior: expected a weight in [0, 1], got \(newItemPrior)")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port: \(port) is not a TCP port (0...65535)") }
        if let m = metricsPort {
            guard (0...65535).contains(m) else { throw ValidationError("--metrics-port: \(m) is not a TCP port (0...65535)") }
            guard m == 0 || m != port else {
                throw ValidationError("--metrics-port: \(m) is also --port; give the metrics endpoint another port (or 0)")
            }
        }
        guard !host.isEmpty else { throw ValidationError("--host: empty") }
        _ = try Self.prefixCacheBytes(prefixCache)
        try Serve.validate(itemTableCache: itemTableCache)
        if precision == .bfloat16 && !precision.isSupported {
            throw ValidationError("--precision bfloat16 needs a CPU with AVX512_BF16 (this one runs the \(CPU.isa) kernels without it)")
        }
        let positive: [(String, Int)] = [("--max-connections", maxConnections), ("--max-calls-per-connection", maxCallsPerConnection),
                                         ("--max-frame-bytes", maxFrameBytes), ("--metrics-max-connections", metricsMaxConnections)]
        for (name, value) in positive where value < 1 { throw ValidationError("\(name): \(value) must be at least 1") }
        let seconds: [(String, Double)] = [("--metrics-request-timeout", metricsRequestTimeout), ("--idle-timeout", idleTimeout),
                                           ("--frame-read-timeout", frameReadTimeout)]
        for (name, value) in seconds where !(value > 0 && value.isFinite) {
            throw ValidationError("\(name): \(value) must be a positive number of seconds")
        }
        guard maxConnectionAge >= 0 && maxConnectionAge.isFinite else {
            throw ValidationError("--max-connection-age: \(maxConnectionAge) must be >= 0 seconds (0: no limit)")
        }
        guard drainTimeout >= 0 && drainTimeout.isFinite else { throw ValidationError("--drain-timeout: \(drainTimeout) must be >= 0") }
        guard drainGrace >= 0 && drainGrace.isFinite else { throw ValidationError("--drain-grace: \(drainGrace) must be >= 0") }
    }

    /// The file and environment settings R2ecCommand.main folded into this run's arguments (for --check-config).
    nonisolated(unsafe) static var resolvedSettings: [Setting] = []

    /// This command's arguments with the settings file (--config) and R2EC_* variables folded in; the keys are the
    /// long names of the options above, read from ArgumentParser's own definition of them.
    static func settings(commandLine: [String], environment: [String: String]) throws -> CommandSettings {
        let options = try OptionSpec.table(helpDump: Serve._dumpHelp(), excluding: ["help", "config", "check-config"])
        return try CommandSettings.resolve(commandLine: commandLine, environment: environment, options: options)
    }

    /// --user-cache-bytes in bytes: 0 (no cache) or a size.
    func userCacheBudget() throws -> Int {
        if userCacheBytes.trimmingCharacters(in: .whitespaces) == "0" { return 0 }
        guard let bytes = MemoryBudget.parse(userCacheBytes, source: "--user-cache-bytes") else {
            throw ValidationError("--user-cache-bytes: expected 0, bytes or a size like 256M, got '\(userCacheBytes)'")
        }
        return bytes.bytes
    }

    /// Checks the settings that need more than parsing: TLS and token files, sizes, model specs.
    func checkFiles() throws {
        try ServeGRPC.validate(grpcPort: grpcPort, tlsCert: tlsCert, tlsKey: tlsKey)
        if let authTokenFile {
            do { _ = try TokenFile.read(authTokenFile) } catch let e as TokenFile.Error {
                throw ValidationError("--auth-token-file: \(e)")
            }
        }
        if let memoryBudget, MemoryBudget.parse(memoryBudget, source: "--memory-budget") == nil {
            throw ValidationError("--memory-budget: expected bytes or a size like 512M or 8G, got '\(memoryBudget)'")
        }
        _ = try userCacheBudget()
        for spec in models where !ModelLoader.baselineKinds.contains(spec) && spec != "pop" {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: spec, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("--model: '\(spec)' is not one of \(ModelLoader.baselineKinds.joined(separator: ", ")) "
                    + "and not a checkpoint directory")
            }
        }
        if store == nil, !FileManager.default.fileExists(atPath: dataset) {
            throw ValidationError("--dataset: no such directory '\(dataset)' (and no --store)")
        }
    }

    func run() throws {
        try checkFiles()
        let (level, format) = (logLevel, logFormat)
        LoggingSystem.bootstrap { label in
            switch format {
            case .json: return JSONLogHandler(label: label, level: level)
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        }
        Console.json = format == .json
        if checkConfig {
            print("r2ec serve: settings OK")
            for setting in Serve.resolvedSettings {
                print("  \(setting.key): \(setting.values.joined(separator: ", "))  (\(setting.origin))")
            }
            return
        }
        var config = ServerConfig()
        config.host = host
        config.port = port
        config.maxFramePayload = maxFrameBytes
        config.maxCallsPerConnection = maxCallsPerConnection
        config.connectionOutputBudget = connectionOutputBudget
        config.defaultTimeoutMs = defaultTimeoutMs
        config.metricsPort = metricsPort
        config.metricsMaxConnections = metricsMaxConnections
        config.metricsRequestTimeoutSeconds = metricsRequestTimeout
        let fitted = DescriptorLimit.fit(maxConnections: maxConnections,
                                         metricsConnections: metricsPort == nil ? 0 : metricsMaxConnections)
        config.maxConnections = fitted.maxConnections
        if let note = fitted.note { Console.status(note) }
        config.idleTimeoutSeconds = idleTimeout
        config.frameReadTimeoutSeconds = frameReadTimeout
        config.maxConnectionAgeSeconds = maxConnectionAge
        config.drainTimeoutSeconds = drainTimeout
        config.drainGraceSeconds = drainGrace
        config.logLevel = logLevel
        if let authTokenFile {
            do {
                let file = try TokenFile.read(authTokenFile)
                (config.tokens, config.adminTokens) = (file.tokens, file.admin)
            } catch let e as TokenFile.Error {
                throw ValidationError("--auth-token-file: \(e)")
            }
        }
        if config.tokens.isEmpty && config.adminTokens.isEmpty && !["127.0.0.1", "::1", "localhost"].contains(host) {
            FileHandle.standardError.write(Data("r2ec: warning: serving on \(host) without authentication (--auth-token-file)\n".utf8))
        }

        let start = Date()
        let live = try store.map { try Serve.openStore($0) }
        let data = try live?.snapshot.dataset ?? DatasetLoader.load(dataset)
        let registry = ModelRegistry()
        let budget = try memoryBudget.map { text in
            guard let b = MemoryBudget.parse(text, source: "--memory-budget") else {
                throw ValidationError("--memory-budget: expected bytes or a size like 512M or 8G, got '\(text)'")
            }
            return b
        }
        let loader = ModelLoader(dataset: data, checkpoints: Serve.checkpointLoader(budget: budget, precision: precision,
                                                                                 itemTablePrecision: itemTablePrecision,
                                                                                 newItemPrior: newItemPrior,
                                                                                 itemTableCache: itemTableCache,
                                                                                 prefixCacheBytes: try Self.prefixCacheBytes(prefixCache)),
                                 catalogVersion: live?.snapshot.catalogVersion ?? 0, keepsUserHistories: live == nil)
        for spec in (models.isEmpty ? ["popularity"] : models) {
            let model = try loader.load(spec: spec)
            registry.install(model)
            Console.status("loaded \(model.name) (\(model.recommender.kind)) over \(data.name): "
                + "\(data.catalog.count) items, \(live == nil ? model.userHistories.count : data.numUsers) users")
        }
        var batching = BatchingConfig()
        batching.maxBatchSize = maxBatchSize
        batching.maxQueueDelayMicros = maxQueueDelayUs
        batching.maxQueueSize = maxQueueSize
        batching.priorityLevels = priorityLevels
        batching.defaultPriority = priorityLevels
        var reasoning = ReasoningConfig()
        reasoning.maxSlots = reasoningSlots
        reasoning.stepTokenBudget = max(stepTokenBudget, reasoningSlots)
        reasoning.kvTokenBudget = kvTokenBudget
        reasoning.kvPrecision = kvPrecision
        reasoning.defaultMaxTokens = defaultReasoningTokens
        reasoning.maxTokensLimit = maxReasoningTokens
        var limits = RequestLimits()
        limits.maxHistoryEvents = maxHistoryEvents
        limits.maxTopK = maxTopK
        limits.maxItemIds = maxItemIds
        limits.maxBatchRequests = maxBatchRequests
        let core = ServingCore(registry: registry, workerThreads: workers, batching: batching, reasoning: reasoning,
                               limits: limits)
        if let live {
            var liveConfig = LiveLoopConfig()
            liveConfig.limits.maxEventsPerCall = maxEventsPerCall
            liveConfig.limits.maxItemsPerCall = maxItemsPerCall
            liveConfig.eventsPerUser = userHistoryEvents
            liveConfig.cacheBudgetBytes = try userCacheBudget()
            core.live = LiveLoop(store: live.store, snapshot: live.snapshot, registry: registry, config: liveConfig,
                                 metrics: core.metrics)
            Console.status("store \(live.location): \(data.catalog.count) items, \(data.numUsers) users, "
                + "\(data.interactions.count) events, catalogue version \(live.snapshot.catalogVersion)")
        }
        let server = Server(config: config, core: core)
        server.modelLoader = { name, path in
            try loader.load(spec: path, name: name)
        }
        let grpc = try ServeGRPC(server: server, host: host, port: grpcPort, tlsCert: tlsCert, tlsKey: tlsKey,
                                 drainTimeout: drainTimeout)
        try server.run { port in
            let elapsed = String(format: "%.1f", Date().timeIntervalSince(start))
            let metrics = server.metricsPort.map { ", metrics on http://\(host):\($0)/metrics" } ?? ""
            let door = grpc.banner.map { ", \($0)" } ?? ""
            print("r2ec: listening on \(host):\(port) (default model \(registry.defaultModelName)\(door)\(metrics), ready in \(elapsed) s)")
            fflush(stdout)
        }
        live?.store.close()
        print("r2ec: drained, exiting")
    }

    /// Opens and reads the store named by --store; an unusable or empty store stops the server before it listens.
    static func openStore(_ url: String) throws -> (store: EventStore, snapshot: StoreSnapshot, location: String) {
        let store: EventStore
        do {
            store = try Stores.open(url)
        } catch let e as StoreError {
            throw ValidationError("--store: \(e)")
        }
        do {
            let snapshot = try store.snapshot()
            guard !snapshot.dataset.catalog.items.isEmpty else {
                throw ValidationError("--store \(store.location): the store holds no items; fill it first with "
                    + "r2ec store import --dataset DIR --store URL")
            }
            return (store, snapshot, store.location)
        } catch let e as StoreError {
            store.close()
            throw ValidationError("--store \(store.location): \(e)")
        } catch {
            store.close()
            throw error
        }
    }
}

extension Serve {
    /// --prefix-cache: bytes, or a size like 512M (0: off).
    static func prefixCacheBytes(_ text: String) throws -> Int {
        if text.trimmingCharacters(in: .whitespaces) == "0" { return 0 }
        guard let b = MemoryBudget.parse(text, source: "--prefix-cache") else {
            throw ValidationError("--prefix-cache: expected bytes or a size like 256M or 1G (0: off), got '\(text)'")
        }
        return b.bytes
    }

    /// Reads a dual-head checkpoint directory (weights, tokenizer, item table, calibrator) over the dataset, within
    /// `budget` (or 80% of the memory available at the time of each load), scoring against the item table in
    /// `itemTablePrecision`, its projections packed in `precision` (bfloat16: the caller checks `isSupported`), with
    /// new items' content prior of weight `newItemPrior`, keeping item tables in `itemTableCache` (a directory)
    /// when given. Never writes into the checkpoint directory.
    static func checkpointLoader(budget: MemoryBudget?, precision: PackedMatrix.Precision = .float32,
                                 itemTablePrecision: ItemTablePrecision = .float32,
                                 newItemPrior: Float = 0, itemTableCache: String? = nil,
                                 prefixCacheBytes: Int = 256 << 20) -> CheckpointLoader {
        { directory, dataset in
            Console.status("loading dual-head checkpoint \(directory)")
            let model = try DualHeadLoader.load(directory: directory, dataset: dataset, budget: budget ?? .available(),
                                                itemTableCache: itemTableCache.map { ItemTableCache(directory: $0) },
                                                progress: true, precision: precision,
                                                itemTablePrecision: itemTablePrecision, newItemPrior: newItemPrior)
            if prefixCacheBytes > 0 && model.promptFormat.extendsAcrossEvents {
                model.prefixCache = PrefixCache(budget: prefixCacheBytes)
            }
            return (model, try DualHeadLoader.calibrator(directory: directory, model: model, dataset: dataset))
        }
    }
}

extension Serve {
    /// --item-table-cache: a directory, or a path where one can be made (it is created at the first build).
    static func validate(itemTableCache: String?) throws {
        guard let path = itemTableCache else { return }
        guard !path.isEmpty else { throw ValidationError("--item-table-cache: empty path") }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw ValidationError("--item-table-cache: '\(path)' exists and is not a directory")
        }
    }
}

extension KVPrecision: ExpressibleByArgument {}
extension ItemTablePrecision: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}

enum LogFormat: String, CaseIterable, ExpressibleByArgument {
    case text, json
}
