// The loopback floor beside `r2ec bench rpc`'s figures (Sources/CLoopbackFloor): a bare C epoll server answering
// Health calls (r2ec framing) or PING (RESP), and a bare C closed-loop client, so the same run shows what one read
// and one write per call cost on this machine with no r2ec or redis code in the way.
import CLoopbackFloor
import Foundation
import RPC

enum LoopbackFloor {
    enum Wire {
        case frames, resp
        var raw: Int32 { self == .frames ? Int32(R2EC_FLOOR_FRAMES) : Int32(R2EC_FLOOR_RESP) }
    }

    /// The C server on a thread of its own, on a free loopback port.
    final class Server {
        private let handle: OpaquePointer
        let port: Int

        init(_ proto: Wire) throws {
            guard let h = r2ec_floor_server_start(proto.raw) else {
                throw LoopbackFloorError("cannot start the floor server: \(String(cString: strerror(errno)))")
            }
            handle = h
            port = Int(r2ec_floor_server_port(h))
        }

        func stop() { r2ec_floor_server_stop(handle) }
    }

    struct Result {
        var calls: Int
        var seconds: Double
        var errors: Int
        var meanLatencyMs: Double
        var throughput: Double { Double(calls) / seconds }
    }

    /// The C client, closed loop: `connections` connections, one call in flight each, on 127.0.0.1:`port`.
    /// `request`: one call's bytes (a CALL and a MESSAGE frame for .frames; the command for .resp).
    static func load(port: Int, _ proto: Wire, request: [UInt8], connections: Int, warmup: Double = 1,
                     seconds: Double) throws -> Result {
        var r = r2ec_floor_result()
        let status = request.withUnsafeBufferPointer {
            r2ec_floor_load(Int32(port), proto.raw, $0.baseAddress, $0.count, Int32(connections), warmup, seconds, &r)
        }
        guard status == 0 else {
            let text = withUnsafeBytes(of: r.error) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            throw LoopbackFloorError("floor client: \(text)")
        }
        return Result(calls: Int(r.calls), seconds: r.seconds, errors: Int(r.errors), meanLatencyMs: r.mean_latency_us / 1e3)
    }

    /// redis-benchmark's PING_MBULK command.
    static let ping = Array("*1\r\n$4\r\nPING\r\n".utf8)
}

struct LoopbackFloorError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
