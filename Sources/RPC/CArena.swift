// Owns the C memory of protobuf-c messages being built from Swift values (strings, arrays, sub-messages) and frees
// all of it at once when the arena goes away, after the message has been packed.
import CProtobufC
import Foundation

final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    deinit { for b in blocks { free(b) } }

    /// A NUL-terminated copy of `s` (never NULL: protobuf-c packs "" as an absent proto3 string).
    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        let p = strdup(s)!
        blocks.append(p)
        return p
    }

    /// `count` zeroed values of T.
    func array<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let raw = calloc(max(count, 1), MemoryLayout<T>.stride)!
        blocks.append(raw)
        return raw.bindMemory(to: T.self, capacity: max(count, 1))
    }

    /// An array of C string pointers.
    func strings(_ values: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let p = array(UnsafeMutablePointer<CChar>?.self, count: values.count)
        for (i, v) in values.enumerated() { p[i] = string(v) }
        return p
    }

    /// One message initialised by `initialise` (the generated `..._init` function).
    func message<T>(_ type: T.Type, _ initialise: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let p = array(T.self, count: 1)
        initialise(p)
        return p
    }
}

/// Packs any protobuf-c message (its first member is the ProtobufCMessage base).
func packMessage<T>(_ message: UnsafeMutablePointer<T>) -> [UInt8] {
    let base = UnsafeMutableRawPointer(message).assumingMemoryBound(to: ProtobufCMessage.self)
    let size = protobuf_c_message_get_packed_size(base)
    var out = [UInt8](repeating: 0, count: size)
    if size > 0 {
        out.withUnsafeMutableBufferPointer { _ = protobuf_c_message_pack(base, $0.baseAddress!) }
    }
    return out
}

func swiftString(_ p: UnsafeMutablePointer<CChar>?) -> String {
    guard let p else { return "" }
    return String(cString: p)
}

func swiftStrings(_ p: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ n: Int) -> [String] {
    guard let p, n > 0 else { return [] }
    return (0..<n).map { swiftString(p[$0]) }
}
