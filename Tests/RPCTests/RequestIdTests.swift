// Request ids: the client's x-request-id when usable, else 16 made-up hex digits; echoed in the trailer when the
// client sent one or the call failed, never added to a successful call that did not ask.
@testable import RPC
import Serving
import XCTest

final class RequestIdTests: XCTestCase {
    func testClientValueOrGenerated() {
        let given = RequestId(metadata: [("authorization", "Bearer x"), ("x-request-id", "req-42")])
        XCTAssertEqual(given, RequestId(value: "req-42", fromClient: true))
        for bad in ["", "has space", String(repeating: "a", count: 129), "caf\u{e9}", "tab\there"] {
            let id = RequestId(metadata: [("x-request-id", bad)])
            XCTAssertFalse(id.fromClient, bad)
            XCTAssertEqual(id.value.count, 16)
            XCTAssertTrue(id.value.allSatisfy { "0123456789abcdef".contains($0) }, id.value)
        }
        XCTAssertTrue(RequestId(metadata: [("x-request-id", String(repeating: "~", count: 128))]).fromClient)
        XCTAssertNotEqual(RequestId(metadata: []).value, RequestId(metadata: []).value)
    }

    func testEchoRules() {
        let client = RequestId(value: "r1", fromClient: true), made = RequestId(value: "00000000000000ff", fromClient: false)
        XCTAssertTrue(CallStatus.ok.echoingRequestId(made).trailingMetadata.isEmpty)
        XCTAssertEqual(CallStatus.ok.echoingRequestId(client).trailingMetadata.map(\.value), ["r1"])
        let failed = CallStatus(.notFound, "no such model").echoingRequestId(made)
        XCTAssertEqual(failed.trailingMetadata.map(\.key), ["x-request-id"])
        XCTAssertEqual(failed.trailingMetadata.map(\.value), ["00000000000000ff"])
        // A handler's own x-request-id is kept, not doubled.
        let own = CallStatus(.internal, trailingMetadata: [("x-request-id", "handler")]).echoingRequestId(client)
        XCTAssertEqual(own.trailingMetadata.map(\.value), ["handler"])
    }

    func testEchoOfACall() {
        let plain = RPCCall(method: "/r2ec.v1.Health/Check")
        XCTAssertFalse(plain.hasClientRequestId)
        XCTAssertTrue(CallStatus.ok.echoingRequestId(of: plain).trailingMetadata.isEmpty)
        // A failed call echoes the id it is logged under, the same one for its whole life.
        let failed = CallStatus(.notFound, "no such model").echoingRequestId(of: plain)
        XCTAssertEqual(failed.trailingMetadata.map(\.value), [plain.requestId.value])
        let asked = RPCCall(method: "/r2ec.v1.Health/Check", metadata: [("x-request-id", "r7")])
        XCTAssertTrue(asked.hasClientRequestId)
        XCTAssertEqual(CallStatus.ok.echoingRequestId(of: asked).trailingMetadata.map(\.value), ["r7"])
        let unusable = RPCCall(method: "/r2ec.v1.Health/Check", metadata: [("x-request-id", "has space")])
        XCTAssertFalse(unusable.hasClientRequestId)
        XCTAssertTrue(CallStatus.ok.echoingRequestId(of: unusable).trailingMetadata.isEmpty)
    }

    func testCallKeepsOneIdForItsLife() {
        let call = RPCCall(method: "/r2ec.v1.Health/Check")
        XCTAssertEqual(call.requestId, call.requestId)
        XCTAssertFalse(call.requestId.fromClient)
    }
}
