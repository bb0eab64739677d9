// Model loads (Admin/LoadModel, SIGHUP reloads) run one at a time, a bounded number wait, and a SIGHUP that finds a
// reload already queued joins it. The loader here blocks on a gate, so what is queued, running and refused at each
// moment is known exactly.
import Foundation
@testable import RPC
import Serving
import XCTest

final class ModelLoadQueueTests: ServerFixture {
    let loadModel = "/r2ec.v1.Admin/LoadModel"

    /// LoadModelRequest{name, path}, encoded by hand (fields 1 and 2, length-delimited).
    func loadRequest(name: String, path: String) -> [UInt8] {
        [0x0a, UInt8(name.utf8.count)] + Array(name.utf8) + [0x12, UInt8(path.utf8.count)] + Array(path.utf8)
    }

    /// A loader that waits for `gate` before each load and records how many loads ran at once.
    final class GatedLoads: @unchecked Sendable {
        let gate = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var running = 0
        private var most = 0
        private var started = 0
        let loader: ModelLoader
        init(_ loader: ModelLoader) { self.loader = loader }

        func load(_ name: String, _ spec: String) throws -> ServedModel {
            lock.lock(); running += 1; started += 1; most = max(most, running); lock.unlock()
            defer { lock.lock(); running -= 1; lock.unlock() }
            gate.wait()
            return try loader.load(spec: spec, name: name)
        }

        var startedCount: Int { lock.lock(); defer { lock.unlock() }; return started }
        var mostAtOnce: Int { lock.lock(); defer { lock.unlock() }; return most }
    }

    /// The models a reload reported, from its thread.
    final class Reports: @unchecked Sendable {
        private let lock = NSLock()
        private var reported: [String] = []
        func add(_ old: ServedModel, _ result: Result<ServedModel, Error>) { lock.lock(); reported.append(old.name); lock.unlock() }
        var names: [String] { lock.lock(); defer { lock.unlock() }; return reported }
    }

    func testLoadsRunOneAtATimeAndTheQueueIsBounded() throws {
        try startServer()
        let gated = GatedLoads(ModelLoader(dataset: Self.tinyDataset()))
        server.modelLoader = { name, spec in try gated.load(name, spec) }
        let c = try Client(port: port)
        let calls = AdminService.maxPendingLoads + 2
        let ids = try (0..<calls).map { _ in try c.start(loadModel, loadRequest(name: "m", path: "popularity")) }
        var codes: [UInt32: StatusCode] = [:]
        // The refusals come at once; the accepted calls wait behind the gate.
        while codes.count < 2, let f = try c.readFrame(timeout: 10) {
            if f.header.type == .trailer { codes[f.header.streamId] = try Client.decodeStatus(f.payload).code }
        }
        XCTAssertEqual(Array(codes.values), [.resourceExhausted, .resourceExhausted])
        let deadline = Date().addingTimeInterval(10)
        while gated.startedCount < 1 && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        Thread.sleep(forTimeInterval: 0.05)
        XCTAssertEqual(gated.startedCount, 1, "one load runs, the others wait their turn")
        for _ in 0..<AdminService.maxPendingLoads { gated.gate.signal() }
        while codes.count < calls, let f = try c.readFrame(timeout: 10) {
            if f.header.type == .trailer { codes[f.header.streamId] = try Client.decodeStatus(f.payload).code }
        }
        XCTAssertEqual(Set(codes.keys), Set(ids))
        XCTAssertEqual(codes.values.filter { $0 == .ok }.count, AdminService.maxPendingLoads)
        XCTAssertEqual(gated.mostAtOnce, 1)
        XCTAssertEqual(try server.core.registry.model("m").version, UInt64(AdminService.maxPendingLoads))
        // With the queue drained, a load is accepted again.
        gated.gate.signal()
        XCTAssertNoThrow(try c.call(loadModel, loadRequest(name: "m", path: "popularity"), timeoutMs: 10_000))
    }

    func testASighupFindingAReloadQueuedJoinsIt() throws {
        try startServer()
        let gated = GatedLoads(ModelLoader(dataset: Self.tinyDataset()))
        server.modelLoader = { name, spec in try gated.load(name, spec) }
        let c = try Client(port: port)
        // A load holds the load thread, so the reload below stays queued.
        let blocking = try c.start(loadModel, loadRequest(name: "other", path: "popularity"))
        let deadline = Date().addingTimeInterval(10)
        while gated.startedCount < 1 && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        let reports = Reports()
        XCTAssertTrue(server.admin.queueReload { reports.add($0, $1) })
        XCTAssertFalse(server.admin.queueReload { reports.add($0, $1) }, "a second SIGHUP joins the queued reload")
        for _ in 0..<3 { gated.gate.signal() }  // the blocking load, then the reload of "popularity" and "other"
        while let f = try c.readFrame(timeout: 10) {
            if f.header.type == .trailer, f.header.streamId == blocking { break }
        }
        while reports.names.count < 2 && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
        XCTAssertEqual(reports.names.sorted(), ["other", "popularity"], "one reload of every model loaded when it ran")
        XCTAssertEqual(try server.core.registry.model("popularity").version, 2)
        XCTAssertEqual(gated.mostAtOnce, 1)
    }
}
