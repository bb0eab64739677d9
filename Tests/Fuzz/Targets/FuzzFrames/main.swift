// libFuzzer target: the frame layer (FrameDecoder over a ByteBuffer), differential. Input: byte 0 picks the payload
// limit, byte 1 seeds how the rest is cut into reads (append or reserve/commit, compaction, idle shrinking); the rest
// is the byte stream. The frames handed out must equal those of a plain reference parse, in order, and a FrameError
// must come exactly where the reference finds the stream invalid.
import Data
import FuzzSupport
@testable import RPC

/// The reference: frames of `s` in order, then nil or the error of the first invalid header.
func referenceParse(_ s: ArraySlice<UInt8>, maxPayload: Int) -> (frames: [Frame], error: FrameError?) {
    var frames: [Frame] = []
    var i = s.startIndex
    func be32(_ at: Int) -> UInt32 { s[at..<(at + 4)].reduce(0) { $0 << 8 | UInt32($1) } }
    while s.endIndex - i >= 16 {
        let magic = be32(i)
        if magic != 0x5232_4543 { return (frames, .badMagic(magic)) }
        if s[i + 4] != 1 { return (frames, .badVersion(s[i + 4])) }
        guard let type = FrameType(rawValue: s[i + 5]) else { return (frames, .unknownType(s[i + 5])) }
        let flags = UInt16(s[i + 6]) << 8 | UInt16(s[i + 7])
        let length = be32(i + 12)
        if Int(length) > maxPayload { return (frames, .tooLarge(length: Int(length), limit: maxPayload)) }
        guard s.endIndex - (i + 16) >= Int(length) else { break }
        let header = FrameHeader(type: type, flags: FrameFlags(rawValue: flags), streamId: be32(i + 8), length: length)
        frames.append(Frame(header: header, payload: Array(s[(i + 16)..<(i + 16 + Int(length))])))
        i += 16 + Int(length)
    }
    return (frames, nil)
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = bytes(data, size)
    guard input.count >= 2 else { return 0 }
    let maxPayload = [0, 8, 64, 4096, FrameHeader.defaultMaxPayload][Int(input[0]) % 5]
    var rng = SplitMix64(seed: UInt64(input[1]))
    let stream = input[2...]
    let expected = referenceParse(stream, maxPayload: maxPayload)

    var decoder = FrameDecoder(maxPayload: maxPayload)
    let buffer = ByteBuffer(capacity: Int(rng.next() % 200))
    var got: [Frame] = []
    var failure: FrameError?
    var offset = stream.startIndex
    reading: while offset < stream.endIndex {
        let n = min(stream.endIndex - offset, 1 + Int(rng.next() % 48))
        stream[offset..<(offset + n)].withUnsafeBytes { chunk in
            if rng.next() % 2 == 0 {
                buffer.append(chunk)
            } else {
                let p = buffer.reserve(chunk.count)
                precondition(buffer.writableCount >= chunk.count, "reserve left less room than asked")
                UnsafeMutableRawPointer(p).copyMemory(from: chunk.baseAddress!, byteCount: chunk.count)
                buffer.commit(chunk.count)
            }
        }
        offset += n
        do {
            while let frame = try decoder.next(from: buffer) {
                precondition(frame.payload.count == Int(frame.header.length), "payload length differs from the header")
                precondition(frame.payload.count <= maxPayload, "a frame over the limit was handed out")
                got.append(frame)
            }
        } catch {
            failure = error
            break reading
        }
        precondition(decoder.pendingPayload(in: buffer) > 0, "decoder waits for nothing but returned no frame")
        switch rng.next() % 4 {
        case 0: buffer.compact()
        case 1: buffer.shrinkIfIdle(to: 64)
        default: break
        }
    }
    precondition(got == Array(expected.frames.prefix(got.count)), "frames differ from the reference parse")
    if let failure {
        precondition(got.count == expected.frames.count, "error after \(got.count) frames, reference has \(expected.frames.count)")
        precondition(failure == expected.error, "error \(failure), reference \(String(describing: expected.error))")
    } else {
        precondition(expected.error == nil, "reference fails with \(expected.error!), the decoder did not")
        precondition(got.count == expected.frames.count, "decoded \(got.count) frames, reference \(expected.frames.count)")
    }
    // Round trip: the frames re-encode to the bytes they were read from.
    var reencoded: [UInt8] = []
    for f in got { reencoded += f.bytes }
    precondition(reencoded == Array(stream.prefix(reencoded.count)), "frames do not re-encode to their bytes")
    return 0
}

fuzzMain(fuzzOne)
