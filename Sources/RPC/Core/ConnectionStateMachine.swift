// The call rules of docs/protocol.md for one connection, with no I/O: frames and events go in, actions come out
// (send a frame, start a call, cancel a call's work, a call ended, close). The libuv transport (Connection) only
// moves bytes, runs timers and applies backpressure; the unit tests and the FuzzConnection target drive this same
// code with no socket. Time is passed in (monotonic ns), so every rule is deterministic under test.
import Data
import Foundation
import Serving

/// What the transport must do, in order.
public enum ConnectionAction {
    /// Write this frame.
    case send(Frame)
    /// Run `method`'s handler for `call` (stream `id`) with `request`; answers come back through `finish`/`message`.
    case start(UInt32, RPCCall, RPCMethod, request: [UInt8])
    /// Stop `call`'s work (client CANCEL, deadline, peer gone, connection failed): cancel its context.
    case cancel(RPCCall)
    /// `call` ended with `status` (its TRAILER is in the frames above, unless the connection failed): metrics, logs,
    /// end hooks.
    case ended(RPCCall, CallStatus)
    /// A CALL refused before it became a call (bad header, auth, unknown method, limits); its TRAILER is above.
    case refused(ServingError, requestId: String)
    /// A protocol violation: the GOAWAY naming it is above; log it.
    case violation(ServingError)
    /// A configured limit was hit ("calls_per_connection", "connection_output"), for the limit-hit metric.
    case limitHit(String)
    /// Close the connection once the frames above are written. `linger`: half-close first and keep discarding input
    /// for a moment, so a peer still sending does not get a reset that destroys the GOAWAY before it is read.
    case close(linger: Bool)
}

public struct ConnectionStateMachine {
    public struct Settings: Sendable {
        /// Calls in flight at once; one more is answered RESOURCE_EXHAUSTED.
        public var maxCallsPerConnection = 1024
        /// Deadline of calls whose CALL carries none (ms); 0 = none.
        public var defaultTimeoutMs: Int64 = 0
        /// A CALL's request MESSAGE must follow within this time (ns), else the call ends DEADLINE_EXCEEDED.
        public var requestTimeoutNanos: UInt64 = 10_000_000_000
        /// Unsent output a connection may hold: an answer that would take it past this is shed (RESOURCE_EXHAUSTED)
        /// unless nothing is pending (one answer alone may be larger).
        public var outputBudget = 32 << 20
        public init() {}
    }

    /// The connection's state.
    public enum State: Equatable {
        /// Reading frames, accepting calls.
        case open
        /// GOAWAY code 0 sent (drain, idle): calls above `lastStreamId` are refused; closes when no call is left.
        case goingAway(lastStreamId: UInt32)
        /// A protocol violation: GOAWAY with its code sent, every call cancelled, input discarded.
        case failed
        case closed
    }

    /// One call's state.
    public enum CallState: Equatable {
        /// CALL read; waiting for the request MESSAGE since `since`.
        case awaitingRequest(since: UInt64)
        /// The request was handed to the handler; waiting for its answer.
        case running
    }

    struct Entry {
        let call: RPCCall
        let method: RPCMethod
        var state: CallState
    }

    public let router: ServiceRouter
    public let authorizer: CallAuthorizer
    public var settings: Settings
    public let peer: String

    public private(set) var state = State.open
    /// The peer will send nothing more (EOF or its GOAWAY): answer what is open, then close.
    public private(set) var peerDone = false
    public private(set) var highestStreamId: UInt32 = 0
    private var calls: [UInt32: Entry] = [:]
    /// The earliest time `tick` has something to do (a deadline or a request timeout), if any.
    private var nextTimer: UInt64?
    private var closeSent = false

    public init(router: ServiceRouter, authorizer: CallAuthorizer = CallAuthorizer(), settings: Settings = Settings(),
                peer: String = "") {
        self.router = router
        self.authorizer = authorizer
        self.settings = settings
        self.peer = peer
    }

    public static let maxStreamId = UInt32(Int32.max)

    public var callsInFlight: Int { calls.count }
    public func callState(_ id: UInt32) -> CallState? { calls[id]?.state }
    /// True when the connection reads frames (not failed, not closed, the peer not done).
    public var isReading: Bool { (state == .open || isGoingAway) && !peerDone }
    private var isGoingAway: Bool { if case .goingAway = state { return true } else { return false } }

    // MARK: Input

    /// One frame from the peer, read at `now`.
    public mutating func receive(_ frame: Frame, now: UInt64) -> [ConnectionAction] {
        guard isReading else { return [] }  // failed, closed, or after the peer's GOAWAY: discarded
        var out: [ConnectionAction] = []
        let h = frame.header
        switch h.type {
        case .ping:
            guard h.streamId == 0 else { violation(.invalidArgument, "PING on stream \(h.streamId) (must be 0)", &out); break }
            guard frame.payload.count == 8 else {
                violation(.invalidArgument, "PING payload of \(frame.payload.count) bytes (must be 8)", &out); break
            }
            out.append(.send(Self.frame(.pong, 0, frame.payload)))
        case .pong:
            // The server sends no PING, so a PONG answers nothing: ignored.
            if h.streamId != 0 { violation(.invalidArgument, "PONG on stream \(h.streamId) (must be 0)", &out) }
        case .goAway:
            guard h.streamId == 0 else { violation(.invalidArgument, "GOAWAY on stream \(h.streamId) (must be 0)", &out); break }
            // The client opens no more calls: frames after it are discarded, open calls are answered, then close.
            peerFinished(&out)
        case .trailer:
            violation(.invalidArgument, "TRAILER frames are sent by the server only", &out)
        case .call:
            openCall(h, frame.payload, now: now, &out)
        case .message:
            guard h.streamId != 0 else { violation(.invalidArgument, "MESSAGE on stream 0", &out); break }
            guard let entry = calls[h.streamId] else {
                if h.streamId > highestStreamId {
                    violation(.invalidArgument, "MESSAGE for stream \(h.streamId), which was never opened", &out)
                }
                break  // the call already ended: its answer crossed this frame on the wire
            }
            guard case .awaitingRequest = entry.state else {
                end(h.streamId, CallStatus(.invalidArgument, "a call takes exactly one request message"), cancel: true, &out)
                break
            }
            guard h.flags.contains(.endStream) else {
                end(h.streamId, CallStatus(.invalidArgument,
                                           "the request MESSAGE must carry END_STREAM (client streaming is not supported)"),
                    cancel: true, &out)
                break
            }
            calls[h.streamId]!.state = .running
            out.append(.start(h.streamId, entry.call, entry.method, request: frame.payload))
        case .cancel:
            guard h.streamId != 0 else { violation(.invalidArgument, "CANCEL on stream 0", &out); break }
            // Unknown, finished or never opened: ignored (an answer may have crossed it).
            if calls[h.streamId] != nil {
                end(h.streamId, CallStatus(.cancelled, "cancelled by the client"), cancel: true, &out)
            }
        }
        return out
    }

    private mutating func openCall(_ h: FrameHeader, _ payload: [UInt8], now: UInt64, _ out: inout [ConnectionAction]) {
        let id = h.streamId
        guard id != 0 else { return violation(.invalidArgument, "CALL on stream 0", &out) }
        guard id <= Self.maxStreamId else {
            return violation(.invalidArgument, "CALL on stream \(id), above the largest stream id 2^31-1 (\(Self.maxStreamId))",
                             &out)
        }
        guard id > highestStreamId else {
            return violation(.invalidArgument, "CALL on stream \(id), not above the previous id \(highestStreamId)", &out)
        }
        highestStreamId = id
        var metadata: [(key: String, value: String)] = []
        func refuse(_ e: ServingError) {
            // Made up here, not for every call: a refused call is logged and echoed under it.
            let rid = RequestId(metadata: metadata)
            out.append(.send(Self.trailer(id, CallStatus(e).echoingRequestId(rid))))
            out.append(.refused(e, requestId: rid.value))
            if let limit = e.limit { out.append(.limitHit(limit)) }
        }
        if case .goingAway(let last) = state, id > last {
            return refuse(ServingError(.unavailable, "server is draining: call \(id) is above GOAWAY's last id \(last)"))
        }
        let header: ProtoCodec.CallHeader
        do {
            header = try ProtoCodec.decodeCallHeader(payload)
        } catch {
            return refuse(error as? ServingError ?? ServingError(.invalidArgument, "CallHeader: malformed"))
        }
        if h.flags.contains(.endStream) {
            return refuse(ServingError(.invalidArgument,
                                       "END_STREAM on the CALL frame: a call takes exactly one request MESSAGE"))
        }
        metadata = header.metadata.map { (key: $0.0.lowercased(), value: $0.1) }
        let isAdmin: Bool?
        do { isAdmin = try authorizer.authenticate(metadata) } catch { return refuse(error) }
        guard let method = router[header.method] else {
            return refuse(ServingError(.unimplemented, "unknown method \(ClientText.quote(header.method))"))
        }
        do { try authorizer.authorize(method, isAdmin: isAdmin) } catch { return refuse(error) }
        guard calls.count < settings.maxCallsPerConnection else {
            return refuse(ServingError(.resourceExhausted,
                                       "too many calls in flight on this connection (limit \(settings.maxCallsPerConnection))",
                                       limit: "calls_per_connection"))
        }
        let timeoutMs = header.timeoutMs != 0 ? header.timeoutMs : settings.defaultTimeoutMs
        let deadline: UInt64? = timeoutMs == 0 ? nil : timeoutMs < 0 ? 0 : now &+ UInt64(timeoutMs) &* 1_000_000
        let call = RPCCall(method: method.name, metadata: metadata, context: CallContext(deadline: deadline), peer: peer,
                           opened: now)
        calls[id] = Entry(call: call, method: method, state: .awaitingRequest(since: now))
        if timeoutMs < 0 {
            return end(id, CallStatus(.deadlineExceeded, "deadline already passed when the call arrived"), cancel: true, &out)
        }
        schedule(now &+ settings.requestTimeoutNanos)
        if let deadline { schedule(deadline) }
    }

    /// The peer's side ended (EOF, or its GOAWAY): calls still waiting for their request and open-ended streams can
    /// never complete, so they end now (CANCELLED); the others are answered; then the connection closes.
    public mutating func peerFinished() -> [ConnectionAction] {
        var out: [ConnectionAction] = []
        peerFinished(&out)
        return out
    }

    private mutating func peerFinished(_ out: inout [ConnectionAction]) {
        guard !peerDone, state != .closed else { return }
        peerDone = true
        guard state != .failed else { return }
        for id in calls.keys.sorted() {
            guard let e = calls[id] else { continue }
            if case .awaitingRequest = e.state {
                end(id, CallStatus(.cancelled, "the client closed its side before sending the request MESSAGE"),
                    cancel: true, &out)
            } else if e.method.openEnded {
                end(id, CallStatus(.cancelled, "the client closed its side"), cancel: true, &out)
            }
        }
        closeIfDone(&out)
    }

    // MARK: Answers

    /// One response MESSAGE of call `id` (from its handler). Nothing when the call already ended. `pendingOutput`:
    /// the bytes the connection holds unsent; past the budget the answer is shed and the call ends RESOURCE_EXHAUSTED.
    public mutating func message(_ id: UInt32, of call: RPCCall, _ payload: [UInt8],
                                 pendingOutput: Int = 0) -> [ConnectionAction] {
        guard let e = calls[id], e.call === call, state != .closed else { return [] }
        var out: [ConnectionAction] = []
        if overBudget(payload.count, pendingOutput) {
            shed(id, payload.count, pendingOutput, &out)
        } else {
            out.append(.send(Self.frame(.message, id, payload)))
        }
        return out
    }

    /// Ends call `id` with `status`, after `lastMessage` if any (from its handler).
    public mutating func finish(_ id: UInt32, of call: RPCCall, _ status: CallStatus, lastMessage: [UInt8]? = nil,
                                pendingOutput: Int = 0) -> [ConnectionAction] {
        guard let e = calls[id], e.call === call, state != .closed else { return [] }
        var out: [ConnectionAction] = []
        if let lastMessage {
            if overBudget(lastMessage.count, pendingOutput) {
                shed(id, lastMessage.count, pendingOutput, &out)
                return out
            }
            out.append(.send(Self.frame(.message, id, lastMessage)))
        }
        end(id, status, cancel: false, &out)
        return out
    }

    private func overBudget(_ size: Int, _ pending: Int) -> Bool {
        pending > 0 && pending + size + FrameHeader.size > settings.outputBudget
    }

    private mutating func shed(_ id: UInt32, _ size: Int, _ pending: Int, _ out: inout [ConnectionAction]) {
        out.append(.limitHit("connection_output"))
        end(id, CallStatus(.resourceExhausted,
                           "answer of \(size) bytes shed: the connection already holds \(pending) unsent bytes "
                           + "(budget \(settings.outputBudget)); read the answers of earlier calls"),
            cancel: true, &out)
    }

    // MARK: Time

    /// Deadlines and request timeouts due at `now`.
    public mutating func tick(now: UInt64) -> [ConnectionAction] {
        guard let next = nextTimer, now >= next else { return [] }
        nextTimer = nil
        var out: [ConnectionAction] = []
        for id in calls.keys.sorted() {
            guard let e = calls[id] else { continue }
            if let d = e.call.context.deadline, now >= d {
                end(id, CallStatus(.deadlineExceeded, "deadline exceeded"), cancel: true, &out)
                continue
            }
            if case .awaitingRequest(let since) = e.state {
                let due = since &+ settings.requestTimeoutNanos
                if now >= due {
                    end(id, CallStatus(.deadlineExceeded,
                                       "request MESSAGE not received within \(settings.requestTimeoutNanos / 1_000_000) ms of its CALL"),
                        cancel: true, &out)
                    continue
                }
                schedule(due)
            }
            if let d = e.call.context.deadline { schedule(d) }
        }
        return out
    }

    private mutating func schedule(_ t: UInt64) { nextTimer = min(nextTimer ?? t, t) }

    // MARK: Connection

    /// Graceful GOAWAY (code 0): calls up to the highest id so far are answered, later CALLs refused UNAVAILABLE;
    /// closes once no call is left. Nothing if a GOAWAY already went out.
    public mutating func goAway(_ text: String) -> [ConnectionAction] {
        guard state == .open else { return [] }
        var out: [ConnectionAction] = []
        state = .goingAway(lastStreamId: highestStreamId)
        out.append(.send(Self.frame(.goAway, 0, ProtoCodec.encodeGoAway(lastStreamId: highestStreamId, code: .ok,
                                                                          message: text))))
        closeIfDone(&out)
        return out
    }

    /// Ends every call in flight with `status` (the drain timeout: UNAVAILABLE), then closes.
    public mutating func abortCalls(_ status: CallStatus) -> [ConnectionAction] {
        guard state != .closed, state != .failed else { return [] }
        var out: [ConnectionAction] = []
        if state == .open {
            state = .goingAway(lastStreamId: highestStreamId)
            out.append(.send(Self.frame(.goAway, 0, ProtoCodec.encodeGoAway(lastStreamId: highestStreamId, code: .ok,
                                                                              message: status.message))))
        }
        for id in calls.keys.sorted() { end(id, status, cancel: true, &out) }
        closeIfDone(&out)
        return out
    }

    /// Refuses a connection over the server's limit: GOAWAY RESOURCE_EXHAUSTED, then close.
    public mutating func refuseConnection(_ text: String) -> [ConnectionAction] {
        var out: [ConnectionAction] = []
        violation(.resourceExhausted, text, &out, isViolation: false)
        return out
    }

    /// A violation found below the frame rules (bad framing, a frame left unfinished too long).
    public mutating func violation(_ code: StatusCode, _ text: String) -> [ConnectionAction] {
        var out: [ConnectionAction] = []
        violation(code, text, &out)
        return out
    }

    private mutating func violation(_ code: StatusCode, _ text: String, _ out: inout [ConnectionAction],
                                    isViolation: Bool = true) {
        guard state != .failed, state != .closed else { return }
        let alreadySent: Bool
        if case .goingAway = state { alreadySent = true } else { alreadySent = false }
        state = .failed
        if !alreadySent {
            out.append(.send(Self.frame(.goAway, 0, ProtoCodec.encodeGoAway(lastStreamId: highestStreamId, code: code,
                                                                              message: text))))
        }
        if isViolation { out.append(.violation(ServingError(code, text))) }
        for id in calls.keys.sorted() {
            let e = calls.removeValue(forKey: id)!
            out.append(.cancel(e.call))
            out.append(.ended(e.call, CallStatus(.cancelled, "connection closed: \(text)")))
        }
        closeSent = true
        out.append(.close(linger: !peerDone))
    }

    /// The transport closed the socket (write error, reset, linger over): every call still open ends.
    public mutating func closed() -> [ConnectionAction] {
        guard state != .closed else { return [] }
        state = .closed
        var out: [ConnectionAction] = []
        for id in calls.keys.sorted() {
            let e = calls.removeValue(forKey: id)!
            out.append(.cancel(e.call))
            out.append(.ended(e.call, CallStatus(.cancelled, "connection closed")))
        }
        return out
    }

    // MARK: Helpers

    private mutating func end(_ id: UInt32, _ status: CallStatus, cancel: Bool, _ out: inout [ConnectionAction]) {
        guard let e = calls.removeValue(forKey: id) else { return }
        let status = status.echoingRequestId(of: e.call)
        out.append(.send(Self.trailer(id, status)))
        if cancel { out.append(.cancel(e.call)) }
        out.append(.ended(e.call, status))
        closeIfDone(&out)
    }

    private mutating func closeIfDone(_ out: inout [ConnectionAction]) {
        guard !closeSent, calls.isEmpty, peerDone || isGoingAway else { return }
        closeSent = true
        out.append(.close(linger: false))
    }

    static func frame(_ type: FrameType, _ id: UInt32, _ payload: [UInt8], flags: FrameFlags = []) -> Frame {
        Frame(header: FrameHeader(type: type, flags: flags, streamId: id, length: UInt32(payload.count)), payload: payload)
    }

    static func trailer(_ id: UInt32, _ s: CallStatus) -> Frame {
        frame(.trailer, id, ProtoCodec.encodeStatus(s.code, s.message, field: s.field, metadata: s.trailingMetadata))
    }
}
