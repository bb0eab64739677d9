// Every limit: the status it answers with, the field it names, the metric it counts, and that the server keeps
// serving others.
import Foundation
import R2ecProtoC
@testable import RPC
import Serving
import XCTest

final class LimitTests: ServerFixture {
    func limitHits(_ limit: String) -> Int {
        let text = String(decoding: server.core.metrics.render(), as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("r2ec_limit_hits_total{limit=\"\(limit)\"}") {
            return Int(Double(line.split(separator: " ").last!)!)
        }
        return 0
    }

    func testRequestSizeLimitsNameTheField() throws {
        var limits = RequestLimits()
        limits.maxHistoryEvents = 3
        limits.maxTopK = 2
        limits.maxItemIds = 2
        try startServer(limits: limits)
        let c = try Client(port: port)
        let history = status(c, recommend, recommendRequest(["1", "2", "3", "4"]))
        XCTAssertEqual(history?.code, .invalidArgument)
        XCTAssertEqual(history?.field, "history")
        XCTAssertEqual(status(c, recommend, recommendRequest(["1"], topK: 3))?.field, "top_k")
        let items = status(c, "/r2ec.v1.Recommender/GetItems", RequestEncoding.getItems(["1", "2", "3"]))
        XCTAssertEqual(items?.field, "item_ids")
        XCTAssertEqual(limitHits("history_length"), 1)
        XCTAssertEqual(limitHits("top_k"), 1)
        XCTAssertEqual(limitHits("item_ids"), 1)
        XCTAssertEqual(recommendedIds(try c.call(recommend, recommendRequest(["1", "2", "3"], topK: 2))).count, 2)
    }

    func testRequestsPerBatch() throws {
        var limits = RequestLimits()
        limits.maxBatchRequests = 2
        try startServer(limits: limits)
        func batch(_ n: Int) -> [UInt8] {
            let arena = CArena()
            let m = arena.message(R2ec__V1__RecommendBatchRequest.self, r2ec__v1__recommend_batch_request__init)
            let list = arena.array(UnsafeMutablePointer<R2ec__V1__RecommendRequest>?.self, count: n)
            for i in 0..<n {
                let bytes = recommendRequest([String(i + 1)], topK: 2)
                list[i] = bytes.withUnsafeBufferPointer { r2ec__v1__recommend_request__unpack(nil, $0.count, $0.baseAddress) }
            }
            m.pointee.n_requests = n
            m.pointee.requests = list
            defer { for i in 0..<n { r2ec__v1__recommend_request__free_unpacked(list[i], nil) } }
            return packMessage(m)
        }
        let c = try Client(port: port)
        let method = "/r2ec.v1.Recommender/RecommendBatch"
        XCTAssertFalse(try c.call(method, batch(2)).isEmpty)
        let refused = status(c, method, batch(3))
        XCTAssertEqual(refused?.code, .invalidArgument)
        XCTAssertEqual(refused?.field, "requests")
        XCTAssertEqual(limitHits("batch_requests"), 1)
    }

    func testCallsInFlightPerConnection() throws {
        var cfg = ServerConfig()
        cfg.maxCallsPerConnection = 2
        try startServer(delay: 0.3, config: cfg)
        let c = try Client(port: port)
        for _ in 0..<3 { try c.start(recommend, recommendRequest(["1"])) }
        var codes: [StatusCode] = []
        while codes.count < 3, let f = try c.readFrame(timeout: 5) {
            if f.header.type == .trailer { codes.append(try Client.decodeStatus(f.payload).code) }
        }
        XCTAssertEqual(codes.first, .resourceExhausted, "the third call is refused at once")
        XCTAssertEqual(codes.filter { $0 == .ok }.count, 2)
        XCTAssertEqual(limitHits("calls_per_connection"), 1)
    }

    func testConnectionLimit() throws {
        var cfg = ServerConfig()
        cfg.maxConnections = 2
        try startServer(config: cfg)
        let a = try Client(port: port), b = try Client(port: port)
        XCTAssertEqual(try a.call("/r2ec.v1.Health/Check", []), [0x08, 0x01])
        let third = try Client(port: port)
        XCTAssertEqual(try goAway(third)?.code, StatusCode.resourceExhausted.rawValue)
        XCTAssertEqual(try b.call("/r2ec.v1.Health/Check", []), [0x08, 0x01])
        XCTAssertEqual(limitHits("connections"), 1)
    }

    func testAFrameLeftUnfinishedIsCutOff() throws {
        var cfg = ServerConfig()
        cfg.frameReadTimeoutSeconds = 0.3
        try startServer(config: cfg)
        let slow = try Client(port: port)
        try slow.sendRaw(Array(FrameHeader(type: .call, streamId: 1, length: 40).bytes.prefix(10)))
        let t0 = Date()
        let g = try XCTUnwrap(try goAway(slow))
        XCTAssertEqual(g.code, StatusCode.deadlineExceeded.rawValue)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 3)
        XCTAssertEqual(limitHits("frame_read_timeout"), 1)
        XCTAssertEqual(try Client(port: port).call("/r2ec.v1.Health/Check", []), [0x08, 0x01])
    }

    func testAnIdleConnectionIsRetired() throws {
        var cfg = ServerConfig()
        cfg.idleTimeoutSeconds = 0.3
        try startServer(config: cfg)
        let idle = try Client(port: port)
        XCTAssertEqual(try idle.call("/r2ec.v1.Health/Check", []), [0x08, 0x01])
        let g = try XCTUnwrap(try goAway(idle))
        XCTAssertEqual(g.code, 0)
        XCTAssertEqual(g.lastStreamId, 1)
        XCTAssertNil(try idle.readFrame(timeout: 5), "then closed")
        XCTAssertEqual(limitHits("idle_timeout"), 1)
    }
}
