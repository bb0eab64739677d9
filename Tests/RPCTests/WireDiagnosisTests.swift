// Malformed protobuf payloads get INVALID_ARGUMENT naming the field at fault.
import XCTest
@testable import RPC
import Serving

final class WireDiagnosisTests: XCTestCase {
    private func error(_ payload: [UInt8]) -> ServingError? {
        do { _ = try ProtoCodec.decodeRecommendRequest(payload); return nil } catch { return error as? ServingError }
    }

    func testTruncatedNestedStringNamesItsPath() {
        // field 2 (history), length 5: { field 1 (item_id), length 9, "abc" } -- the inner length overruns.
        let e = error([0x12, 0x05, 0x0a, 0x09, 0x61, 0x62, 0x63])
        XCTAssertEqual(e?.code, .invalidArgument)
        XCTAssertEqual(e?.field, "history[0].item_id")
    }

    func testSecondHistoryEventIsIndexed() {
        // history[0] = {item_id "a"}, history[1] = {item_id with a truncated length}
        let e = error([0x12, 0x03, 0x0a, 0x01, 0x61, 0x12, 0x02, 0x0a, 0x05])
        XCTAssertEqual(e?.field, "history[1].item_id")
    }

    func testWrongWireTypeForTopK() {
        // top_k (field 3, varint) sent as length-delimited garbage whose length overruns.
        let e = error([0x1a, 0x10, 0x01])
        XCTAssertEqual(e?.code, .invalidArgument)
        XCTAssertEqual(e?.field, "top_k")
    }

    func testValidPayloadDecodes() throws {
        // top_k = 5, history[0].item_id = "50"
        let q = try ProtoCodec.decodeRecommendRequest([0x18, 0x05, 0x12, 0x04, 0x0a, 0x02, 0x35, 0x30])
        XCTAssertEqual(q.topK, 5)
        XCTAssertEqual(q.history.events.map(\.itemId), ["50"])
    }
}
