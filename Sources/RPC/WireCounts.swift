// Counts a request's repeated entries on the wire before protobuf-c decodes it. protobuf-c allocates every entry
// of a repeated field (a pointer, a struct, its strings) before any count can be checked, so a 4 MiB request of two
// million empty events cost ~220 MB only to be refused. The walk here reads the top-level tags alone and allocates
// nothing; malformed bytes are left to protobuf-c and WireDiagnosis, which name the broken field.
import Serving

/// A repeated top-level field and the most entries a request may hold in it.
struct WireCap {
    var number: UInt32
    var field: String
    var max: Int
    /// The limit-hit metric's label.
    var limit: String
}

enum WireCounts {
    /// INVALID_ARGUMENT worded as the serving core words its own count limits (with the field's whole count), for
    /// the first capped field found past its cap; nil when every count is within its cap, or when the bytes turn
    /// malformed before any is (protobuf-c and WireDiagnosis then refuse them).
    static func check(_ bytes: UnsafeRawBufferPointer, _ caps: [WireCap]) -> ServingError? {
        guard !caps.isEmpty else { return nil }
        var counts = [Int](repeating: 0, count: caps.count)
        var exceeded: Int?
        var i = 0
        while i < bytes.count {
            guard let key = WireDiagnosis.readVarint(bytes, &i) else { break }
            let number = UInt32(truncatingIfNeeded: key >> 3)
            if let c = caps.firstIndex(where: { $0.number == number }), exceeded == nil || exceeded == c {
                counts[c] += 1
                if exceeded == nil, counts[c] > caps[c].max { exceeded = c }
            }
            guard skip(bytes, &i, wire: Int(key & 7)) else { break }
        }
        guard let c = exceeded else { return nil }
        return ServingError(.invalidArgument, "\(caps[c].field): \(counts[c]) exceeds the server's limit of \(caps[c].max)",
                            field: caps[c].field, limit: caps[c].limit)
    }

    /// Moves `i` past one value of wire type `wire`; false when the bytes end inside it or the type is unknown.
    private static func skip(_ bytes: UnsafeRawBufferPointer, _ i: inout Int, wire: Int) -> Bool {
        switch wire {
        case 0: return WireDiagnosis.readVarint(bytes, &i) != nil
        case 1: i += 8; return i <= bytes.count
        case 5: i += 4; return i <= bytes.count
        case 2:
            guard let len = WireDiagnosis.readVarint(bytes, &i), len <= UInt64(bytes.count - i) else { return false }
            i += Int(len)
            return true
        default: return false
        }
    }
}
