// Issue 13's connection items against a real server over loopback: a connection's unsent answers are bounded
// (item 3), large requests are decoded off the loop thread (item 4), a peer that vanishes with a call open frees
// its slot and does not hold the drain (item 5), cancelled watchers are removed (item 6), and the protocol
// decisions of item 13 that need a running server (Watch of an unknown service, the drain timeout).
import Foundation
import R2ecProtoC
@testable import RPC
import Serving
import XCTest

/// Probe.Slow: a handler that takes 300 ms for a request of 64 KiB or more (as decoding millions of history
/// events does) and records whether it ran on the loop thread.
final class ProbeService: RPCService, @unchecked Sendable {
    let serviceName = "test.Probe"
    weak var server: Server?
    private let lock = NSLock()
    private var _onLoop: [Bool] = []
    var onLoop: [Bool] { lock.lock(); defer { lock.unlock() }; return _onLoop }

    var methods: [RPCMethod] {
        [RPCMethod("/test.Probe/Slow") { [self] request, _, response in
            lock.lock()
            _onLoop.append(server?.isOnLoopThread ?? false)
            lock.unlock()
            if request.count >= 64 << 10 { Thread.sleep(forTimeInterval: 0.3) }
            response.respond([UInt8(truncatingIfNeeded: request.count)])
        },
        // An answer of 1 MiB, cheaply (the transport's budget is what is under test).
        RPCMethod("/test.Probe/Big") { _, _, response in response.respond([UInt8](repeating: 7, count: 1 << 20)) },
        // A handler whose work grows with its request's entries: off the loop whatever the request's size.
        RPCMethod("/test.Probe/Heavy", offLoop: true) { [self] request, _, response in
            lock.lock()
            _onLoop.append(server?.isOnLoopThread ?? false)
            lock.unlock()
            response.respond([UInt8(truncatingIfNeeded: request.count)])
        }]
    }
}

final class ConnectionHardeningTests: ServerFixture {
    let health = "/r2ec.v1.Health/Check"
    let watch = "/r2ec.v1.Health/Watch"

    func limitHits(_ limit: String) -> Int {
        let text = String(decoding: server.core.metrics.render(), as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("r2ec_limit_hits_total{limit=\"\(limit)\"}") {
            return Int(Double(line.split(separator: " ").last!)!)
        }
        return 0
    }

    func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return condition()
    }

    func sendCall(_ c: Client, _ id: UInt32, _ method: String) throws {
        try c.sendRaw(Frame(header: FrameHeader(type: .call, streamId: id, length: 0),
                            payload: Client.callHeader(method: method, timeoutMs: 0, metadata: [])).bytes)
    }

    // MARK: Item 5

    func testAPeerThatClosesWithACallOpenFreesItsConnectionSlot() throws {
        var cfg = ServerConfig()
        cfg.maxConnections = 1
        try startServer(config: cfg)
        // A CALL without its MESSAGE, then the socket closed.
        var gone = try Client(port: port)
        try sendCall(gone, 1, recommend)
        XCTAssertTrue(waitUntil(3) { server.openConnections == 1 })
        gone.close()
        XCTAssertTrue(waitUntil(3) { server.openConnections == 0 }, "the slot is freed")
        // An open Watch, then the socket closed.
        gone = try Client(port: port)
        XCTAssertTrue(waitUntil(3) { server.openConnections == 1 })
        _ = try gone.start(watch, [])
        XCTAssertEqual(try gone.readFrame(timeout: 5)?.header.type, .message)
        gone.close()
        XCTAssertTrue(waitUntil(3) { server.openConnections == 0 }, "the slot is freed")
        XCTAssertEqual(server.health.watcherCount, 0)
        XCTAssertEqual(try Client(port: port).call(health, []), [0x08, 0x01], "the next client is served")
    }

    func testShutdownDoesNotWaitForAPeerThatVanishedMidCall() throws {
        var cfg = ServerConfig()
        cfg.drainTimeoutSeconds = 20
        try startServer(config: cfg)
        let gone = try Client(port: port)
        try sendCall(gone, 1, recommend)
        try gone.sendRaw(Array(FrameHeader(type: .message, flags: .endStream, streamId: 1, length: 50).bytes.prefix(7)))
        gone.close()
        Thread.sleep(forTimeInterval: 0.1)
        let t0 = Date()
        server.shutdown()
        XCTAssertTrue(waitUntil(5) { thread.isFinished })
        XCTAssertLessThan(Date().timeIntervalSince(t0), 2, "the drain did not wait for the vanished peer")
    }

    // MARK: Item 6

    func testCancelledWatchersAreRemoved() throws {
        try startServer()
        let c = try Client(port: port)
        for _ in 0..<200 {
            let id = try c.start(watch, [])
            try c.sendRaw(Frame(header: FrameHeader(type: .cancel, streamId: id, length: 0), payload: []).bytes)
        }
        var trailers = 0
        while trailers < 200, let f = try c.readFrame(timeout: 5) { if f.header.type == .trailer { trailers += 1 } }
        XCTAssertEqual(trailers, 200)
        XCTAssertTrue(waitUntil(3) { server.health.watcherCount == 0 }, "\(server.health.watcherCount) watchers left")
        // Deadlines end watches too.
        _ = try c.start(watch, [], timeoutMs: 50)
        XCTAssertTrue(waitUntil(3) { server.health.watcherCount == 0 })
    }

    // MARK: Item 3

    func testAnswersBeyondTheConnectionOutputBudgetAreShed() throws {
        var cfg = ServerConfig()
        cfg.connectionOutputBudget = 4 << 20
        cfg.writeHighWater = 1 << 30  // keep reading: only the budget bounds what the connection holds
        cfg.writeLowWater = 1 << 29
        let probe = ProbeService()
        try startServer(config: cfg, services: [probe])
        let c = try Client(port: port)
        let n = 40  // 40 MiB of answers, never read while they are produced
        for _ in 0..<n { _ = try c.start("/test.Probe/Big", []) }
        XCTAssertTrue(waitUntil(10) { limitHits("connection_output") > 0 }, "answers were shed")
        var codes: [StatusCode: Int] = [:]
        var trailers = 0, bytes = 0
        while trailers < n, let f = try c.readFrame(timeout: 10) {
            if f.header.type == .message { bytes += f.payload.count }
            if f.header.type == .trailer {
                trailers += 1
                codes[try Client.decodeStatus(f.payload).code, default: 0] += 1
            }
        }
        XCTAssertEqual(trailers, n, "every call is answered")
        XCTAssertGreaterThan(codes[.ok] ?? 0, 0)
        XCTAssertGreaterThan(codes[.resourceExhausted] ?? 0, 0)
        XCTAssertEqual(bytes, (codes[.ok] ?? 0) << 20)
        XCTAssertEqual(try c.call(health, []), [0x08, 0x01], "the connection goes on")
    }

    // MARK: Item 4

    func testLargeRequestsAreHandledOffTheLoopThread() throws {
        let probe = ProbeService()
        try startServer(services: [probe])
        probe.server = server
        let big = try Client(port: port)
        let small = try Client(port: port)
        XCTAssertEqual(try small.call("/test.Probe/Slow", [1, 2, 3]), [3])
        _ = try big.start("/test.Probe/Slow", Array(repeating: 7, count: 1 << 20))
        Thread.sleep(forTimeInterval: 0.05)
        let t0 = Date()
        XCTAssertEqual(try small.call(health, []), [0x08, 0x01])
        XCTAssertLessThan(Date().timeIntervalSince(t0), 0.2, "a bystander is not stalled by a large request")
        XCTAssertEqual(try big.readFrame(timeout: 5)?.header.type, .message)
        XCTAssertEqual(probe.onLoop, [true, false], "small on the loop, large off it")
    }

    /// RecommendBatch resolves up to --max-batch-requests histories before its batch is queued: a 30 KB request of
    /// 256 requests kept the soak's loop thread busy (bystander Health p99 64 ms), so it never runs on the loop.
    func testHeavyMethodsRunOffTheLoopThreadWhateverTheirSize() throws {
        let probe = ProbeService()
        try startServer(services: [probe])
        probe.server = server
        let c = try Client(port: port)
        XCTAssertEqual(try c.call("/test.Probe/Heavy", [1, 2, 3]), [3])
        XCTAssertEqual(try c.call("/test.Probe/Slow", [1, 2, 3]), [3])
        XCTAssertEqual(probe.onLoop, [false, true], "the heavy method off the loop, a light one on it")
        let batch = RecommenderService(core: server.core).methods.first { $0.name == "/r2ec.v1.Recommender/RecommendBatch" }
        XCTAssertEqual(batch?.offLoop, true)
    }

    // MARK: Item 13

    func testWatchOfAnUnknownServiceAnswersServiceUnknownAndStaysOpen() throws {
        try startServer()
        let c = try Client(port: port)
        let request: [UInt8] = [0x0a, 0x04] + Array("nope".utf8)
        let id = try c.start(watch, request)
        let f = try XCTUnwrap(try c.readFrame(timeout: 5))
        XCTAssertEqual(f.header.type, .message)
        XCTAssertEqual(f.payload, [0x08, 0x03], "SERVICE_UNKNOWN")
        XCTAssertThrowsError(try c.readFrame(timeout: 0.2), "the stream stays open: nothing more comes")
        XCTAssertEqual(server.health.watcherCount, 1)
        try c.sendRaw(Frame(header: FrameHeader(type: .cancel, streamId: id, length: 0), payload: []).bytes)
        XCTAssertEqual(try Client.decodeStatus(XCTUnwrap(try c.readFrame(timeout: 5)).payload).code, .cancelled)
        XCTAssertEqual(status(c, health, request)?.code, .notFound, "Check of an unknown service is NOT_FOUND")
    }

    func testTheDrainTimeoutAnswersCallsStillRunningUnavailable() throws {
        var cfg = ServerConfig()
        cfg.drainTimeoutSeconds = 0.3
        try startServer(delay: 2, config: cfg)
        let c = try Client(port: port)
        let id = try c.start(recommend, recommendRequest(["1"]))
        Thread.sleep(forTimeInterval: 0.05)
        server.shutdown()
        var code: StatusCode?
        let t0 = Date()
        while let f = try c.readFrame(timeout: 5) {
            if f.header.type == .trailer && f.header.streamId == id { code = try Client.decodeStatus(f.payload).code; break }
        }
        XCTAssertEqual(code, .unavailable, "answered when the drain timeout ran out, not left unanswered")
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1.5)
        XCTAssertTrue(waitUntil(3) { thread.isFinished })
    }
}
