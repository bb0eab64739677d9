// The call rules of docs/protocol.md, driven straight into the production ConnectionStateMachine (no socket, time
// passed in): every frame type, the stream-id rules, the order of the CALL checks, deadlines, request timeouts,
// the peer's half-close, the output budget, drain and its timeout.
import Foundation
import R2ecProtoC
@testable import RPC
import Serving
import XCTest

/// A service whose handlers answer as the test says: Echo answers its request at once; Hold keeps the call open;
/// Stream is an open-ended stream (like Health/Watch); Admin needs an admin token.
final class ScriptedService: RPCService, @unchecked Sendable {
    let serviceName = "test.Scripted"
    var started: [(RPCCall, [UInt8])] = []
    var methods: [RPCMethod] {
        [
            RPCMethod("/test.Scripted/Echo") { [self] request, call, response in
                started.append((call, request))
                response.respond(request)
            },
            RPCMethod("/test.Scripted/Hold") { [self] request, call, _ in started.append((call, request)) },
            RPCMethod("/test.Scripted/Stream", .serverStreaming, openEnded: true) { [self] request, call, _ in
                started.append((call, request))
            },
            RPCMethod("/test.Scripted/Admin", requiresAdmin: true) { _, _, response in response.respond([]) },
        ]
    }
}

final class ConnectionStateMachineTests: XCTestCase {
    let service = ScriptedService()
    lazy var router = ServiceRouter([service])
    let second: UInt64 = 1_000_000_000

    func machine(_ configure: (inout ConnectionStateMachine.Settings) -> Void = { _ in },
                 auth: CallAuthorizer = CallAuthorizer()) -> ConnectionStateMachine {
        var settings = ConnectionStateMachine.Settings()
        configure(&settings)
        return ConnectionStateMachine(router: router, authorizer: auth, settings: settings, peer: "test")
    }

    func frame(_ type: FrameType, _ id: UInt32, _ payload: [UInt8] = [], flags: FrameFlags = []) -> Frame {
        ConnectionStateMachine.frame(type, id, payload, flags: flags)
    }

    func call(_ id: UInt32, _ method: String, timeoutMs: Int64 = 0, metadata: [(String, String)] = [],
              flags: FrameFlags = []) -> Frame {
        frame(.call, id, Client.callHeader(method: method, timeoutMs: timeoutMs, metadata: metadata), flags: flags)
    }

    func request(_ id: UInt32, _ payload: [UInt8] = [1, 2, 3]) -> Frame { frame(.message, id, payload, flags: .endStream) }

    /// Feeds frames, runs started handlers' synchronous answers back in (as a transport does) and returns the frames
    /// sent and every action.
    @discardableResult
    func feed(_ m: inout ConnectionStateMachine, _ frames: [Frame], now: UInt64 = 0) -> (sent: [Frame], actions: [ConnectionAction]) {
        var all: [ConnectionAction] = []
        for f in frames { all += run(&m, m.receive(f, now: now)) }
        return (sent(all), all)
    }

    func run(_ m: inout ConnectionStateMachine, _ actions: [ConnectionAction]) -> [ConnectionAction] {
        var out: [ConnectionAction] = []
        for a in actions {
            out.append(a)
            if case .start(let id, let call, let method, let request) = a {
                let sink = RecordingSink()
                method.handler(request, call, sink)
                for (payload, status) in sink.answers {
                    if let status {
                        out += run(&m, m.finish(id, of: call, status, lastMessage: payload))
                    } else {
                        out += run(&m, m.message(id, of: call, payload!))
                    }
                }
            }
        }
        return out
    }

    func sent(_ actions: [ConnectionAction]) -> [Frame] {
        actions.compactMap { if case .send(let f) = $0 { return f } else { return nil } }
    }

    func status(_ f: Frame) throws -> ServingError {
        XCTAssertEqual(f.header.type, .trailer)
        return try Client.decodeStatus(f.payload)
    }

    func goAway(_ f: Frame) throws -> (last: UInt32, code: UInt32, message: String) {
        XCTAssertEqual(f.header.type, .goAway)
        let g = try XCTUnwrap(r2ec__v1__go_away__unpack(nil, f.payload.count, f.payload))
        defer { r2ec__v1__go_away__free_unpacked(g, nil) }
        return (g.pointee.last_stream_id, g.pointee.code, swiftString(g.pointee.message))
    }

    func closes(_ actions: [ConnectionAction]) -> [Bool] {
        actions.compactMap { if case .close(let linger) = $0 { return linger } else { return nil } }
    }

    // MARK: Calls

    func testCallThenEndStreamMessageStartsTheHandlerAndTheAnswerEndsTheCall() throws {
        var m = machine()
        let out = feed(&m, [call(1, "/test.Scripted/Echo"), request(1, [7, 8])])
        XCTAssertEqual(out.sent.map(\.header.type), [.message, .trailer])
        XCTAssertEqual(out.sent[0].payload, [7, 8])
        XCTAssertEqual(try status(out.sent[1]).code, .ok)
        XCTAssertEqual(m.callsInFlight, 0)
        XCTAssertTrue(out.actions.contains { if case .ended(_, let s) = $0 { return s.code == .ok } else { return false } })
    }

    func testASecondRequestMessageOrOneWithoutEndStreamIsInvalidArgument() throws {
        var m = machine()
        var out = feed(&m, [call(1, "/test.Scripted/Hold"), request(1), request(1)])
        XCTAssertEqual(try status(XCTUnwrap(out.sent.last)).code, .invalidArgument)
        out = feed(&m, [call(2, "/test.Scripted/Hold"), frame(.message, 2, [])])
        let s = try status(XCTUnwrap(out.sent.last))
        XCTAssertEqual(s.code, .invalidArgument)
        XCTAssertTrue(s.message.contains("END_STREAM"), s.message)
        XCTAssertEqual(m.state, .open, "call-level errors keep the connection")
    }

    func testEndStreamOnTheCallFrameIsRefused() throws {
        var m = machine()
        let out = feed(&m, [call(1, "/test.Scripted/Echo", flags: .endStream)])
        let s = try status(XCTUnwrap(out.sent.first))
        XCTAssertEqual(s.code, .invalidArgument)
        XCTAssertTrue(s.message.contains("END_STREAM on the CALL"), s.message)
        XCTAssertEqual(m.callsInFlight, 0)
    }

    func testUnknownMethodIsUnimplementedAndAStaleMessageIsIgnored() throws {
        var m = machine()
        var out = feed(&m, [call(1, "/test.Scripted/Nope")])
        XCTAssertEqual(try status(out.sent[0]).code, .unimplemented)
        out = feed(&m, [request(1)])  // its MESSAGE after the refusal: not above the highest id, ignored
        XCTAssertTrue(out.sent.isEmpty)
        XCTAssertEqual(m.state, .open)
    }

    func testCancelEndsTheCallCancelledAndCancelsItsWork() throws {
        var m = machine()
        feed(&m, [call(1, "/test.Scripted/Hold"), request(1)])
        let held = try XCTUnwrap(service.started.last?.0)
        let out = feed(&m, [frame(.cancel, 1)])
        XCTAssertEqual(try status(out.sent[0]).code, .cancelled)
        XCTAssertTrue(out.actions.contains { if case .cancel(let c) = $0 { return c === held } else { return false } })
        // The handler's late answer is dropped, and so are CANCELs of finished or never-opened streams.
        XCTAssertTrue(m.finish(1, of: held, .ok, lastMessage: [1]).isEmpty)
        XCTAssertTrue(feed(&m, [frame(.cancel, 1), frame(.cancel, 99)]).sent.isEmpty)
        XCTAssertEqual(m.state, .open)
    }

    func testCallIdsMustRiseAndStayBelow2To31() throws {
        var m = machine()
        feed(&m, [call(5, "/test.Scripted/Echo"), request(5)])
        var out = feed(&m, [call(5, "/test.Scripted/Echo")])
        var g = try goAway(out.sent[0])
        XCTAssertEqual(g.code, StatusCode.invalidArgument.rawValue)
        XCTAssertEqual(g.last, 5)
        XCTAssertTrue(g.message.contains("not above the previous id 5"), g.message)
        XCTAssertEqual(m.state, .failed)

        var big = machine()
        out = feed(&big, [call(1 << 31, "/test.Scripted/Echo")])
        g = try goAway(out.sent[0])
        XCTAssertTrue(g.message.contains("above the largest stream id"), g.message)
        XCTAssertFalse(g.message.contains("previous"), g.message)
        var top = machine()
        XCTAssertEqual(feed(&top, [call(UInt32(Int32.max), "/test.Scripted/Echo"), request(UInt32(Int32.max))]).sent.count, 2)
    }

    func testFramesOnTheWrongStreamAndServerOnlyFramesAreViolations() throws {
        let cases: [(Frame, String)] = [
            (frame(.call, 0, Client.callHeader(method: "/test.Scripted/Echo", timeoutMs: 0, metadata: [])), "CALL on stream 0"),
            (frame(.message, 0, []), "MESSAGE on stream 0"),
            (frame(.cancel, 0, []), "CANCEL on stream 0"),
            (frame(.message, 3, [], flags: .endStream), "never opened"),
            (frame(.ping, 1, Array(repeating: 0, count: 8)), "PING on stream 1"),
            (frame(.ping, 0, [1, 2, 3]), "PING payload of 3 bytes"),
            (frame(.pong, 2, []), "PONG on stream 2"),
            (frame(.goAway, 2, []), "GOAWAY on stream 2"),
            (frame(.trailer, 1, []), "TRAILER frames are sent by the server only"),
        ]
        for (f, text) in cases {
            var m = machine()
            let out = feed(&m, [f])
            let g = try goAway(XCTUnwrap(out.sent.first, text))
            XCTAssertEqual(g.code, StatusCode.invalidArgument.rawValue, text)
            XCTAssertTrue(g.message.contains(text), "\(g.message) should say \(text)")
            XCTAssertEqual(closes(out.actions), [true], "close after the GOAWAY, lingering: \(text)")
            XCTAssertTrue(feed(&m, [call(9, "/test.Scripted/Echo"), request(9)]).sent.isEmpty, "then input is discarded")
        }
    }

    func testViolationCancelsEveryCallInFlight() throws {
        var m = machine()
        feed(&m, [call(1, "/test.Scripted/Hold"), request(1), call(2, "/test.Scripted/Hold")])
        let out = feed(&m, [frame(.trailer, 2)])
        XCTAssertEqual(out.sent.count, 1, "only the GOAWAY")
        XCTAssertEqual(out.actions.filter { if case .cancel = $0 { return true } else { return false } }.count, 2)
        XCTAssertEqual(m.callsInFlight, 0)
    }

    func testPingIsAnsweredAndAClientPongIsIgnored() throws {
        var m = machine()
        let out = feed(&m, [frame(.ping, 0, Array(1...8)), frame(.pong, 0, Array(1...8))])
        XCTAssertEqual(out.sent.map(\.header.type), [.pong])
        XCTAssertEqual(out.sent[0].payload, Array(1...8))
        XCTAssertEqual(m.state, .open)
    }

    // MARK: Authentication and limits

    func testChecksRunInOrderAuthenticationThenMethodThenAdminThenLimits() throws {
        let auth = CallAuthorizer(tokens: ["user"], adminTokens: ["root"])
        var m = machine({ $0.maxCallsPerConnection = 1 }, auth: auth)
        func code(_ id: UInt32, _ method: String, _ md: [(String, String)]) throws -> StatusCode? {
            let out = feed(&m, [call(id, method, metadata: md)])
            return try out.sent.first.map { try status($0).code }
        }
        XCTAssertEqual(try code(1, "/test.Scripted/Nope", []), .unauthenticated, "no method name is checked before the token")
        XCTAssertEqual(try code(2, "/test.Scripted/Nope", [("authorization", "Bearer user")]), .unimplemented)
        XCTAssertEqual(try code(3, "/test.Scripted/Admin", [("authorization", "Bearer user")]), .permissionDenied)
        XCTAssertEqual(try code(4, "/test.Scripted/Hold", [("Authorization", "bearer   user")]), nil,
                       "key and scheme case-insensitive, spaces after the scheme")
        XCTAssertEqual(try code(5, "/test.Scripted/Hold", [("AUTHORIZATION", "BEARER root")]), .resourceExhausted)
        XCTAssertEqual(try code(6, "/test.Scripted/Hold", [("authorization", "Basic user")]), .unauthenticated)
        XCTAssertEqual(try code(7, "/test.Scripted/Hold", [("authorization", "Bearer")]), .unauthenticated)
    }

    func testMetadataKeysReachTheHandlerLowerCased() throws {
        var m = machine()
        feed(&m, [call(1, "/test.Scripted/Hold", metadata: [("X-Request-Id", "abc")]), request(1)])
        let held = try XCTUnwrap(service.started.last?.0)
        XCTAssertEqual(held.metadata("x-request-id"), "abc")
        XCTAssertEqual(held.metadata.first?.key, "x-request-id")
    }

    // MARK: Time

    func testDeadlinesAndTheRequestTimeout() throws {
        var m = machine { $0.requestTimeoutNanos = 2 * 1_000_000_000 }
        feed(&m, [call(1, "/test.Scripted/Hold", timeoutMs: 500), request(1),
                  call(2, "/test.Scripted/Hold")], now: 0)  // 2 never sends its request
        XCTAssertTrue(m.tick(now: second / 4).isEmpty)
        var out = sent(m.tick(now: second / 2))
        XCTAssertEqual(out.map(\.header.streamId), [1])
        XCTAssertEqual(try status(out[0]).code, .deadlineExceeded)
        out = sent(m.tick(now: 2 * second))
        XCTAssertEqual(out.map(\.header.streamId), [2])
        let s = try status(out[0])
        XCTAssertEqual(s.code, .deadlineExceeded)
        XCTAssertTrue(s.message.contains("request MESSAGE not received"), s.message)
        XCTAssertEqual(m.callsInFlight, 0)
    }

    func testNegativeTimeoutIsExpiredAtOnce() throws {
        var m = machine()
        let out = feed(&m, [call(1, "/test.Scripted/Echo", timeoutMs: -1), request(1)])
        XCTAssertEqual(out.sent.count, 1)
        XCTAssertEqual(try status(out.sent[0]).code, .deadlineExceeded)
    }

    // MARK: Closing

    func testPeerHalfCloseAnswersRunningCallsAndEndsCallsThatCanNeverComplete() throws {
        var m = machine()
        feed(&m, [call(1, "/test.Scripted/Hold"), request(1), call(2, "/test.Scripted/Hold"),
                  call(3, "/test.Scripted/Stream"), request(3)])
        let running = try XCTUnwrap(service.started.first { $0.0.method == "/test.Scripted/Hold" }?.0)
        let out = m.peerFinished()
        XCTAssertEqual(sent(out).map(\.header.streamId), [2, 3], "the call without its request and the open stream end")
        XCTAssertEqual(try sent(out).map { try status($0).code }, [.cancelled, .cancelled])
        XCTAssertTrue(closes(out).isEmpty, "call 1 is still running")
        let done = m.finish(1, of: running, .ok, lastMessage: [42])
        XCTAssertEqual(sent(done).map(\.header.type), [.message, .trailer])
        XCTAssertEqual(closes(done), [false], "closes once the last answer is written")
    }

    func testClientGoAwayActsAsHalfCloseAndLaterFramesAreDiscarded() throws {
        var m = machine()
        let out = feed(&m, [frame(.goAway, 0, [1, 2]), call(1, "/test.Scripted/Echo"), request(1)])
        XCTAssertTrue(out.sent.isEmpty)
        XCTAssertEqual(closes(out.actions), [false])
        XCTAssertTrue(m.peerDone)
    }

    func testGoAwayRefusesLaterCallsAndClosesWhenIdle() throws {
        var m = machine()
        feed(&m, [call(1, "/test.Scripted/Hold"), request(1)])
        let held = try XCTUnwrap(service.started.last?.0)
        var out = m.goAway("server is shutting down")
        XCTAssertEqual(try goAway(sent(out)[0]).last, 1)
        XCTAssertTrue(closes(out).isEmpty)
        out = feed(&m, [call(2, "/test.Scripted/Echo"), request(2)]).actions
        XCTAssertEqual(try status(sent(out)[0]).code, .unavailable)
        XCTAssertEqual(sent(out).count, 1, "the MESSAGE of a refused call is ignored")
        out = m.finish(1, of: held, .ok, lastMessage: [1])
        XCTAssertEqual(closes(out), [false])
    }

    func testDrainTimeoutAnswersEveryCallUnavailable() throws {
        var m = machine()
        feed(&m, [call(1, "/test.Scripted/Hold"), request(1), call(2, "/test.Scripted/Hold")])
        _ = m.goAway("draining")
        let out = m.abortCalls(CallStatus(.unavailable, "drain timeout"))
        XCTAssertEqual(try sent(out).map { try status($0).code }, [.unavailable, .unavailable])
        XCTAssertEqual(closes(out), [false])
    }

    func testAnswersPastTheOutputBudgetAreShed() throws {
        var m = machine { $0.outputBudget = 1000 }
        feed(&m, [call(1, "/test.Scripted/Hold"), request(1), call(2, "/test.Scripted/Hold"), request(2)])
        let (a, b) = (service.started[0].0, service.started[1].0)
        // Nothing pending: one answer alone may exceed the budget.
        XCTAssertEqual(sent(m.finish(1, of: a, .ok, lastMessage: Array(repeating: 1, count: 5000), pendingOutput: 0)).count, 2)
        let out = m.finish(2, of: b, .ok, lastMessage: Array(repeating: 1, count: 600), pendingOutput: 500)
        XCTAssertEqual(sent(out).count, 1)
        XCTAssertEqual(try status(sent(out)[0]).code, .resourceExhausted)
        XCTAssertTrue(out.contains { if case .limitHit("connection_output") = $0 { return true } else { return false } })
    }

    func testClosedEndsEveryCall() {
        var m = machine()
        feed(&m, [call(1, "/test.Scripted/Hold"), request(1), call(2, "/test.Scripted/Hold")])
        let out = m.closed()
        XCTAssertEqual(out.filter { if case .ended = $0 { return true } else { return false } }.count, 2)
        XCTAssertTrue(sent(out).isEmpty)
        XCTAssertEqual(m.state, .closed)
    }
}

/// Collects what a handler answers synchronously.
final class RecordingSink: ResponseSink, @unchecked Sendable {
    var answers: [([UInt8]?, CallStatus?)] = []
    var finished = false
    func message(_ payload: [UInt8]) -> Bool {
        guard !finished else { return false }
        answers.append((payload, nil))
        return true
    }
    func finish(_ status: CallStatus) {
        guard !finished else { return }
        finished = true
        answers.append((nil, status))
    }
    func respond(_ payload: [UInt8]) {
        guard !finished else { return }
        finished = true
        answers.append((payload, .ok))
    }
}
