// A load generator on its own libuv loop. Closed loop: N connections, each keeping M calls in flight; every answer
// starts the next call at once. Open loop (`rate`): calls start on a clock, evenly spaced or as a Poisson process
// (exponential gaps, seeded), spread over the connections, whatever the answers do. Requests are sent in the plan's
// order, round-robin. Measures calls per second and latency percentiles (an HdrHistogram, 3 significant digits) over
// a timed window after a warm-up, overall and per request class (`Plan.classes`: kinds of request interleaved in one
// load, so each kind's figures come from the same seconds of the same machine). Used by `r2ec bench rpc` and
// `r2ec bench serve`.
import CLibUV
import Data
import Foundation
import Histogram
import Serving

public struct LoadResult: Sendable {
    public var calls: Int
    public var seconds: Double
    /// Per-call latency in nanoseconds.
    public var latencies: Histogram<UInt64>
    public var statuses: [StatusCode: Int]
    /// Calls still in flight when the measured window closed.
    public var unanswered: Int
    /// Sum of `Plan.countTokens` over the responses of the window (e.g. reasoning tokens).
    public var tokens: Int
    /// Per-call latency in nanoseconds of each request class (`Plan.classes`); empty without classes.
    public var classLatencies: [Histogram<UInt64>]

    public var throughput: Double { Double(calls) / seconds }

    /// The latency (seconds) at or below which `p` percent of the window's calls finished.
    public func percentile(_ p: Double) -> Double { Self.percentile(p, of: latencies) }

    /// As `percentile`, over the calls of request class `c`.
    public func percentile(_ p: Double, ofClass c: Int) -> Double { Self.percentile(p, of: classLatencies[c]) }

    /// As `percentile(_:ofClass:)`, over the calls of class `c` in all of `results` together (levels repeated).
    public static func pooledPercentile(_ p: Double, ofClass c: Int, in results: [LoadResult]) -> Double {
        guard var pooled = results.first?.classLatencies[c] else { return .nan }
        for r in results.dropFirst() { pooled.add(r.classLatencies[c]) }
        return percentile(p, of: pooled)
    }

    static func percentile(_ p: Double, of h: Histogram<UInt64>) -> Double {
        guard h.totalCount > 0 else { return .nan }
        return Double(h.valueAtPercentile(p)) / 1e9
    }
}

public final class LoadGenerator {
    public struct Plan {
        public var host = "127.0.0.1"
        public var port: Int
        public var connections = 16
        public var inFlight = 1
        public var warmup = 1.0
        public var duration = 5.0
        public var method: String
        /// Request payloads, used round-robin.
        public var requests: [[UInt8]]
        /// The class (0, 1, ...) of each request, when the plan interleaves kinds of request whose latencies are
        /// wanted apart (LoadResult.classLatencies); empty: one class.
        public var classes: [Int] = []
        public var timeoutMs: Int64 = 0
        public var metadata: [(String, String)] = []
        /// Calls per second in open-loop mode; nil = closed loop.
        public var rate: Double?
        /// Open loop: exponential gaps between calls (a Poisson process of `rate`) instead of even spacing.
        public var poisson = false
        public var seed: UInt64 = 1
        /// Reads a count (e.g. reasoning tokens) from each response MESSAGE; summed into LoadResult.tokens.
        public var countTokens: (([UInt8]) -> Int)?

        public init(port: Int, method: String, requests: [[UInt8]]) {
            self.port = port
            self.method = method
            self.requests = requests
        }
    }

    final class Conn {
        unowned let gen: LoadGenerator
        let tcp = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
        let connectReq = UnsafeMutablePointer<uv_connect_t>.allocate(capacity: 1)
        let input = ByteBuffer()
        var decoder = FrameDecoder(maxPayload: 64 << 20)
        /// Calls in flight: start time (ns) and request class.
        var started: [UInt32: (t0: UInt64, requestClass: Int)] = [:]
        var nextId: UInt32 = 1
        var pending: [UInt8] = []
        var writing = false
        init(_ gen: LoadGenerator) { self.gen = gen }
        var stream: UnsafeMutablePointer<uv_stream_t> { UnsafeMutableRawPointer(tcp).assumingMemoryBound(to: uv_stream_t.self) }
    }

    let plan: Plan
    private let loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
    private let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
    private var conns: [Conn] = []
    private var frames: [[UInt8]] = []
    private var nextRequest = 0
    private var measuring = false
    private var stopping = false
    private var windowStart: UInt64 = 0
    private var windowEnd: UInt64 = 0
    private var latencies = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
    private var classLatencies: [Histogram<UInt64>]
    private var arrivals = PoissonArrivals(rate: 1, seed: 1)
    /// Poisson arrivals: when the next call is due (ns after rateStart).
    private var nextArrival: Double = 0
    private var statuses: [StatusCode: Int] = [:]
    private var tokens = 0
    private let ticker = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
    private var issued = 0
    private var rateStart: UInt64 = 0
    private var nextConn = 0
    private var connectFailure: String?

    public init(_ plan: Plan) {
        precondition(!plan.requests.isEmpty)
        precondition(plan.classes.isEmpty || (plan.classes.count == plan.requests.count && plan.classes.allSatisfy { $0 >= 0 }))
        self.plan = plan
        classLatencies = Array(repeating: Histogram<UInt64>(numberOfSignificantValueDigits: .three),
                               count: (plan.classes.max() ?? -1) + 1)
        arrivals = PoissonArrivals(rate: plan.rate ?? 1, seed: plan.seed)
        // Pre-encode CALL + MESSAGE(END_STREAM) per request; the stream id is patched in per call.
        frames = plan.requests.map {
            Self.callBytes(method: plan.method, request: $0, timeoutMs: plan.timeoutMs, metadata: plan.metadata)
        }
    }

    /// One call's bytes: a CALL frame and a MESSAGE(END_STREAM) frame, both on stream 0 (the sender patches the id).
    public static func callBytes(method: String, request: [UInt8], timeoutMs: Int64 = 0,
                                 metadata: [(String, String)] = []) -> [UInt8] {
        let header = Client.callHeader(method: method, timeoutMs: timeoutMs, metadata: metadata)
        return Frame(header: FrameHeader(type: .call, streamId: 0, length: 0), payload: header).bytes
            + Frame(header: FrameHeader(type: .message, flags: .endStream, streamId: 0, length: 0), payload: request).bytes
    }

    /// Runs the plan to completion on the calling thread.
    public func run() throws -> LoadResult {
        uv_loop_init(loop)
        let me = Unmanaged.passUnretained(self).toOpaque()
        var addr = sockaddr_in()
        uv_ip4_addr(plan.host, Int32(plan.port), &addr)
        for _ in 0..<plan.connections {
            let c = Conn(self)
            uv_tcp_init(loop, c.tcp)
            uv_tcp_nodelay(c.tcp, 1)
            c.tcp.pointee.data = Unmanaged.passUnretained(c).toOpaque()
            c.connectReq.pointee.data = c.tcp.pointee.data
            conns.append(c)
            withUnsafePointer(to: &addr) { a in
                _ = uv_tcp_connect(c.connectReq, c.tcp, UnsafeRawPointer(a).assumingMemoryBound(to: sockaddr.self)) { req, status in
                    let c = Unmanaged<Conn>.fromOpaque(req!.pointee.data).takeUnretainedValue()
                    c.gen.connected(c, status)
                }
            }
        }
        uv_timer_init(loop, timer)
        timer.pointee.data = me
        uv_timer_start(timer, { t in
            let g = Unmanaged<LoadGenerator>.fromOpaque(t!.pointee.data).takeUnretainedValue()
            g.startWindow()
        }, UInt64(plan.warmup * 1000), 0)
        if plan.rate != nil {
            uv_timer_init(loop, ticker)
            ticker.pointee.data = me
            rateStart = now()
            uv_timer_start(ticker, { t in
                Unmanaged<LoadGenerator>.fromOpaque(t!.pointee.data).takeUnretainedValue().tick()
            }, 1, 1)
        }
        uv_run(loop, UV_RUN_DEFAULT)
        if let failure = connectFailure { throw ClientError.connect(failure) }
        let unanswered = conns.reduce(0) { $0 + $1.started.count }
        return LoadResult(calls: Int(latencies.totalCount), seconds: Double(windowEnd - windowStart) / 1e9, latencies: latencies,
                          statuses: statuses, unanswered: unanswered, tokens: tokens, classLatencies: classLatencies)
    }

    private func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    private func startWindow() {
        measuring = true
        windowStart = now()
        uv_timer_start(timer, { t in
            let g = Unmanaged<LoadGenerator>.fromOpaque(t!.pointee.data).takeUnretainedValue()
            g.stop()
        }, UInt64(plan.duration * 1000), 0)
    }

    private func stop() {
        measuring = false
        stopping = true
        windowEnd = now()
        for c in conns {
            uv_read_stop(c.stream)
            uv_close(UnsafeMutableRawPointer(c.tcp).assumingMemoryBound(to: uv_handle_t.self), nil)
        }
        uv_close(UnsafeMutableRawPointer(timer).assumingMemoryBound(to: uv_handle_t.self), nil)
        if plan.rate != nil { uv_close(UnsafeMutableRawPointer(ticker).assumingMemoryBound(to: uv_handle_t.self), nil) }
    }

    /// Open loop: starts the calls the clock says are due, round-robin over the connections.
    private func tick() {
        guard let rate = plan.rate, !stopping else { return }
        let elapsed = Double(now() - rateStart)
        let due: Int
        if plan.poisson {
            var count = issued
            while nextArrival <= elapsed {
                count += 1
                nextArrival += arrivals.nextGap() * 1e9
            }
            due = count
        } else {
            due = Int(elapsed / 1e9 * rate)
        }
        var touched: [Conn] = []
        while issued < due {
            let c = conns[nextConn]
            nextConn = (nextConn + 1) % conns.count
            enqueueCall(c)
            touched.append(c)
            issued += 1
        }
        for c in touched { flush(c) }
    }

    private func connected(_ c: Conn, _ status: Int32) {
        guard status == 0 else {
            connectFailure = "cannot connect to \(plan.host):\(plan.port): \(uvError(status))"
            if !stopping { stop() }
            return
        }
        uv_read_start(c.stream, { h, _, buf in
            let c = Unmanaged<Conn>.fromOpaque(h!.pointee.data).takeUnretainedValue()
            let p = c.input.reserve(64 << 10)
            buf!.pointee = uv_buf_init(UnsafeMutableRawPointer(p).assumingMemoryBound(to: CChar.self), UInt32(c.input.writableCount))
        }, { s, n, _ in
            let c = Unmanaged<Conn>.fromOpaque(s!.pointee.data).takeUnretainedValue()
            c.gen.onRead(c, n)
        })
        if plan.rate == nil {
            for _ in 0..<plan.inFlight { enqueueCall(c) }
            flush(c)
        }
    }

    private func enqueueCall(_ c: Conn) {
        var bytes = frames[nextRequest]
        let requestClass = plan.classes.isEmpty ? 0 : plan.classes[nextRequest]
        nextRequest = (nextRequest + 1) % frames.count
        let id = c.nextId
        c.nextId += 1
        let be = id.bigEndian
        withUnsafeBytes(of: be) { b in
            for i in 0..<4 { bytes[8 + i] = b[i] }
            let second = 16 + Int(UInt32(bigEndian: bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 12, as: UInt32.self) }))
            for i in 0..<4 { bytes[second + 8 + i] = b[i] }
        }
        c.started[id] = (now(), requestClass)
        c.pending.append(contentsOf: bytes)
    }

    private func flush(_ c: Conn) {
        guard !c.writing, !c.pending.isEmpty, !stopping else { return }
        var written = 0
        c.pending.withUnsafeMutableBytes { p in
            var buf = uv_buf_init(p.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(p.count))
            written = Int(uv_try_write(c.stream, &buf, 1))
        }
        if written > 0 { c.pending.removeFirst(written) }
        guard !c.pending.isEmpty else { return }
        // The socket is full: hand the rest to one uv_write and wait for it.
        let n = c.pending.count
        let req = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
        let data = UnsafeMutablePointer<UInt8>.allocate(capacity: n)
        c.pending.withUnsafeBytes { data.initialize(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: n) }
        c.pending.removeAll(keepingCapacity: true)
        var buf = uv_buf_init(UnsafeMutableRawPointer(data).assumingMemoryBound(to: CChar.self), UInt32(n))
        req.pointee.data = UnsafeMutableRawPointer(data)
        c.writing = true
        uv_write(req, c.stream, &buf, 1) { req, _ in
            let c = Unmanaged<Conn>.fromOpaque(req!.pointee.handle.pointee.data).takeUnretainedValue()
            req!.pointee.data.deallocate()
            req!.deallocate()
            c.writing = false
            c.gen.flush(c)
        }
    }

    private func onRead(_ c: Conn, _ n: Int) {
        guard n > 0 else {
            if n < 0 && !stopping { connectFailure = "server closed the connection"; stop() }
            return
        }
        c.input.commit(n)
        do {
            while let f = try c.decoder.next(from: c.input) {
                if f.header.type == .message, measuring, let count = plan.countTokens { tokens += count(f.payload) }
                guard f.header.type == .trailer, let call = c.started.removeValue(forKey: f.header.streamId) else { continue }
                let code = (try? Client.decodeStatus(f.payload).code) ?? .unknown
                if measuring {
                    let latency = now() - call.t0
                    _ = latencies.record(latency)
                    if !classLatencies.isEmpty { _ = classLatencies[call.requestClass].record(latency) }
                    statuses[code, default: 0] += 1
                }
                if !stopping && plan.rate == nil { enqueueCall(c) }
            }
        } catch {
            connectFailure = "bad framing from the server: \(error)"
            stop()
            return
        }
        flush(c)
    }
}

/// The gaps of a Poisson process of `rate` events per second: exponential, mean 1/rate (-ln(U)/rate, U in (0, 1]).
public struct PoissonArrivals {
    public let rate: Double
    private var random: SplitMix64

    public init(rate: Double, seed: UInt64) {
        self.rate = rate
        random = SplitMix64(seed: seed)
    }

    /// Seconds until the next arrival.
    public mutating func nextGap() -> Double {
        let u = (Double(random.next() >> 11) + 1) / Double(UInt64(1) << 53)
        return -log(u) / rate
    }
}
