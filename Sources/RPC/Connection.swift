// One client connection on the loop thread, the libuv transport of the call core: its read buffer and frame
// decoder, its outgoing bytes with backpressure (stop reading above the high-water mark, resume below the low one),
// timers. The call rules live in ConnectionStateMachine; this class feeds it frames and carries out its actions.
// Every method here runs on the loop thread.
import CLibUV
import Foundation
import Serving

final class Connection {
    unowned let server: Server
    let tcp: UnsafeMutablePointer<uv_tcp_t>
    let peer: String
    /// The call rules; this class only feeds it frames and carries out its actions.
    private var machine: ConnectionStateMachine
    private let input = ByteBuffer(capacity: 16 << 10)
    private var decoder: FrameDecoder
    private let output = ByteBuffer(capacity: 16 << 10)
    private var bytesInFlight = 0
    private var writesInFlight = 0

    private var readingPaused = false
    /// Close once the output is written (the state machine said so).
    private var closeAfterFlush = false
    /// Half-close and linger before closing (after a violation GOAWAY, while the peer may still send).
    private var lingerWanted = false
    private(set) var closed = false
    /// The peer closed its write side (EOF).
    private var peerClosed = false
    /// Monotonic time (ns) after which a connection waiting to close is closed regardless.
    var lingerDeadline: UInt64?
    var isDirty = false
    /// Last time bytes came in or went out (monotonic ns): the idle timeout counts from it.
    private var lastActivity = DispatchTime.now().uptimeNanoseconds
    /// When this connection reaches its maximum age and gets GOAWAY (nil: no limit); see maxConnectionAgeSeconds.
    private var ageDeadline: UInt64?
    private let openedAt = DispatchTime.now().uptimeNanoseconds
    /// Since when part of a frame has been waiting for the rest (slowloris guard), if it is.
    private var partialSince: UInt64?

    init(server: Server, tcp: UnsafeMutablePointer<uv_tcp_t>, peer: String) {
        self.server = server
        self.tcp = tcp
        self.peer = peer
        self.decoder = FrameDecoder(maxPayload: server.config.maxFramePayload)
        self.machine = ConnectionStateMachine(router: server.router, authorizer: server.authorizer,
                                              settings: server.machineSettings, peer: peer)
    }

    var stream: UnsafeMutablePointer<uv_stream_t> { UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_stream_t.self) }
    var handle: UnsafeMutablePointer<uv_handle_t> { UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_handle_t.self) }

    var callsInFlight: Int { machine.callsInFlight }

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
                // Half-close (or a full close we cannot tell from one): answer what can still be answered, then close.
                uv_read_stop(stream)
                if decoder.isMidFrame { server.log("\(peer): disconnected in the middle of a frame") }
                peerClosed = true
                perform(machine.peerFinished())
                closeIfFlushed()
            } else {
                close()
            }
            return
        }
        guard nread > 0 else { return }
        input.commit(nread)
        let now = DispatchTime.now().uptimeNanoseconds
        lastActivity = now
        do {
            while !closed, machine.isReading, let frame = try decoder.next(from: input) {
                perform(machine.receive(frame, now: now))
            }
        } catch {
            perform(machine.violation(error.code, error.description))
        }
        if !machine.isReading {
            input.consume(input.readable)  // discarding until close
            partialSince = nil
        } else if input.readable == 0 && !decoder.isMidFrame {
            partialSince = nil
        } else if partialSince == nil {
            partialSince = lastActivity
        }
        input.shrinkIfIdle(to: 16 << 10)
    }

    // MARK: Actions

    private func perform(_ actions: [ConnectionAction]) {
        for action in actions {
            switch action {
            case .send(let frame):
                send(frame)
            case .start(let id, let call, let method, let request):
                let sink = ConnectionSink(connection: self, id: id, call: call)
                if method.offLoop || request.count >= server.config.offloadRequestBytes {
                    // A large request, or one whose preparation grows with its entries, is decoded (and
                    // validated, prepared) off the loop thread.
                    server.offload { method.handler(request, call, sink) }
                } else {
                    method.handler(request, call, sink)
                }
            case .cancel(let call):
                call.context.cancel()
            case .ended(let call, let status):
                server.record(call, status: status)
                call.end()
            case .refused(let error, let requestId):
                server.recordRefused(error, peer: peer, requestId: requestId)
            case .violation(let error):
                server.log("\(peer): protocol violation: \(error.message)")
                server.core.metrics.protocolViolation()
                if error.code == .resourceExhausted { server.core.metrics.limitHit("frame_size") }
            case .limitHit(let limit):
                server.core.metrics.limitHit(limit)
            case .close(let linger):
                closeAfterFlush = true
                lingerWanted = linger
                server.markDirty(self)
            }
        }
    }

    /// A response MESSAGE from a call's handler (on the loop thread).
    func deliver(_ id: UInt32, _ call: RPCCall, message payload: [UInt8]) {
        guard !closed else { return }
        perform(machine.message(id, of: call, payload, pendingOutput: pendingOutput))
    }

    /// A call's end from its handler (on the loop thread).
    func deliver(_ id: UInt32, _ call: RPCCall, finish status: CallStatus, lastMessage: [UInt8]?) {
        guard !closed else { return }
        perform(machine.finish(id, of: call, status, lastMessage: lastMessage, pendingOutput: pendingOutput))
    }

    /// Graceful drain: GOAWAY, finish what was accepted, then close.
    func drain() { perform(machine.goAway("server is shutting down")) }

    /// The drain timeout: every call still in flight is answered UNAVAILABLE, then the connection closes.
    func abort(_ text: String) {
        perform(machine.abortCalls(CallStatus(.unavailable, text)))
        flush()
        close()
    }

    /// Refuses a connection over the server's limit.
    func refuse(_ text: String) { perform(machine.refuseConnection(text)) }

    // MARK: Writing

    func send(_ frame: Frame) {
        guard !closed else { return }
        let payload = frame.payload
        let p = output.reserve(FrameHeader.size + payload.count)
        var header = frame.header
        header.length = UInt32(payload.count)
        header.write(to: p)
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
        closeIfFlushed()
    }

    private func writeCompleted(bytes: Int, status: Int32) {
        lastActivity = DispatchTime.now().uptimeNanoseconds
        writesInFlight -= 1
        bytesInFlight -= bytes
        if status < 0 { close(); return }
        flush()
    }

    /// Bytes written by the calls but not yet taken by the socket.
    var pendingOutput: Int { output.readable + bytesInFlight }

    private func applyBackpressure() {
        guard !closed, !closeAfterFlush, !peerClosed else { return }
        if !readingPaused && pendingOutput > server.config.writeHighWater {
            readingPaused = true
            uv_read_stop(stream)
        } else if readingPaused && pendingOutput < server.config.writeLowWater {
            readingPaused = false
            startReading()
        }
    }

    // MARK: Timeouts

    /// Deadlines and request timeouts of the calls; a frame left unfinished too long (slowloris); idleness.
    func checkTimers(now: UInt64, idleNanos: UInt64, frameNanos: UInt64, slow: Bool) {
        guard !closed else { return }
        perform(machine.tick(now: now))
        guard slow, !closeAfterFlush else { return }
        if ageDeadline == nil, server.config.maxConnectionAgeSeconds > 0 {
            let age = server.config.maxConnectionAgeSeconds * Double.random(in: 0.9...1.1)
            ageDeadline = openedAt + UInt64(age * 1e9)
        }
        if let since = partialSince, now > since + frameNanos {
            server.core.metrics.limitHit("frame_read_timeout")
            perform(machine.violation(.deadlineExceeded, "frame not completed within \(frameNanos / 1_000_000_000) s"))
        } else if machine.callsInFlight == 0, pendingOutput == 0, now > lastActivity + idleNanos, machine.state == .open {
            server.core.metrics.limitHit("idle_timeout")
            perform(machine.goAway("idle for \(idleNanos / 1_000_000_000) s"))
        } else if let ageDeadline, now > ageDeadline, machine.state == .open {
            server.core.metrics.limitHit("max_connection_age")
            perform(machine.goAway("connection reached its maximum age; reconnect"))
        }
    }

    // MARK: Closing

    private func closeIfFlushed() {
        guard !closed, closeAfterFlush, output.readable == 0, writesInFlight == 0 else { return }
        if lingerWanted && !peerClosed {
            // Half-close and keep discarding input for a moment, so that unread bytes do not turn into a reset
            // that could destroy the GOAWAY before the peer reads it.
            if lingerDeadline == nil {
                lingerDeadline = DispatchTime.now().uptimeNanoseconds + 1_000_000_000
                let req = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
                if uv_shutdown(req, stream, { req, _ in req?.deallocate() }) != 0 { req.deallocate(); close() }
            }
        } else {
            close()
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        perform(machine.closed())
        uv_read_stop(stream)
        uv_close(handle) { h in
            let conn = Connection.from(h!)
            conn.server.connectionClosed(conn)
            Unmanaged<Connection>.fromOpaque(h!.pointee.data).release()
            h!.deallocate(capacity: MemoryLayout<uv_tcp_t>.size)
        }
    }
}

/// A call's response sink on this transport: answers from any thread are carried to the loop thread (at once when
/// already on it) and handed to the connection's state machine there.
final class ConnectionSink: ResponseSink, @unchecked Sendable {
    let connection: Connection
    let id: UInt32
    let call: RPCCall

    init(connection: Connection, id: UInt32, call: RPCCall) {
        self.connection = connection
        self.id = id
        self.call = call
    }

    @discardableResult
    func message(_ payload: [UInt8]) -> Bool {
        guard !call.isEnded else { return false }
        let (conn, id, call) = (connection, self.id, self.call)
        connection.server.onLoop { conn.deliver(id, call, message: payload) }
        return true
    }

    func finish(_ status: CallStatus) {
        let (conn, id, call) = (connection, self.id, self.call)
        connection.server.onLoop { conn.deliver(id, call, finish: status, lastMessage: nil) }
    }

    func respond(_ payload: [UInt8]) {
        let (conn, id, call) = (connection, self.id, self.call)
        connection.server.onLoop { conn.deliver(id, call, finish: .ok, lastMessage: payload) }
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
