// What a user or item id may be, wherever it enters: a dataset file read by `train`, `eval` or `store import`, or an
// RPC (RecordEvents, UpsertItems, Recommend(user_id), ...). One rule, so every id a store holds can be named in a
// call, and a store's change notifications (PostgreSQL NOTIFY payloads, under 8,000 bytes) always fit.

public enum Identifier {
    /// Most UTF-8 bytes of an id.
    public static let maxBytes = 128

    /// Why `value` is not a valid id ("empty", "200 bytes, at most 128", "control character U+9 at character 3"),
    /// or nil when it is one.
    public static func problem(_ value: String) -> String? {
        if value.isEmpty { return "empty" }
        let n = value.utf8.count
        if n > maxBytes { return "\(n) bytes, at most \(maxBytes)" }
        return controlProblem(value)
    }

    /// Why `value` holds a C0/C1 control character (tabs and line breaks included unless `allowLineBreaks`) or
    /// U+FFFD (what invalid UTF-8 decodes to), or nil when it holds none.
    public static func controlProblem(_ value: String, allowLineBreaks: Bool = false) -> String? {
        for (i, u) in value.unicodeScalars.enumerated() {
            let v = u.value
            if allowLineBreaks && (v == 0x09 || v == 0x0A || v == 0x0D) { continue }
            if v < 0x20 || (v >= 0x7F && v < 0xA0) {
                return "control character U+\(String(v, radix: 16, uppercase: true)) at character \(i)"
            }
            if v == 0xFFFD { return "not valid UTF-8 (U+FFFD at character \(i))" }
        }
        return nil
    }
}
