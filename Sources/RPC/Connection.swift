// One client connection on the loop thread: its read buffer and frame decoder, its calls in flight by stream id,
// and its outgoing bytes with backpressure (stop reading above the high-water mark, resume below the low one).
// Every method here runs on the loop thread.
import CLibUV
import Foundation
import Serving

final class Connection {
    /// A call in flight.
    final class Call {
        let id: UInt32
        let method: Method
        let ctx: CallContext
        /// When the CALL frame was read (monotonic ns).
        let opened = DispatchTime.now().uptimeNanoseconds
        /// False until the request MESSAGE arrived.
        var started = false

        init(id: UInt32, method: Method, ctx: CallContext) {
            self.id = id
            self.method = method
            self.ctx = ctx
        }
    }

    unowned let server: Server
    let tcp: UnsafeMutablePointer<uv_tcp_t>
    let peer: String
    private let input = ByteBuffer(capacity: 16 << 10)
    private var decoder: FrameDecoder
    private let output = ByteBuffer(capacity: 16 << 10)
    private var bytesInFlight = 0
    private var writesInFlight = 0

    private(set) var calls: [UInt32: Call] = [:]
    private(set) var highestStreamId: UInt32 = 0
    /// Set once GOAWAY went out: calls above it are refused.
    private(set) var goAwayLastId: UInt32?
    private var readingPaused = false
    /// Close once every call is answered and the output is written (graceful drain, peer half-close).
    private var closeWhenIdle = false
    /// Close as soon as the output is written (after a protocol-violation GOAWAY).
    private var closeAfterFlush = false
    private(set) var closed = false
    /// The peer closed its write side (EOF).
    private var peerClosed = false
    /// Monotonic time (ns) after which a connection waiting to close is closed regardless.
    var lingerDeadline: UInt64?
    var isDirty = false
    /// Last time bytes came in or went out (monotonic ns): the idle timeout counts from it.
    private var lastActivity = DispatchTime.now().uptimeNanoseconds
    /// Since when part of a frame has been waiting for the rest (slowloris guard), if it is.
    private var partialSince: UInt64?

    init(server: Server, tcp: UnsafeMutablePointer<uv_tcp_t>, peer: String) {
        self.server = server
        self.tcp = tcp
        self.peer = peer
        self.decoder = FrameDecoder(maxPayload: server.config.maxFramePayload)
    }

    var stream: UnsafeMutablePointer<uv_stream_t> { UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_stream_t.self) }
    var handle: UnsafeMutablePointer<uv_handle_t> { UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_handle_t.self) }

    // MARK: Reading

    func startReading() {
        uv_read_start(stream, { handle, _, buf in
            let conn = Connection.from(handle!)
            let p = conn.input.reserve(64 << 10)
            buf!.pointee = uv_buf_init(UnsafeMutableRawPointer(p).assumingMemoryBound(to: CChar.self),
                                       UInt32(conn.input.writableCount))
        }, { stream, nread, _ in
            let conn = Connection.from(stream!)
            conn.onRead(nread)
            conn.server.flushDirty()
        })
    }

    static func from<T>(_ p: UnsafeMutablePointer<T>) -> Connection {
        let h = UnsafeMutableRawPointer(p).assumingMemoryBound(to: uv_handle_t.self)
        return Unmanaged<Connection>.fromOpaque(h.pointee.data).takeUnretainedValue()
    }

    private func onRead(_ nread: Int) {
        if nread < 0 {
            if nread == Int(UV_EOF.rawValue) {
                // Half-close: answer what was opened, then close.
                uv_read_stop(stream)
                if decoder.isMidFrame { server.log("\(peer): disconnected in the middle of a frame") }
                peerClosed = true
                closeWhenIdle = true
                closeIfIdle()
            } else {
                close()
            }
            return
        }
        guard nread > 0 else { return }
        input.commit(nread)
        lastActivity = DispatchTime.now().uptimeNanoseconds
        if closeAfterFlush { input.consume(input.readable); return }  // discarding until close
        do {
            while !closed, !closeAfterFlush, let frame = try decoder.next(from: input) {
                handle(frame)
            }
        } catch {
            violation(error.code, error.description)
        }
        if input.readable == 0 && !decoder.isMidFrame {
            partialSince = nil
        } else if partialSince == nil {
            partialSince = lastActivity
        }
        input.shrinkIfIdle(to: 16 << 10)
    }

    // MARK: Frames

    private func handle(_ frame: Frame) {
        let h = frame.header
        switch h.type {
        case .ping:
            guard h.streamId == 0 else { return violation(.invalidArgument, "PING on stream \(h.streamId) (must be 0)") }
            guard frame.payload.count == 8 else {
                return violation(.invalidArgument, "PING payload of \(frame.payload.count) bytes (must be 8)")
            }
            send(.pong, stream: 0, payload: frame.payload)
        case .pong:
            guard h.streamId == 0 else { return violation(.invalidArgument, "PONG on stream \(h.streamId) (must be 0)") }
        case .goAway:
            guard h.streamId == 0 else { return violation(.invalidArgument, "GOAWAY on stream \(h.streamId) (must be 0)") }
            closeWhenIdle = true
            closeIfIdle()
        case .trailer:
            violation(.invalidArgument, "TRAILER frames are sent by the server only")
        case .call:
            guard h.streamId != 0 else { return violation(.invalidArgument, "CALL on stream 0") }
            guard h.streamId > highestStreamId, h.streamId <= UInt32(Int32.max) else {
                return violation(.invalidArgument,
                                 "CALL on stream \(h.streamId), not above the previous id \(highestStreamId)")
            }
            highestStreamId = h.streamId
            openCall(h.streamId, payload: frame.payload)
        case .message:
            guard h.streamId != 0 else { return violation(.invalidArgument, "MESSAGE on stream 0") }
            guard let call = calls[h.streamId] else {
                if h.streamId > highestStreamId {
                    violation(.invalidArgument, "MESSAGE for stream \(h.streamId), which was never opened")
                }
                return  // the call already ended: the answer crossed this frame on the wire
            }
            guard !call.started else {
                return finish(call, status: .invalidArgument, "a call takes exactly one request message")
            }
            guard h.flags.contains(.endStream) else {
                return finish(call, status: .invalidArgument,
                              "the request MESSAGE must carry END_STREAM (client streaming is not supported)")
            }
            call.started = true
            server.dispatch(call, payload: frame.payload, on: self)
        case .cancel:
            guard let call = calls[h.streamId] else { return }  // unknown or finished: ignored
            call.ctx.cancel()
            finish(call, status: .cancelled, "cancelled by the client")
        }
    }

    private func openCall(_ id: UInt32, payload: [UInt8]) {
        let header: ProtoCodec.CallHeader
        do {
            header = try ProtoCodec.decodeCallHeader(payload)
        } catch {
            return trailer(id, error as? ServingError ?? ServingError(.invalidArgument, "CallHeader: malformed"))
        }
        if let last = goAwayLastId, id > last {
            return trailer(id, ServingError(.unavailable, "server is draining: call \(id) is above GOAWAY's last id \(last)"))
        }
        guard let method = Method(rawValue: header.method) else {
            return trailer(id, ServingError(.unimplemented, "unknown method '\(header.method)'"))
        }
        if let denied = server.authorize(method, metadata: header.metadata) { return trailer(id, denied) }
        guard calls.count < server.config.maxCallsPerConnection else {
            server.core.metrics.limitHit("calls_per_connection")
            return trailer(id, ServingError(.resourceExhausted,
                "too many calls in flight on this connection (limit \(server.config.maxCallsPerConnection))"))
        }
        let ctx = CallContext(timeoutMs: header.timeoutMs != 0 ? header.timeoutMs : server.config.defaultTimeoutMs)
        let call = Call(id: id, method: method, ctx: ctx)
        calls[id] = call
        if ctx.deadline != nil { server.watchDeadline(of: call, on: self) }
        if header.timeoutMs < 0 {
            finish(call, status: .deadlineExceeded, "deadline already passed when the call arrived")
        }
    }

    // MARK: Answers

    /// Sends one response MESSAGE of a call still in flight. Returns false when the call is gone.
    @discardableResult
    func message(_ call: Call, _ payload: [UInt8]) -> Bool {
        guard !closed, calls[call.id] === call else { return false }
        send(.message, stream: call.id, payload: payload)
        return true
    }

    /// Ends a call in flight with its trailer (after an optional last message).
    func finish(_ call: Call, payload: [UInt8]? = nil, status: StatusCode = .ok, _ text: String = "", field: String = "") {
        guard !closed, calls[call.id] === call else { return }
        if let payload { send(.message, stream: call.id, payload: payload) }
        calls[call.id] = nil
        server.record(call, status: status, message: text, peer: peer)
        send(.trailer, stream: call.id, payload: ProtoCodec.encodeStatus(status, text, field: field))
        closeIfIdle()
    }

    func finish(_ call: Call, _ error: ServingError) {
        finish(call, status: error.code, error.message, field: error.field)
    }

    /// A trailer for a call that never got registered (refused at CALL time).
    private func trailer(_ id: UInt32, _ error: ServingError) {
        server.recordRefused(error, peer: peer)
        send(.trailer, stream: id, payload: ProtoCodec.encodeStatus(error.code, error.message, field: error.field))
    }

    func goAway(_ code: StatusCode, _ text: String) {
        guard goAwayLastId == nil, !closed else { return }
        goAwayLastId = highestStreamId
        send(.goAway, stream: 0, payload: ProtoCodec.encodeGoAway(lastStreamId: highestStreamId, code: code, message: text))
    }

    /// Graceful drain: GOAWAY, finish what was accepted, then close.
    func drain() {
        goAway(.ok, "server is shutting down")
        closeWhenIdle = true
        closeIfIdle()
    }

    /// A protocol violation: GOAWAY naming it, cancel every call, close once the GOAWAY is written.
    private func violation(_ code: StatusCode, _ text: String) {
        server.log("\(peer): protocol violation: \(text)")
        server.core.metrics.protocolViolation()
        if code == .resourceExhausted { server.core.metrics.limitHit("frame_size") }
        goAway(code, text)
        for call in calls.values { call.ctx.cancel() }
        calls.removeAll()
        closeAfterFlush = true
        closeIfIdle()
    }

    /// Refuses a connection over the server's limit.
    func refuse(_ text: String) {
        goAway(.resourceExhausted, text)
        closeAfterFlush = true
        closeIfIdle()
    }

    // MARK: Writing

    func send(_ type: FrameType, stream id: UInt32, flags: FrameFlags = [], payload: [UInt8]) {
        guard !closed else { return }
        let p = output.reserve(FrameHeader.size + payload.count)
        FrameHeader(type: type, flags: flags, streamId: id, length: UInt32(payload.count)).write(to: p)
        if !payload.isEmpty {
            payload.withUnsafeBytes { UnsafeMutableRawPointer(p + FrameHeader.size).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        output.commit(FrameHeader.size + payload.count)
        server.markDirty(self)
    }

    /// Writes pending output: straight into the socket when it takes it, else through one uv_write at a time.
    func flush() {
        guard !closed else { return }
        if writesInFlight == 0 && output.readable > 0 {
            var buf = uv_buf_init(UnsafeMutableRawPointer(output.readPointer).assumingMemoryBound(to: CChar.self),
                                  UInt32(output.readable))
            let written = uv_try_write(stream, &buf, 1)
            if written > 0 { output.consume(Int(written)) }
            if written < 0 && written != Int32(UV_EAGAIN.rawValue) { close(); return }
            if output.readable > 0 {
                let n = output.readable
                let request = WriteRequest.make(copying: output.readPointer, count: n, connection: self)
                output.consume(n)
                writesInFlight += 1
                bytesInFlight += n
                let status = uv_write(request.req, stream, request.buf, 1) { req, status in
                    let request = WriteRequest(req!)
                    let conn = request.connection
                    let n = Int(request.buf.pointee.len)
                    request.release()
                    conn.writeCompleted(bytes: n, status: status)
                    conn.server.flushDirty()
                }
                if status != 0 { writesInFlight -= 1; bytesInFlight -= n; request.release(); close(); return }
            }
            output.shrinkIfIdle(to: 16 << 10)
        }
        // Checked on every flush, also while a write is in flight: that is when unsent output piles up.
        applyBackpressure()
        closeIfIdle()
    }

    private func writeCompleted(bytes: Int, status: Int32) {
        lastActivity = DispatchTime.now().uptimeNanoseconds
        writesInFlight -= 1
        bytesInFlight -= bytes
        if status < 0 { close(); return }
        flush()
        applyBackpressure()
        closeIfIdle()
    }

    var pendingOutput: Int { output.readable + bytesInFlight }

    private func applyBackpressure() {
        guard !closed, !closeAfterFlush, !closeWhenIdle else { return }
        if !readingPaused && pendingOutput > server.config.writeHighWater {
            readingPaused = true
            uv_read_stop(stream)
        } else if readingPaused && pendingOutput < server.config.writeLowWater {
            readingPaused = false
            startReading()
        }
    }

    // MARK: Timeouts

    /// Closes a connection that left a frame unfinished too long (slowloris), and retires one idle too long.
    func checkTimeouts(now: UInt64, idleNanos: UInt64, frameNanos: UInt64) {
        guard !closed, !closeAfterFlush else { return }
        if let since = partialSince, now > since + frameNanos {
            server.core.metrics.limitHit("frame_read_timeout")
            violation(.deadlineExceeded, "frame not completed within \(frameNanos / 1_000_000_000) s")
        } else if calls.isEmpty, pendingOutput == 0, now > lastActivity + idleNanos, goAwayLastId == nil {
            server.core.metrics.limitHit("idle_timeout")
            goAway(.ok, "idle for \(idleNanos / 1_000_000_000) s")
            closeWhenIdle = true
            closeIfIdle()
        }
    }

    // MARK: Closing

    private func closeIfIdle() {
        guard !closed else { return }
        let flushed = output.readable == 0 && writesInFlight == 0
        if closeAfterFlush && flushed && peerClosed {
            close()
        } else if closeAfterFlush && flushed {
            // Half-close and keep discarding input for a moment, so that unread bytes do not turn into a reset
            // that could destroy the GOAWAY before the peer reads it.
            if lingerDeadline == nil {
                lingerDeadline = DispatchTime.now().uptimeNanoseconds + 1_000_000_000
                let req = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
                if uv_shutdown(req, stream, { req, _ in req?.deallocate() }) != 0 { req.deallocate(); close() }
            }
        } else if closeWhenIdle && calls.isEmpty && flushed {
            close()
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        for call in calls.values { call.ctx.cancel() }
        calls.removeAll()
        uv_read_stop(stream)
        uv_close(handle) { h in
            let conn = Connection.from(h!)
            conn.server.connectionClosed(conn)
            Unmanaged<Connection>.fromOpaque(h!.pointee.data).release()
            h!.deallocate(capacity: MemoryLayout<uv_tcp_t>.size)
        }
    }
}

extension FrameError {
    /// The GOAWAY code of a framing violation.
    var code: StatusCode {
        if case .tooLarge = self { return .resourceExhausted }
        return .invalidArgument
    }
}

private extension UnsafeMutablePointer where Pointee == uv_handle_t {
    func deallocate(capacity: Int) {
        UnsafeMutableRawPointer(self).deallocate()
    }
}

/// A uv_write_t together with the bytes it owns until its callback, and the connection it writes for.
struct WriteRequest {
    struct Storage {
        var req = uv_write_t()
        var buf = uv_buf_t()
        var connection: Unmanaged<Connection>
    }

    let pointer: UnsafeMutablePointer<Storage>

    init(_ req: UnsafeMutablePointer<uv_write_t>) {
        // uv_write_t is the first member of Storage.
        pointer = UnsafeMutableRawPointer(req).assumingMemoryBound(to: Storage.self)
    }

    private init(pointer: UnsafeMutablePointer<Storage>) { self.pointer = pointer }

    static func make(copying bytes: UnsafeMutablePointer<UInt8>, count: Int, connection: Connection) -> WriteRequest {
        let p = UnsafeMutablePointer<Storage>.allocate(capacity: 1)
        let data = UnsafeMutablePointer<UInt8>.allocate(capacity: count)
        data.update(from: bytes, count: count)
        p.initialize(to: Storage(connection: Unmanaged.passRetained(connection)))
        p.pointee.buf = uv_buf_init(UnsafeMutableRawPointer(data).assumingMemoryBound(to: CChar.self), UInt32(count))
        return WriteRequest(pointer: p)
    }

    var buf: UnsafeMutablePointer<uv_buf_t> {
        (UnsafeMutableRawPointer(pointer) + MemoryLayout<Storage>.offset(of: \Storage.buf)!).assumingMemoryBound(to: uv_buf_t.self)
    }
    var req: UnsafeMutablePointer<uv_write_t> { UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: uv_write_t.self) }
    var connection: Connection { pointer.pointee.connection.takeUnretainedValue() }

    func release() {
        UnsafeMutableRawPointer(pointer.pointee.buf.base).deallocate()
        pointer.pointee.connection.release()
        pointer.deinitialize(count: 1)
        pointer.deallocate()
    }
}
