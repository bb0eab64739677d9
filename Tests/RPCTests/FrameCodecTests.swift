// The frame codec byte by byte: every split offset, all at once, malicious lengths, and docs/protocol.md's bytes.
import XCTest
@testable import RPC

final class FrameCodecTests: XCTestCase {
    let frames: [Frame] = [
        Frame(header: FrameHeader(type: .call, streamId: 1, length: 0), payload: Array("/r2ec.v1.Health/Check".utf8)),
        Frame(header: FrameHeader(type: .message, flags: .endStream, streamId: 1, length: 0), payload: []),
        Frame(header: FrameHeader(type: .ping, streamId: 0, length: 0), payload: [1, 2, 3, 4, 5, 6, 7, 8]),
        Frame(header: FrameHeader(type: .message, streamId: 0x7fff_ffff, length: 0), payload: Array(repeating: 0xab, count: 300)),
        Frame(header: FrameHeader(type: .cancel, streamId: 3, length: 0), payload: []),
    ]

    private var wire: [UInt8] { frames.flatMap(\.bytes) }

    private func normalised(_ f: Frame) -> Frame {
        var f = f
        f.header.length = UInt32(f.payload.count)
        return f
    }

    private func decode(chunks: [ArraySlice<UInt8>]) throws -> [Frame] {
        var decoder = FrameDecoder(maxPayload: 1024)
        let buffer = ByteBuffer(capacity: 64)
        var out: [Frame] = []
        for chunk in chunks {
            buffer.append(Array(chunk))
            while let f = try decoder.next(from: buffer) { out.append(f) }
        }
        XCTAssertEqual(buffer.readable, 0)
        XCTAssertFalse(decoder.isMidFrame)
        return out
    }

    func testAllAtOnce() throws {
        XCTAssertEqual(try decode(chunks: [wire[...]]), frames.map(normalised))
    }

    func testByteByByte() throws {
        XCTAssertEqual(try decode(chunks: wire.indices.map { wire[$0...$0] }), frames.map(normalised))
    }

    func testSplitAtEveryOffset() throws {
        let bytes = wire
        for cut in 0...bytes.count {
            XCTAssertEqual(try decode(chunks: [bytes[..<cut], bytes[cut...]]), frames.map(normalised), "split at \(cut)")
        }
    }

    func testHeaderBytesMatchTheProtocolDocument() {
        // docs/protocol.md: CALL, stream 1, 26-byte payload; MESSAGE END_STREAM stream 1 empty; TRAILER stream 1 empty.
        let header = Client.callHeader(method: "/r2ec.v1.Health/Check", timeoutMs: 1000, metadata: [])
        XCTAssertEqual(FrameHeader(type: .call, streamId: 1, length: UInt32(header.count)).bytes,
                       [0x52, 0x32, 0x45, 0x43, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x1a])
        XCTAssertEqual(FrameHeader(type: .message, flags: .endStream, streamId: 1, length: 0).bytes,
                       [0x52, 0x32, 0x45, 0x43, 0x01, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00])
        XCTAssertEqual(FrameHeader(type: .trailer, streamId: 1, length: 0).bytes,
                       [0x52, 0x32, 0x45, 0x43, 0x01, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00])
        XCTAssertEqual(header, [0x0a, 0x15] + Array("/r2ec.v1.Health/Check".utf8) + [0x10, 0xe8, 0x07])
    }

    func testOverLimitLengthIsRefusedOnTheHeaderAlone() {
        var decoder = FrameDecoder(maxPayload: 1024)
        let buffer = ByteBuffer(capacity: 64)
        buffer.append(FrameHeader(type: .message, streamId: 1, length: 0xffff_ffff).bytes)
        XCTAssertThrowsError(try decoder.next(from: buffer)) { error in
            XCTAssertEqual(error as? FrameError, .tooLarge(length: 0xffff_ffff, limit: 1024))
        }
        XCTAssertEqual(buffer.capacity, 64, "no allocation for the refused payload")
        // Exactly at the limit is fine.
        var ok = FrameDecoder(maxPayload: 4)
        let b2 = ByteBuffer(capacity: 64)
        b2.append(Frame(header: FrameHeader(type: .message, streamId: 1, length: 4), payload: [1, 2, 3, 4]).bytes)
        XCTAssertEqual(try ok.next(from: b2)?.payload, [1, 2, 3, 4])
    }

    func testBadMagicVersionAndType() {
        func error(_ mutate: (inout [UInt8]) -> Void) -> FrameError? {
            var bytes = FrameHeader(type: .ping, streamId: 0, length: 8).bytes + [UInt8](repeating: 0, count: 8)
            mutate(&bytes)
            var decoder = FrameDecoder()
            let buffer = ByteBuffer()
            buffer.append(bytes)
            do { _ = try decoder.next(from: buffer); return nil } catch { return error }
        }
        XCTAssertEqual(error { $0[0] = 0x47 }, .badMagic(0x4732_4543))
        XCTAssertEqual(error { $0[4] = 2 }, .badVersion(2))
        XCTAssertEqual(error { $0[5] = 0x09 }, .unknownType(0x09))
        XCTAssertEqual(error { $0[5] = 0x00 }, .unknownType(0x00))
        XCTAssertNil(error { $0[6] = 0xff })  // unknown flag bits are ignored
    }

    func testMidFrameStateIsVisible() throws {
        var decoder = FrameDecoder()
        let buffer = ByteBuffer()
        let bytes = Frame(header: FrameHeader(type: .message, streamId: 1, length: 0), payload: [9, 9, 9]).bytes
        buffer.append(Array(bytes[..<17]))
        XCTAssertNil(try decoder.next(from: buffer))
        XCTAssertTrue(decoder.isMidFrame)
        XCTAssertEqual(decoder.pendingPayload(in: buffer), 2)
    }
}
