// Closed-loop gRPC load for `r2ec bench rpc --grpc`: N HTTP/2 connections (one grpc-swift client each) x M calls in
// flight, one unary method with raw request bytes, latencies of every call after a warm-up; and the echo server that
// serves as gRPC's own anchor (the same client and transport against a handler that does nothing).
#if GRPC
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Serving

public enum GRPCLoad {
    public struct Plan: Sendable {
        public var host = "127.0.0.1"
        public var port: Int
        public var connections = 16
        public var inFlight = 1
        public var warmup = 1.0
        public var duration = 5.0
        /// "/r2ec.v1.Health/Check".
        public var path: String
        public var requests: [[UInt8]]
        public var metadata: [(String, String)] = []

        public init(port: Int, path: String, requests: [[UInt8]]) {
            self.port = port
            self.path = path
            self.requests = requests
        }
    }

    public struct Result: Sendable {
        public var calls: Int
        public var seconds: Double
        /// Seconds per call measured, sorted.
        public var latencies: [Double]
        public var errors: [String: Int]
        public var throughput: Double { Double(calls) / seconds }

        public func percentile(_ p: Double) -> Double {
            guard !latencies.isEmpty else { return .nan }
            let i = min(latencies.count - 1, Int((p / 100 * Double(latencies.count)).rounded(.up)) - 1)
            return latencies[max(0, i)]
        }
    }

    /// Runs the plan from a synchronous caller.
    public static func run(_ plan: Plan) throws -> Result {
        let done = DispatchSemaphore(value: 0)
        let out = Box<Swift.Result<Result, Error>>(.failure(GRPCDoorError("load did not run")))
        Task.detached {
            do { out.value = .success(try await runAsync(plan)) } catch { out.value = .failure(error) }
            done.signal()
        }
        done.wait()
        return try out.value.get()
    }

    static func runAsync(_ plan: Plan) async throws -> Result {
        let parts = plan.path.split(separator: "/").map(String.init)
        guard parts.count == 2, !plan.requests.isEmpty else { throw GRPCDoorError("bad load plan for \(plan.path)") }
        let descriptor = MethodDescriptor(fullyQualifiedService: parts[0], method: parts[1])
        var metadata = Metadata()
        for (k, v) in plan.metadata { metadata.addString(v, forKey: k) }
        let start = DispatchTime.now().uptimeNanoseconds
        let measureFrom = start + UInt64(plan.warmup * 1e9)
        let end = measureFrom + UInt64(plan.duration * 1e9)
        let request = ClientRequest<[UInt8]>(message: [], metadata: metadata)
        return try await withThrowingTaskGroup(of: ([Double], [String: Int]).self) { group in
            for c in 0..<plan.connections {
                group.addTask {
                    let transport = try HTTP2ClientTransport.Posix(
                        target: plan.host.contains(":") ? .ipv6(host: plan.host, port: plan.port)
                                                        : .ipv4(host: plan.host, port: plan.port),
                        transportSecurity: .plaintext)
                    return try await withGRPCClient(transport: transport) { client in
                        try await withThrowingTaskGroup(of: ([Double], [String: Int]).self) { workers in
                            for w in 0..<plan.inFlight {
                                workers.addTask {
                                    var latencies: [Double] = []
                                    var errors: [String: Int] = [:]
                                    var i = (c * plan.inFlight + w) % plan.requests.count
                                    var call = request
                                    while true {
                                        let t0 = DispatchTime.now().uptimeNanoseconds
                                        if t0 >= end { break }
                                        call.message = plan.requests[i]
                                        i = (i + 1) % plan.requests.count
                                        var failed: String?
                                        do {
                                            try await client.unary(request: call, descriptor: descriptor,
                                                                   serializer: RawSerializer(), deserializer: RawDeserializer(),
                                                                   options: .defaults) { response in
                                                _ = try response.message
                                            }
                                        } catch let e as RPCError {
                                            failed = "\(e.code)"
                                        } catch {
                                            failed = "\(error)"
                                        }
                                        let t1 = DispatchTime.now().uptimeNanoseconds
                                        if t0 >= measureFrom && t1 <= end {
                                            if let failed { errors[failed, default: 0] += 1 }
                                            else { latencies.append(Double(t1 - t0) / 1e9) }
                                        }
                                    }
                                    return (latencies, errors)
                                }
                            }
                            var all: ([Double], [String: Int]) = ([], [:])
                            for try await (l, e) in workers {
                                all.0 += l
                                all.1.merge(e, uniquingKeysWith: +)
                            }
                            return all
                        }
                    }
                }
            }
            var latencies: [Double] = []
            var errors: [String: Int] = [:]
            for try await (l, e) in group {
                latencies += l
                errors.merge(e, uniquingKeysWith: +)
            }
            latencies.sort()
            return Result(calls: latencies.count, seconds: plan.duration, latencies: latencies, errors: errors)
        }
    }
}

/// A grpc-swift server with one raw method, /bench.Echo/Echo, answering each request with its own bytes: the same
/// transport and HTTP/2 stack as the door with no work behind it, the anchor for the door's rate.
public final class GRPCEchoServer: @unchecked Sendable {
    public static let path = "/bench.Echo/Echo"
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let done = DispatchSemaphore(value: 0)
    public let port: Int

    public init(host: String = "127.0.0.1") throws {
        let transport = HTTP2ServerTransport.Posix(address: .ipv4(host: host, port: 0), transportSecurity: .plaintext)
        var router = RPCRouter<HTTP2ServerTransport.Posix>()
        router.registerHandler(forMethod: MethodDescriptor(fullyQualifiedService: "bench.Echo", method: "Echo"),
                               deserializer: RawDeserializer(), serializer: RawSerializer()) { request, _ in
            var echo: [UInt8] = []
            for try await m in request.messages { echo = m }
            let answer = echo
            return StreamingServerResponse(of: [UInt8].self) { writer in
                try await writer.write(answer)
                return [:]
            }
        }
        let server = GRPCServer(transport: transport, router: router)
        self.server = server
        let done = self.done
        Task.detached {
            try? await server.serve()
            done.signal()
        }
        let bound = DispatchSemaphore(value: 0)
        let port = Box<Int?>(nil)
        Task.detached {
            port.value = (try? await transport.listeningAddress)?.ipv4?.port
            bound.signal()
        }
        bound.wait()
        guard let p = port.value else { throw GRPCDoorError("the echo server did not bind") }
        self.port = p
    }

    public func stop() {
        server.beginGracefulShutdown()
        _ = done.wait(timeout: .now() + 10)
    }
}
#endif
