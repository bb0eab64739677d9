// `r2ec bench rpc`: closed-loop load (N connections x M calls in flight) on Health/Check and Recommend over
// loopback, against an in-process server (or --target), with redis-benchmark PING measured in the same run.
import ArgumentParser
import Data
import Foundation
import R2ecProtoC
import RPC
import Serving
#if GRPC
import GRPCDoor
#endif

struct BenchRPC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rpc",
        abstract: "RPC throughput and latency (Health and Recommend) on loopback, beside redis-benchmark PING.")

    @Option(help: "Server to load (HOST:PORT); default: start one in this process over --dataset.") var target: String?
    @Option(help: "Dataset for the in-process server and for Recommend histories.") var dataset = "data/ml-100k"
    @Option(help: "Model the in-process server serves.") var model = "popularity"
    @Option(help: "Connections.") var connections = 50
    @Option(help: "Calls in flight per connection.") var inFlight = 1
    @Option(help: "Seconds measured per method (after one second of warm-up).") var seconds = 5.0
    @Option(help: "Methods to load: health, recommend.") var methods: [String] = ["health", "recommend"]
    @Flag(inversion: .prefixedNo, help: "Also run redis-benchmark PING (no pipelining, same client count) on a private redis-server.")
    var redis = true
    @Flag(inversion: .prefixedNo, help: "Also measure the loopback floor: a bare C epoll server and client (r2ec framing; RESP under redis-benchmark), and the C client against the r2ec server.")
    var floor = true
    @Option(help: "Write the results as JSON here.") var json: String?
    @Flag(help: "Also load the same methods over the gRPC door of the same server (--grpc-target with --target), and a grpc-swift echo server as gRPC's own anchor.")
    var grpc = false
    @Option(help: "The gRPC port (HOST:PORT) of the --target server, for --grpc.") var grpcTarget: String?

    func validate() throws {
        guard (1...10_000).contains(connections) else {
            throw ValidationError("--connections: expected 1...10000, got \(connections)")
        }
        guard (1...1024).contains(inFlight) else { throw ValidationError("--in-flight: expected 1...1024, got \(inFlight)") }
        guard seconds > 0 && seconds.isFinite else { throw ValidationError("--seconds: expected > 0, got \(seconds)") }
        if let bad = methods.first(where: { !["health", "recommend"].contains($0) }) {
            throw ValidationError("--methods: health or recommend, got '\(bad)'")
        }
    }

    func run() throws {
        let data = try DatasetLoader.load(dataset)
        var host = "127.0.0.1", port = 0
        var local: InProcessServer?
        if let target {
            (host, port) = try parseTarget(target)
        } else {
            let registry = ModelRegistry()
            registry.install(try ModelLoader(dataset: data).load(spec: model))
            local = try InProcessServer(registry: registry)
            port = local!.port
        }
        var grpcHost = host, grpcPort = 0
        #if GRPC
        var door: GRPCDoor?
        if grpc {
            if let grpcTarget {
                (grpcHost, grpcPort) = try parseTarget(grpcTarget)
            } else if let local {
                door = GRPCDoor(config: GRPCDoorConfig(), router: local.server.router, metrics: local.server.core.metrics)
                grpcPort = try door!.start()
            } else {
                throw ValidationError("--grpc with --target needs --grpc-target HOST:PORT (the server's --grpc-port)")
            }
        }
        #else
        if grpc { throw ValidationError("--grpc: this r2ec was built without the GRPC package trait") }
        #endif

        var rows: [[String: Any]] = []
        Console.status("bench rpc: \(connections) connection(s) x \(inFlight) in flight, \(seconds) s per method, port \(port)")
        print("| load | clients | in flight | calls/s | p50 ms | p90 ms | p99 ms | errors |")
        print("|---|---|---|---|---|---|---|---|")
        for method in methods {
            let (name, requests) = try workload(method, data: data)
            var plan = LoadGenerator.Plan(port: port, method: name, requests: requests)
            plan.host = host
            plan.connections = connections
            plan.inFlight = inFlight
            plan.duration = seconds
            let r = try LoadGenerator(plan).run()
            let errors = r.statuses.filter { $0.key != .ok }.values.reduce(0, +)
            print(String(format: "| r2ec %@ | %d | %d | %.0f | %.3f | %.3f | %.3f | %d |", method, connections, inFlight,
                         r.throughput, r.percentile(50) * 1e3, r.percentile(90) * 1e3, r.percentile(99) * 1e3, errors))
            rows.append(["load": "r2ec \(method)", "clients": connections, "in_flight": inFlight, "throughput": r.throughput,
                         "p50_ms": r.percentile(50) * 1e3, "p90_ms": r.percentile(90) * 1e3,
                         "p99_ms": r.percentile(99) * 1e3, "errors": errors])
            #if GRPC
            if grpc {
                var g = GRPCLoad.Plan(port: grpcPort, path: name, requests: requests)
                g.host = grpcHost
                g.connections = connections
                g.inFlight = inFlight
                g.duration = seconds
                rows.append(grpcRow("gRPC \(method)", try GRPCLoad.run(g)))
            }
            #endif
        }
        // The same Health calls from the bare C client: what the r2ec server does when the load costs (almost) nothing.
        let healthCall = LoadGenerator.callBytes(method: "/r2ec.v1.Health/Check", request: [])
        let loopback = ["127.0.0.1", "localhost"].contains(host)
        if floor, loopback, methods.contains("health") {
            rows.append(floorRow("r2ec health, C client",
                                 try LoopbackFloor.load(port: port, .frames, request: healthCall, connections: connections,
                                                        seconds: seconds)))
        }
        #if GRPC
        if grpc {
            door?.shutdown()
            door?.wait(seconds: 10)
            // gRPC's anchor: the same client and HTTP/2 stack against a handler that only echoes.
            let echo = try GRPCEchoServer()
            var g = GRPCLoad.Plan(port: echo.port, path: GRPCEchoServer.path, requests: [[]])
            g.connections = connections
            g.inFlight = inFlight
            g.duration = seconds
            rows.append(grpcRow("grpc-swift echo", try GRPCLoad.run(g)))
            echo.stop()
        }
        #endif
        _ = (grpcHost, grpcPort)
        local?.stop()

        // The floor: a bare C epoll server answering the same Health calls, under the r2ec load generator and under
        // the bare C client.
        if floor {
            let bare = try LoopbackFloor.Server(.frames)
            var plan = LoadGenerator.Plan(port: bare.port, method: "/r2ec.v1.Health/Check", requests: [[]])
            plan.connections = connections
            plan.inFlight = 1
            plan.duration = seconds
            let r = try LoadGenerator(plan).run()
            let errors = r.statuses.filter { $0.key != .ok }.values.reduce(0, +)
            print(String(format: "| floor server, r2ec load generator | %d | 1 | %.0f | %.3f | %.3f | %.3f | %d |", connections,
                         r.throughput, r.percentile(50) * 1e3, r.percentile(90) * 1e3, r.percentile(99) * 1e3, errors))
            rows.append(["load": "floor server, r2ec load generator", "clients": connections, "in_flight": 1,
                         "throughput": r.throughput, "p50_ms": r.percentile(50) * 1e3, "p90_ms": r.percentile(90) * 1e3,
                         "p99_ms": r.percentile(99) * 1e3, "errors": errors])
            rows.append(floorRow("floor server, C client",
                                 try LoopbackFloor.load(port: bare.port, .frames, request: healthCall, connections: connections,
                                                        seconds: seconds)))
            bare.stop()
        }

        if redis, let r = try RedisPeer.pingRate(clients: connections, seconds: seconds) {
            print(String(format: "| redis-benchmark PING_MBULK | %d | 1 | %.0f | %.3f | - | %.3f | 0 |", connections, r.rate,
                         r.p50, r.p99))
            rows.append(["load": "redis PING", "clients": connections, "in_flight": 1, "throughput": r.rate,
                         "p50_ms": r.p50, "p99_ms": r.p99])
            if floor {
                // The bare C server speaking RESP under the same redis-benchmark: redis-server's own cost.
                let bare = try LoopbackFloor.Server(.resp)
                if let f = try RedisPeer.benchmark(port: bare.port, clients: connections, seconds: seconds) {
                    print(String(format: "| floor server (RESP), redis-benchmark | %d | 1 | %.0f | %.3f | - | %.3f | 0 |",
                                 connections, f.rate, f.p50, f.p99))
                    rows.append(["load": "floor server (RESP), redis-benchmark", "clients": connections, "in_flight": 1,
                                 "throughput": f.rate, "p50_ms": f.p50, "p99_ms": f.p99])
                }
                bare.stop()
            }
            if let health = rows.first(where: { ($0["load"] as? String) == "r2ec health" }),
               let t = health["throughput"] as? Double {
                print(String(format: "\nHealth/Check calls per second over redis PING: %.2fx", t / r.rate))
            }
            for row in rows {
                guard let load = row["load"] as? String, load.hasPrefix("floor") || load.hasSuffix("C client"),
                      let t = row["throughput"] as? Double else { continue }
                print(String(format: "%@ over redis PING: %.2fx", load, t / r.rate))
            }
            if let health = rows.first(where: { ($0["load"] as? String) == "gRPC health" }),
               let t = health["throughput"] as? Double {
                print(String(format: "gRPC Health/Check calls per second over redis PING: %.2fx", t / r.rate))
            }
        }
        if let health = rows.first(where: { ($0["load"] as? String) == "gRPC health" }),
           let echo = rows.first(where: { ($0["load"] as? String) == "grpc-swift echo" }),
           let t = health["throughput"] as? Double, let e = echo["throughput"] as? Double {
            print(String(format: "gRPC Health/Check calls per second over the grpc-swift echo server: %.2fx", t / e))
        }
        if let json {
            let body = try JSONSerialization.data(withJSONObject: ["bench": "rpc", "levels": rows], options: [.prettyPrinted, .sortedKeys])
            try body.write(to: URL(fileURLWithPath: json))
        }
    }

    /// Prints a row of the bare C client and returns it for the JSON (its latency is the mean, in the p50 column's
    /// place in the JSON as mean_ms).
    private func floorRow(_ load: String, _ r: LoopbackFloor.Result) -> [String: Any] {
        print(String(format: "| %@ | %d | 1 | %.0f | - | - | - | %d |", load, connections, r.throughput, r.errors))
        return ["load": load, "clients": connections, "in_flight": 1, "throughput": r.throughput, "mean_ms": r.meanLatencyMs,
                "errors": r.errors]
    }

    #if GRPC
    /// Prints a gRPC load's row and returns it for the JSON.
    private func grpcRow(_ load: String, _ r: GRPCLoad.Result) -> [String: Any] {
        let errors = r.errors.values.reduce(0, +)
        print(String(format: "| %@ | %d | %d | %.0f | %.3f | %.3f | %.3f | %d |", load, connections, inFlight,
                     r.throughput, r.percentile(50) * 1e3, r.percentile(90) * 1e3, r.percentile(99) * 1e3, errors))
        if !r.errors.isEmpty { Console.status("\(load): errors \(r.errors)") }
        return ["load": load, "clients": connections, "in_flight": inFlight, "throughput": r.throughput,
                "p50_ms": r.percentile(50) * 1e3, "p90_ms": r.percentile(90) * 1e3, "p99_ms": r.percentile(99) * 1e3,
                "errors": errors]
    }
    #endif

    /// The method name and request payloads of a workload.
    private func workload(_ method: String, data: Dataset) throws -> (String, [[UInt8]]) {
        switch method {
        case "health":
            return ("/r2ec.v1.Health/Check", [[]])
        case "recommend":
            // Histories of real users (their last 20 items), 256 of them round-robin.
            let sequences = data.sequences()
            let payloads = (0..<min(256, sequences.count)).map { u -> [UInt8] in
                let ids = sequences[u].items.suffix(20).map { data.catalog[$0].id }
                return RequestEncoding.recommend(itemIds: ids, topK: 10)
            }
            return ("/r2ec.v1.Recommender/Recommend", payloads)
        default:
            throw ValidationError("--methods: unknown method '\(method)' (health, recommend)")
        }
    }
}

/// redis-benchmark PING against a private redis-server on a free port, for a same-run comparison.
enum RedisPeer {
    static func pingRate(clients: Int, seconds: Double) throws -> (rate: Double, p50: Double, p99: Double)? {
        guard let server = which("redis-server"), let bench = which("redis-benchmark") else {
            Console.status("redis-server/redis-benchmark not installed (apt-get install redis-server redis-tools): skipping the peer")
            return nil
        }
        let port = 20000 + Int.random(in: 0..<20000)
        let redis = Process()
        redis.executableURL = URL(fileURLWithPath: server)
        redis.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        redis.standardOutput = FileHandle.nullDevice
        try redis.run()
        defer { redis.terminate(); redis.waitUntilExit() }
        Thread.sleep(forTimeInterval: 0.5)
        return try benchmark(port: port, clients: clients, seconds: seconds, redisBenchmark: bench)
    }

    /// redis-benchmark PING (no pipelining) against the server on 127.0.0.1:`port`.
    static func benchmark(port: Int, clients: Int, seconds: Double,
                          redisBenchmark: String? = which("redis-benchmark")) throws -> (rate: Double, p50: Double, p99: Double)? {
        guard let bench = redisBenchmark else { return nil }
        // About `seconds` of work at ~60k/s; redis-benchmark counts requests, not time.
        let n = max(50_000, Int(seconds * 60_000))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bench)
        p.arguments = ["-h", "127.0.0.1", "-p", "\(port)", "-c", "\(clients)", "-n", "\(n)", "-P", "1", "-t", "ping", "--csv"]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        // CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
        for line in out.split(separator: "\n") where line.hasPrefix("\"PING_MBULK\"") {
            let f = line.split(separator: ",").map { Double($0.replacingOccurrences(of: "\"", with: "")) ?? .nan }
            if f.count >= 7 { return (f[1], f[4], f[6]) }
        }
        Console.status("could not read redis-benchmark's output: \(out.prefix(300))")
        return nil
    }

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}

/// HOST:PORT of a --target option.
func parseTarget(_ target: String) throws -> (String, Int) {
    guard let colon = target.lastIndex(of: ":"), let port = Int(target[target.index(after: colon)...]) else {
        throw ValidationError("--target: expected HOST:PORT, got '\(target)'")
    }
    return (String(target[..<colon]), port)
}
