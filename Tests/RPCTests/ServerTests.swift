// The server over loopback: calls, bad input, cancellation, deadlines, protocol violations, metrics, reload, auth
// and the graceful drain, through the blocking Client and raw frames.
import Data
import Eval
import Foundation
import R2ecProtoC
@testable import RPC
import Serving
import XCTest

final class ServerTests: ServerFixture {
    // MARK: Tests

    func testRecommendRanksByPopularityAndExcludesSeen() throws {
        try startServer()
        let c = try Client(port: port)
        XCTAssertEqual(recommendedIds(try c.call(recommend, recommendRequest(["3"], topK: 3))), ["1", "2", "5"], "ties (2 and 5 once each) go to the smaller index")
        XCTAssertEqual(recommendedIds(try c.call(recommend, recommendRequest(["3"], topK: 2, includeSeen: true))), ["3", "1"])
        // Default top_k is 10, capped by what is left: 6 items minus 1 seen.
        XCTAssertEqual(recommendedIds(try c.call(recommend, recommendRequest(["3"]))).count, 5)
    }

    func testBadRequestsGetClearStatusesAndTheConnectionKeepsServing() throws {
        try startServer()
        let c = try Client(port: port)
        XCTAssertEqual(status(c, recommend, recommendRequest(["99"]))?.field, "history[0].item_id")
        XCTAssertEqual(status(c, recommend, recommendRequest(["99"]))?.code, .notFound)
        XCTAssertEqual(status(c, recommend, recommendRequest([]))?.code, .invalidArgument)
        XCTAssertEqual(status(c, recommend, recommendRequest(["1"], topK: 7))?.field, "top_k")
        XCTAssertEqual(status(c, "/r2ec.v1.Recommender/Nope", [])?.code, .unimplemented)
        XCTAssertEqual(status(c, recommend, [0xff])?.code, .invalidArgument)
        XCTAssertEqual(status(c, recommend, recommendRequest(["1"]), timeoutMs: -1)?.code, .deadlineExceeded)
        // CANCEL of a stream never opened is ignored.
        try c.sendRaw(Frame(header: FrameHeader(type: .cancel, streamId: 999, length: 0), payload: []).bytes)
        XCTAssertEqual(try c.call("/r2ec.v1.Health/Check", []), [0x08, 0x01])
    }

    func testPingIsAnsweredWithItsBytes() throws {
        try startServer()
        let c = try Client(port: port)
        try c.sendRaw(Frame(header: FrameHeader(type: .ping, streamId: 0, length: 0), payload: Array(1...8)).bytes)
        let f = try XCTUnwrap(try c.readFrame(timeout: 5))
        XCTAssertEqual(f.header.type, .pong)
        XCTAssertEqual(f.payload, Array(1...8))
    }

    func testDeadlineExpiresWhileTheModelIsBusy() throws {
        try startServer(delay: 0.3)
        let c = try Client(port: port)
        let t0 = Date()
        XCTAssertEqual(status(c, recommend, recommendRequest(["1"]), timeoutMs: 50)?.code, .deadlineExceeded)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 0.29, "answered at the deadline, not after the work")
    }

    func testCancelAnswersCancelledAtOnce() throws {
        try startServer(delay: 0.3)
        let c = try Client(port: port)
        let id = try c.start(recommend, recommendRequest(["1"]))
        try c.sendRaw(Frame(header: FrameHeader(type: .cancel, streamId: id, length: 0), payload: []).bytes)
        let f = try XCTUnwrap(try c.readFrame(timeout: 5))
        XCTAssertEqual(f.header.type, .trailer)
        XCTAssertEqual(try Client.decodeStatus(f.payload).code, .cancelled)
    }

    func testOverLimitFrameGetsGoAwayAndOtherConnectionsAreUnaffected() throws {
        var cfg = ServerConfig()
        cfg.maxFramePayload = 1024
        try startServer(config: cfg)
        let bystander = try Client(port: port)
        let bad = try Client(port: port)
        try bad.sendRaw(FrameHeader(type: .message, streamId: 1, length: 1 << 30).bytes)
        let f = try XCTUnwrap(try bad.readFrame(timeout: 5))
        XCTAssertEqual(f.header.type, .goAway)
        let goAway = try XCTUnwrap(r2ec__v1__go_away__unpack(nil, f.payload.count, f.payload))
        XCTAssertEqual(goAway.pointee.code, StatusCode.resourceExhausted.rawValue)
        r2ec__v1__go_away__free_unpacked(goAway, nil)
        XCTAssertNil(try bad.readFrame(timeout: 5), "then the server closes the connection")
        XCTAssertEqual(try bystander.call("/r2ec.v1.Health/Check", []), [0x08, 0x01])
    }

    func testTruncatedFrameThenDisconnectLeavesTheServerServing() throws {
        try startServer()
        do {
            let c = try Client(port: port)
            try c.sendRaw(Array(FrameHeader(type: .call, streamId: 1, length: 100).bytes + [1, 2, 3]))
        }
        let c = try Client(port: port)
        XCTAssertEqual(try c.call("/r2ec.v1.Health/Check", []), [0x08, 0x01])
    }

    func testDrainFinishesAcceptedCallsThenClosesWithGoAway() throws {
        try startServer(delay: 0.3)
        let c = try Client(port: port)
        let id = try c.start(recommend, recommendRequest(["1"], topK: 2))
        Thread.sleep(forTimeInterval: 0.05)
        server.shutdown()
        var sawGoAway = false, sawAnswer = false
        while let f = try c.readFrame(timeout: 10) {
            switch f.header.type {
            case .goAway:
                sawGoAway = true
                let g = try XCTUnwrap(r2ec__v1__go_away__unpack(nil, f.payload.count, f.payload))
                XCTAssertEqual(g.pointee.last_stream_id, id)
                XCTAssertEqual(g.pointee.code, 0)
                r2ec__v1__go_away__free_unpacked(g, nil)
            case .message:
                XCTAssertEqual(recommendedIds(f.payload), ["3", "2"])
            case .trailer:
                XCTAssertEqual(try Client.decodeStatus(f.payload).code, .ok)
                sawAnswer = true
            default: break
            }
        }
        XCTAssertTrue(sawGoAway)
        XCTAssertTrue(sawAnswer, "the call accepted before the drain was answered")
    }

    /// One HTTP/1.1 exchange over a plain socket: the whole response as text.
    func http(_ port: Int, _ request: String) throws -> String {
        let c = try Client(port: port)
        try c.sendRaw(Array(request.utf8))
        var out: [UInt8] = []
        let fd = c.rawDescriptor
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    func testMetricsAndHealthzOverHTTP() throws {
        var cfg = ServerConfig()
        cfg.metricsPort = 0
        try startServer(config: cfg)
        let c = try Client(port: port)
        _ = try c.call(recommend, recommendRequest(["3"], topK: 2))
        _ = status(c, recommend, recommendRequest(["404"]))
        let metricsPort = try XCTUnwrap(server.metricsPort)
        let metrics = try http(metricsPort, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(metrics.hasPrefix("HTTP/1.1 200 OK"), metrics)
        let version = "version=\"\(try XCTUnwrap(server.core.registry.all.first).version)\""
        XCTAssertTrue(metrics.contains("r2ec_requests_total{method=\"/r2ec.v1.Recommender/Recommend\",code=\"OK\",model=\"popularity\",\(version)} 1"), metrics)
        // The unknown item fails before a model answers: no model label.
        XCTAssertTrue(metrics.contains("code=\"NOT_FOUND\",model=\"\",version=\"\"} 1"), metrics)
        XCTAssertTrue(metrics.contains("r2ec_batch_size_requests_bucket{path=\"direct\",model=\"popularity\",\(version),le="), metrics)
        XCTAssertTrue(metrics.contains("r2ec_queue_depth_requests{path=\"direct\"} 0"), metrics)
        XCTAssertTrue(metrics.contains("\nprocess_open_fds "), metrics)
        let health = try http(metricsPort, "GET /healthz HTTP/1.1\r\n\r\n")
        XCTAssertTrue(health.hasPrefix("HTTP/1.1 200 OK") && health.hasSuffix("SERVING\n"), health)
        XCTAssertTrue(try http(metricsPort, "GET /nope HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 404"))
        XCTAssertTrue(try http(metricsPort, "BLAH\r\n\r\n").hasPrefix("HTTP/1.1 400"))
    }

    func testReloadUnderLoadLosesNoCall() throws {
        try startServer()
        let c = try Client(port: port)
        let registry = server.core.registry
        XCTAssertEqual(try registry.model("").version, 1)
        var ids: [UInt32] = []
        for i in 0..<400 {
            ids.append(try c.start(recommend, recommendRequest([String(i % 6 + 1)], topK: 3)))
            if i == 100 { server.reloadAll() }
        }
        var answered = Set<UInt32>()
        while answered.count < ids.count, let f = try c.readFrame(timeout: 10) {
            guard f.header.type == .trailer else { continue }
            XCTAssertEqual(try Client.decodeStatus(f.payload).code, .ok)
            answered.insert(f.header.streamId)
        }
        XCTAssertEqual(answered, Set(ids), "every call accepted before, during and after the reload is answered")
        let deadline = Date().addingTimeInterval(10)
        while (try registry.model("").version) < 2 && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        XCTAssertEqual(try registry.model("").version, 2)
        XCTAssertEqual(try registry.model("").spec, "popularity")
        XCTAssertEqual(recommendedIds(try c.call(recommend, recommendRequest(["3"], topK: 2))), ["1", "2"])
    }

    func testAuthentication() throws {
        var cfg = ServerConfig()
        cfg.tokens = ["user-token"]
        cfg.adminTokens = ["admin-token"]
        try startServer(config: cfg)
        let c = try Client(port: port)
        let health = "/r2ec.v1.Health/Check"
        do { _ = try c.call(health, []); XCTFail() } catch ClientError.status(let e) { XCTAssertEqual(e.code, .unauthenticated) }
        do { _ = try c.call(health, [], metadata: [("authorization", "Bearer nope")]); XCTFail() } catch ClientError.status(let e) {
            XCTAssertEqual(e.code, .unauthenticated)
        }
        XCTAssertEqual(try c.call(health, [], metadata: [("authorization", "Bearer user-token")]), [0x08, 0x01])
        do {
            _ = try c.call("/r2ec.v1.Admin/UnloadModel", [], metadata: [("authorization", "Bearer user-token")])
            XCTFail()
        } catch ClientError.status(let e) { XCTAssertEqual(e.code, .permissionDenied) }
    }
}
