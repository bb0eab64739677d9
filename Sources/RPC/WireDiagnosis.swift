// Says where a protobuf payload that protobuf-c refused is broken: walks the wire format against the message's
// descriptor and names the field path ("history[2].item_id") and the problem, for INVALID_ARGUMENT statuses.
import CProtobufC

enum WireDiagnosis {
    struct Finding: Equatable {
        var field: String
        var problem: String
    }

    /// One base-128 varint at `i` (advanced past it); nil when the bytes end inside it or it runs past 64 bits.
    static func readVarint(_ bytes: UnsafeRawBufferPointer, _ i: inout Int) -> UInt64? {
        var v: UInt64 = 0, shift: UInt64 = 0
        while i < bytes.count, shift < 64 {
            let b = bytes[i]; i += 1
            v |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return v }
            shift += 7
        }
        return nil
    }

    static func diagnose(_ bytes: UnsafeRawBufferPointer, descriptor: UnsafePointer<ProtobufCMessageDescriptor>,
                         path: String = "", depth: Int = 0) -> Finding? {
        let n = bytes.count
        var i = 0
        var seen: [UInt32: Int] = [:]
        func varint() -> UInt64? { readVarint(bytes, &i) }
        let here = path.isEmpty ? "(message)" : path
        if depth > 64 { return Finding(field: here, problem: "nested too deeply") }
        while i < n {
            let start = i
            guard let key = varint() else { return Finding(field: here, problem: "truncated field tag at byte \(start)") }
            let number = UInt32(truncatingIfNeeded: key >> 3), wire = Int(key & 7)
            guard number != 0 else { return Finding(field: here, problem: "field number 0 at byte \(start)") }
            let fd = protobuf_c_message_descriptor_get_field(descriptor, number)
            let name = fd.map { String(cString: $0.pointee.name) } ?? "field \(number)"
            let index = seen[number, default: 0]
            seen[number] = index + 1
            let repeated = fd?.pointee.label == PROTOBUF_C_LABEL_REPEATED
            let fieldPath = (path.isEmpty ? "" : path + ".") + name + (repeated ? "[\(index)]" : "")
            if let fd, let expected = expectedWireType(fd.pointee.type), expected != wire,
               !(repeated && wire == 2 && expected != 2) {
                return Finding(field: fieldPath, problem: "wire type \(wire) where a \(typeName(fd.pointee.type)) needs \(expected)")
            }
            switch wire {
            case 0:
                guard varint() != nil else { return Finding(field: fieldPath, problem: "truncated varint") }
            case 1, 5:
                let size = wire == 1 ? 8 : 4
                guard n - i >= size else { return Finding(field: fieldPath, problem: "truncated \(size)-byte value") }
                i += size
            case 2:
                guard let len = varint() else { return Finding(field: fieldPath, problem: "truncated length") }
                guard len <= UInt64(n - i) else {
                    return Finding(field: fieldPath, problem: "length \(len) overruns the message (\(n - i) bytes left)")
                }
                let body = UnsafeRawBufferPointer(rebasing: bytes[i..<(i + Int(len))])
                if let fd, fd.pointee.type == PROTOBUF_C_TYPE_MESSAGE, let sub = fd.pointee.descriptor {
                    let subDescriptor = sub.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
                    if let f = diagnose(body, descriptor: subDescriptor, path: fieldPath, depth: depth + 1) { return f }
                } else if let fd, fd.pointee.type == PROTOBUF_C_TYPE_STRING {
                    if String(validating: body.bindMemory(to: UInt8.self), as: UTF8.self) == nil {
                        return Finding(field: fieldPath, problem: "string is not valid UTF-8")
                    }
                    if let zero = body.firstIndex(of: 0) {
                        return Finding(field: fieldPath, problem: "string contains a NUL byte (U+0000) at byte \(zero)")
                    }
                }
                i += Int(len)
            default:
                return Finding(field: fieldPath, problem: "unsupported wire type \(wire)")
            }
        }
        return nil
    }

    /// Whether any string field, at any depth, holds a NUL byte: protobuf-c hands strings over as NUL-terminated C
    /// strings, so "50\0zzz" would silently read as "50". A lean walk (no paths built) run on every decoded
    /// payload; `diagnose` then names the field. Only called on payloads protobuf-c accepted.
    static func hasNULInString(_ bytes: UnsafeRawBufferPointer, descriptor: UnsafePointer<ProtobufCMessageDescriptor>,
                               depth: Int = 0) -> Bool {
        let n = bytes.count
        var i = 0
        func varint() -> UInt64? { readVarint(bytes, &i) }
        guard depth <= 64 else { return false }
        while i < n {
            guard let key = varint() else { return false }
            switch key & 7 {
            case 0: guard varint() != nil else { return false }
            case 1: i += 8
            case 5: i += 4
            case 2:
                guard let len = varint(), len <= UInt64(n - i) else { return false }
                let number = UInt32(truncatingIfNeeded: key >> 3)
                if let fd = protobuf_c_message_descriptor_get_field(descriptor, number) {
                    let body = UnsafeRawBufferPointer(rebasing: bytes[i..<(i + Int(len))])
                    if fd.pointee.type == PROTOBUF_C_TYPE_STRING {
                        if body.contains(0) { return true }
                    } else if fd.pointee.type == PROTOBUF_C_TYPE_MESSAGE, let sub = fd.pointee.descriptor {
                        if hasNULInString(body, descriptor: sub.assumingMemoryBound(to: ProtobufCMessageDescriptor.self),
                                          depth: depth + 1) { return true }
                    }
                }
                i += Int(len)
            default: return false
            }
        }
        return false
    }

    private static func expectedWireType(_ t: ProtobufCType) -> Int? {
        switch t {
        case PROTOBUF_C_TYPE_INT32, PROTOBUF_C_TYPE_SINT32, PROTOBUF_C_TYPE_UINT32, PROTOBUF_C_TYPE_INT64,
             PROTOBUF_C_TYPE_SINT64, PROTOBUF_C_TYPE_UINT64, PROTOBUF_C_TYPE_BOOL, PROTOBUF_C_TYPE_ENUM: return 0
        case PROTOBUF_C_TYPE_FIXED64, PROTOBUF_C_TYPE_SFIXED64, PROTOBUF_C_TYPE_DOUBLE: return 1
        case PROTOBUF_C_TYPE_FIXED32, PROTOBUF_C_TYPE_SFIXED32, PROTOBUF_C_TYPE_FLOAT: return 5
        case PROTOBUF_C_TYPE_STRING, PROTOBUF_C_TYPE_BYTES, PROTOBUF_C_TYPE_MESSAGE: return 2
        default: return nil
        }
    }

    private static func typeName(_ t: ProtobufCType) -> String {
        switch t {
        case PROTOBUF_C_TYPE_STRING: return "string"
        case PROTOBUF_C_TYPE_MESSAGE: return "message"
        case PROTOBUF_C_TYPE_BYTES: return "bytes"
        case PROTOBUF_C_TYPE_FLOAT: return "float"
        case PROTOBUF_C_TYPE_DOUBLE: return "double"
        case PROTOBUF_C_TYPE_BOOL: return "bool"
        case PROTOBUF_C_TYPE_ENUM: return "enum"
        default: return "integer"
        }
    }
}
