// The gRPC door's own pieces without a network: grpc-timeout parsing against the values gRPC's spec gives, the
// method table against the services the custom protocol routes, and the status mapping. Calls over a real port are
// tested by clients/python/tests/test_grpc.py with grpcio.
#if GRPC
import GRPCCore
@testable import GRPCDoor
import RPC
import Serving
import XCTest

final class GRPCDoorTests: XCTestCase {
    func testTimeoutUnits() {
        XCTAssertEqual(GRPCTimeout.nanoseconds("1H"), 3_600_000_000_000)
        XCTAssertEqual(GRPCTimeout.nanoseconds("2M"), 120_000_000_000)
        XCTAssertEqual(GRPCTimeout.nanoseconds("5S"), 5_000_000_000)
        XCTAssertEqual(GRPCTimeout.nanoseconds("250m"), 250_000_000)
        XCTAssertEqual(GRPCTimeout.nanoseconds("7u"), 7_000)
        XCTAssertEqual(GRPCTimeout.nanoseconds("99999999n"), 99_999_999)
        XCTAssertEqual(GRPCTimeout.nanoseconds("0m"), 0)
        // 99,999,999 hours overflows UInt64 nanoseconds: saturates instead of wrapping.
        XCTAssertEqual(GRPCTimeout.nanoseconds("99999999H"), UInt64.max)
    }

    func testTimeoutRejects() {
        for bad in ["", "m", "5", "123456789m", "5s", "-5m", "5 m", "1.5S", "５m", "5mm"] {
            XCTAssertNil(GRPCTimeout.nanoseconds(bad), bad)
        }
    }

    func testMethodTableCoversProtos() {
        let paths = Set(GeneratedMethods.all.map(\.path))
        XCTAssertEqual(paths.count, GeneratedMethods.all.count, "duplicate paths")
        for path in ["/r2ec.v1.Recommender/Recommend", "/r2ec.v1.Recommender/RecommendStream",
                     "/r2ec.v1.Health/Check", "/r2ec.v1.Health/Watch", "/r2ec.v1.Admin/LoadModel",
                     "/r2ec.v1.Events/RecordEvents"] {
            XCTAssertTrue(paths.contains(path), path)
        }
        let streaming = Set(GeneratedMethods.all.filter(\.serverStreaming).map(\.path))
        XCTAssertEqual(streaming, ["/r2ec.v1.Recommender/RecommendStream", "/r2ec.v1.Health/Watch"])
        XCTAssertEqual(GRPCDoor.healthAliases.values.sorted(), ["/r2ec.v1.Health/Check", "/r2ec.v1.Health/Watch"])
    }

    func testRoutesMatchTheRouter() {
        // Every method the custom protocol routes is a route of the door with the same kind; a method of Protos/
        // the router lacks is still registered (and answered UNIMPLEMENTED, as the custom protocol answers it).
        let core = ServingCore(registry: ModelRegistry())
        defer { core.shutdown() }
        let server = Server(config: ServerConfig(), core: core)
        let routes = Dictionary(uniqueKeysWithValues: GRPCDoor.routes.map { ($0.path, $0) })
        for name in server.router.methodNames {
            guard let route = routes[name], let method = server.router[name] else {
                XCTFail("\(name) is routed by the server but not by the gRPC door (run scripts/gen-grpc-methods.sh)")
                continue
            }
            XCTAssertEqual(route.streaming, method.kind == .serverStreaming, name)
            XCTAssertEqual(route.target, name)
        }
        XCTAssertEqual(routes["/grpc.health.v1.Health/Check"]?.target, "/r2ec.v1.Health/Check")
        XCTAssertEqual(routes["/grpc.health.v1.Health/Watch"]?.streaming, true)
    }

    func testStatusMappingKeepsEveryCanonicalCode() {
        for code in StatusCode.allCases where code != .ok {
            let field = code == .invalidArgument ? "history[2].item_id" : ""
            let error = RPCError(CallStatus(code, "m", field: field, trailingMetadata: [("x-request-id", "7")]))
            XCTAssertEqual(error.code.rawValue, Int(code.rawValue), code.name)
            XCTAssertEqual(error.message, "m")
            XCTAssertEqual(Array(error.metadata[stringValues: "x-request-id"]), ["7"])
            XCTAssertEqual(Array(error.metadata[stringValues: "r2ec-field"]), field.isEmpty ? [] : [field])
        }
    }

    func testRawCodecIsIdentity() throws {
        let bytes: [UInt8] = [0x0a, 0x02, 0x31, 0x30, 0xff, 0x00]
        let serialized: [UInt8] = try RawSerializer().serialize(bytes)
        XCTAssertEqual(serialized, bytes)
        XCTAssertEqual(try RawDeserializer().deserialize(serialized), bytes)
    }

    func testSinkFinishesOnceAndEndsTheCall() async {
        let call = RPCCall(method: "/r2ec.v1.Health/Watch")
        let ended = Box(0)
        call.onEnd { ended.value += 1 }
        let sink = GRPCCallSink(call: call)
        XCTAssertTrue(sink.message([1]))
        sink.finish(.ok)
        XCTAssertEqual(ended.value, 1)
        sink.finish(CallStatus(.internal, "late"))
        XCTAssertFalse(sink.message([3]), "a message after the finish is refused")
        var seen: [String] = []
        for await event in sink.events {
            switch event {
            case .message(let m): seen.append("m\(m)")
            case .finish(let status): seen.append(status.code.name)
            }
        }
        XCTAssertEqual(seen, ["m[1]", "OK"])
        XCTAssertEqual(ended.value, 1)
        XCTAssertFalse(call.context.isCancelled)
    }

    func testEndCancelsTheWork() {
        let call = RPCCall(method: "/r2ec.v1.Recommender/RecommendStream")
        let sink = GRPCCallSink(call: call)
        sink.end(CallStatus(.cancelled, "cancelled by the client"))
        XCTAssertTrue(call.context.isCancelled)
        XCTAssertTrue(call.isEnded)
        XCTAssertFalse(sink.message([1]))
    }
}
#endif
