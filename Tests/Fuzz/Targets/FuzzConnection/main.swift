// libFuzzer target: one connection's input through the production call core, without a socket. Frames from
// FrameDecoder go into ConnectionStateMachine (the rules the libuv transport runs), its `.start` actions run the
// server's real services (ServiceRouter over a ServingCore with a popularity model on a 12-item catalogue and the live
// loop over a store, so the Events service records, upserts, reads and deletes; the Admin loader is absent, so no
// path from fuzz input is ever loaded), and the answers go back into the machine as
// the transport hands them over. Checked: every call started is ended exactly once, nothing is answered after its
// call ended, and what the server writes is valid framing. Input: the raw byte stream.
import Data
import Foundation
import FuzzSupport
@testable import RPC
import Serving

/// What the calls run against: a store (in memory) holding a 12-item catalogue (i1...i12) and users u1...u4, the
/// live loop over it, and a popularity model read from the store, as `serve --store` builds them. Events calls
/// grow the store, so a world past 64 items or 5,000 events, or whose model an Admin UnloadModel removed, is
/// replaced by a fresh one (state stays small, and an input replayed alone meets a fresh world).
final class World {
    let store = MemoryStore()
    let core: ServingCore
    let live: LiveLoop
    let router: ServiceRouter

    init() {
        let items = (1...12).map { i in
            CatalogItem(item: Item(id: "i\(i)", title: "Movie \(i) (19\(80 + i))", genres: ["Drama", "Comedy"]))
        }
        var events: [UserEvent] = []
        for u in 1...4 {
            for i in 1...12 where (u * i) % 3 != 0 {
                events.append(UserEvent(userId: "u\(u)", itemId: "i\(i)", timestamp: Int64(1000 * u + i),
                                        rating: Float(1 + (u + i) % 5)))
            }
        }
        try! store.importRows(items: items, events: events, name: "tiny")
        let snapshot = try! store.snapshot()
        let registry = ModelRegistry()
        registry.install(try! ModelLoader(dataset: snapshot.dataset, catalogVersion: snapshot.catalogVersion)
            .load(spec: "popularity"))
        var batching = BatchingConfig()
        batching.maxQueueDelayMicros = 0
        var limits = RequestLimits()
        limits.maxBatchRequests = 64
        core = ServingCore(registry: registry, batching: batching, limits: limits)
        var config = LiveLoopConfig()
        config.limits.maxEventsPerCall = 16
        config.limits.maxItemsPerCall = 8
        config.eventsPerUser = 32
        config.cacheBudgetBytes = 64 << 10
        live = LiveLoop(store: store, snapshot: snapshot, registry: registry, config: config)
        core.live = live
        router = ServiceRouter(Server.standardServices(core: core, health: HealthService(), admin: AdminService(core: core)))
    }

    var outgrown: Bool {
        store.itemCount > 64 || store.eventCount > 5_000 || (try? core.registry.model("popularity")) == nil
    }

    /// Stops the core's workers and the live loop's.
    func shutdown() { core.shutdown() }
}

var world = World()

/// Answers of one call, from whichever thread the handler answers on.
final class FuzzSink: ResponseSink, @unchecked Sendable {
    let lock = NSCondition()
    var answers: [(payload: [UInt8]?, status: CallStatus?)] = []
    var finished = false

    func message(_ payload: [UInt8]) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard !finished else { return false }
        answers.append((payload, nil))
        return true
    }
    func finish(_ status: CallStatus) { end(nil, status) }
    func respond(_ payload: [UInt8]) { end(payload, .ok) }
    private func end(_ payload: [UInt8]?, _ status: CallStatus) {
        lock.lock()
        if !finished {
            finished = true
            answers.append((payload, status))
        }
        lock.signal()
        lock.unlock()
    }

    /// Waits (bounded) for the call's end; returns the answers so far.
    func take(wait: Bool) -> [(payload: [UInt8]?, status: CallStatus?)] {
        lock.lock(); defer { lock.unlock() }
        let deadline = Date().addingTimeInterval(10)
        while wait && !finished && lock.wait(until: deadline) {}
        precondition(!wait || finished, "a call was never answered")
        let out = answers
        answers = []
        return out
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let buffer = ByteBuffer(capacity: 256)
    if let data, size > 0 { buffer.append(UnsafeRawBufferPointer(start: data, count: size)) }
    var decoder = FrameDecoder(maxPayload: 1 << 16)
    var settings = ConnectionStateMachine.Settings()
    settings.maxCallsPerConnection = 8
    settings.outputBudget = 1 << 12
    if world.outgrown {
        world.shutdown()
        world = World()
    }
    var machine = ConnectionStateMachine(router: world.router, settings: settings, peer: "fuzz")
    var output: [UInt8] = []
    var started = Set<ObjectIdentifier>(), ended = Set<ObjectIdentifier>()
    var now: UInt64 = 1_000_000_000

    func perform(_ actions: [ConnectionAction]) {
        for action in actions {
            switch action {
            case .send(let f):
                output += f.bytes
            case .start(let id, let call, let method, let request):
                precondition(started.insert(ObjectIdentifier(call)).inserted, "a call started twice")
                let sink = FuzzSink()
                method.handler(request, call, sink)
                // The transport hands answers over in order; an open-ended stream is not waited for.
                for answer in sink.take(wait: !method.openEnded) {
                    if let status = answer.status {
                        perform(machine.finish(id, of: call, status, lastMessage: answer.payload, pendingOutput: output.count))
                    } else {
                        perform(machine.message(id, of: call, answer.payload!, pendingOutput: output.count))
                    }
                }
            case .ended(let call, _):
                precondition(ended.insert(ObjectIdentifier(call)).inserted, "a call ended twice")
                call.end()
            case .cancel(let call):
                call.context.cancel()
            case .refused, .violation, .limitHit, .close:
                break
            }
        }
    }

    while machine.isReading {
        let frame: Frame
        do {
            guard let f = try decoder.next(from: buffer) else { break }
            frame = f
        } catch {
            perform(machine.violation(error.code, error.description))
            break
        }
        perform(machine.receive(frame, now: now))
        now += 1_000_000  // 1 ms per frame, so deadlines and request timeouts fire
        perform(machine.tick(now: now))
    }
    perform(machine.peerFinished())
    perform(machine.tick(now: now + 60_000_000_000))
    perform(machine.closed())
    precondition(machine.callsInFlight == 0, "calls left after close")
    precondition(started.isSubset(of: ended), "a started call never ended")

    // What the server wrote must itself be valid framing.
    var check = FrameDecoder(maxPayload: Int(UInt32.max))
    let out = ByteBuffer(capacity: max(output.count, 64))
    out.append(output)
    while let f = try! check.next(from: out) { _ = f }
    precondition(out.readable == 0, "server output ends mid-frame")
    return 0
}

fuzzMain(fuzzOne)
