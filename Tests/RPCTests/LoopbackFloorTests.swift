// The loopback floor of `r2ec bench rpc` (Sources/CLoopbackFloor) speaks what it is compared with: its server answers
// a Health call with the bytes the r2ec server answers, and PING as redis does; its client's calls are OK calls to
// the real server and are counted as errors when the server refuses them.
import CLoopbackFloor
import Foundation
@testable import RPC
import Serving
import XCTest

final class LoopbackFloorTests: ServerFixture {
    private let health = "/r2ec.v1.Health/Check"

    private func load(_ port: Int, _ proto: Int32, _ request: [UInt8], connections: Int32 = 4) -> (Int32, r2ec_floor_result) {
        var r = r2ec_floor_result()
        let status = request.withUnsafeBufferPointer {
            r2ec_floor_load(Int32(port), proto, $0.baseAddress, $0.count, connections, 0.05, 0.3, &r)
        }
        return (status, r)
    }

    private func errorText(_ r: r2ec_floor_result) -> String {
        withUnsafeBytes(of: r.error) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    func testFloorServerAnswersHealthAsTheServerDoes() throws {
        try startServer()
        let real = try Client(port: port)
        let floor = try XCTUnwrap(r2ec_floor_server_start(Int32(R2EC_FLOOR_FRAMES)))
        defer { r2ec_floor_server_stop(floor) }
        let bare = try Client(port: Int(r2ec_floor_server_port(floor)))
        for _ in 0..<3 {
            let expected = try real.call(health, [])
            XCTAssertEqual(expected, [0x08, 0x01])
            XCTAssertEqual(try bare.call(health, []), expected)
        }
        // Frame by frame too: MESSAGE then an empty TRAILER on the call's stream.
        let id = try bare.start(health, [])
        let message = try XCTUnwrap(try bare.readFrame(timeout: 5)), trailer = try XCTUnwrap(try bare.readFrame(timeout: 5))
        XCTAssertEqual([message.header.type, trailer.header.type], [.message, .trailer])
        XCTAssertEqual([message.header.streamId, trailer.header.streamId], [id, id])
        XCTAssertEqual(trailer.payload, [])
        XCTAssertEqual(r2ec_floor_server_calls(floor), 4)
    }

    func testFloorClientMakesOKCallsToTheRealServer() throws {
        try startServer()
        let (status, r) = load(port, Int32(R2EC_FLOOR_FRAMES), LoadGenerator.callBytes(method: health, request: []))
        XCTAssertEqual(status, 0, errorText(r))
        XCTAssertGreaterThan(r.calls, 100)
        XCTAssertEqual(r.errors, 0)
        XCTAssertGreaterThan(r.seconds, 0.2)
    }

    func testFloorClientCountsRefusedCallsAsErrors() throws {
        var config = ServerConfig()
        config.tokens = ["secret"]
        try startServer(config: config)
        let (status, r) = load(port, Int32(R2EC_FLOOR_FRAMES), LoadGenerator.callBytes(method: health, request: []))
        XCTAssertEqual(status, 0, errorText(r))
        XCTAssertGreaterThan(r.calls, 0)
        XCTAssertEqual(r.errors, r.calls, "every call lacks the token: UNAUTHENTICATED")
    }

    func testFloorServerSpeaksRESP() throws {
        let floor = try XCTUnwrap(r2ec_floor_server_start(Int32(R2EC_FLOOR_RESP)))
        defer { r2ec_floor_server_stop(floor) }
        let port = Int(r2ec_floor_server_port(floor))
        let c = try Client(port: port)
        try c.sendRaw(Array("*1\r\n$4\r\nPING\r\nPING\r\n*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$4\r\nsave\r\n*1\r\n$4\r\nNOPE\r\n".utf8))
        var got: [UInt8] = []
        let want = Array("+PONG\r\n+PONG\r\n*2\r\n$4\r\nsave\r\n$0\r\n\r\n-ERR unknown command\r\n".utf8)
        while got.count < want.count {
            var pfd = pollfd(fd: c.rawDescriptor, events: Int16(POLLIN), revents: 0)
            XCTAssertEqual(poll(&pfd, 1, 5000), 1)
            var buf = [UInt8](repeating: 0, count: 256)
            let n = recv(c.rawDescriptor, &buf, buf.count, 0)
            guard n > 0 else { break }
            got += buf[..<n]
        }
        XCTAssertEqual(String(decoding: got, as: UTF8.self), String(decoding: want, as: UTF8.self))
        let (status, r) = load(port, Int32(R2EC_FLOOR_RESP), Array("*1\r\n$4\r\nPING\r\n".utf8))
        XCTAssertEqual(status, 0, errorText(r))
        XCTAssertGreaterThan(r.calls, 100)
        XCTAssertEqual(r.errors, 0)
    }
}
