// A server in-process on a loopback port with a tiny catalogue, for the RPC tests: start it with a configuration,
// talk to it with the blocking Client, and drain it after each test.
import Data
import Eval
import Foundation
import R2ecProtoC
@testable import RPC
import Serving
import XCTest

/// Popularity with a configurable delay per call, to hold calls in flight.
final class SlowPopularity: Recommender, @unchecked Sendable {
    let base: Popularity
    let delay: Double
    init(_ base: Popularity, delay: Double) { self.base = base; self.delay = delay }
    var kind: String { "slow-popularity" }
    var catalog: Catalog { base.catalog }
    var configJSON: String { "{}" }
    var numParameters: Int { 0 }
    func scoreAll(_ histories: [UserHistory]) throws -> [Float] {
        Thread.sleep(forTimeInterval: delay)
        return try base.scoreAll(histories)
    }
    func similarities(to item: Int) throws -> [Float] { try base.similarities(to: item) }
}

/// Base class of the tests that need a running server (it has no tests of its own).
class ServerFixture: XCTestCase {
    static func tinyDataset() -> Dataset {
        let items = (1...6).map { Item(id: "\($0)", title: "Movie \($0)") }
        // Item 3 is the most popular (3), then 1 (2), then 2 and 5 (1 each).
        let pairs = [(0, 3), (0, 1), (1, 3), (1, 5), (2, 3), (2, 1), (2, 2)]
        return Dataset(name: "tiny", catalog: Catalog(items: items), userIds: ["u1", "u2", "u3"],
                       interactions: pairs.enumerated().map { i, p in
                           Interaction(user: p.0, item: p.1 - 1, rating: 4, timestamp: Int64(1000 + i)) })
    }

    var server: Server!
    var thread: Thread!
    var port = 0

    func startServer(delay: Double = 0, config: ServerConfig = ServerConfig(), limits: RequestLimits = RequestLimits(),
                     services: [RPCService] = []) throws {
        let data = Self.tinyDataset()
        let pop = Popularity(training: data.interactions, catalog: data.catalog)
        let base = try ModelLoader(dataset: data).load(spec: "popularity")
        let model = delay > 0
            ? ServedModel(name: "popularity", recommender: SlowPopularity(pop, delay: delay), datasetName: "tiny",
                          userHistories: base.userHistories, itemStats: base.itemStats)
            : base
        let registry = ModelRegistry()
        registry.install(model)
        var cfg = config
        cfg.port = 0
        let server = Server(config: cfg, core: ServingCore(registry: registry, limits: limits), services: services)
        let loader = ModelLoader(dataset: data)
        server.modelLoader = { name, spec in try loader.load(spec: spec, name: name) }
        let ready = DispatchSemaphore(value: 0)
        let thread = Thread {
            try! server.run { _ in ready.signal() }
        }
        thread.start()
        XCTAssertEqual(ready.wait(timeout: .now() + 10), .success)
        self.server = server
        self.thread = thread
        self.port = server.boundPort
    }

    override func tearDown() {
        server?.shutdown()
        let deadline = Date().addingTimeInterval(10)
        while thread != nil && !thread.isFinished && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        server = nil
    }

    // MARK: Encoding helpers

    func recommendRequest(_ ids: [String], topK: UInt32 = 0, includeSeen: Bool = false) -> [UInt8] {
        RequestEncoding.recommend(itemIds: ids, topK: Int(topK), includeSeen: includeSeen)
    }

    func recommendedIds(_ payload: [UInt8]) -> [String] { RequestEncoding.recommendedItems(payload).map(\.id) }

    func status(_ client: Client, _ method: String, _ request: [UInt8], timeoutMs: Int64 = 0) -> ServingError? {
        do { _ = try client.call(method, request, timeoutMs: timeoutMs); return nil } catch ClientError.status(let e) {
            return e
        } catch {
            XCTFail("unexpected \(error)")
            return nil
        }
    }

    let recommend = "/r2ec.v1.Recommender/Recommend"

    /// The GOAWAY a server sends before closing, or nil if the connection closes without one.
    func goAway(_ c: Client, timeout: Double = 5) throws -> (lastStreamId: UInt32, code: UInt32, message: String)? {
        while let f = try c.readFrame(timeout: timeout) {
            guard f.header.type == .goAway else { continue }
            let g = try XCTUnwrap(r2ec__v1__go_away__unpack(nil, f.payload.count, f.payload))
            defer { r2ec__v1__go_away__free_unpacked(g, nil) }
            return (g.pointee.last_stream_id, g.pointee.code, swiftString(g.pointee.message))
        }
        return nil
    }
}
