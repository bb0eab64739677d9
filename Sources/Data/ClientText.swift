// The one way a string that came from outside (from a client: a method name, an item id, a model name, a metadata
// value; or from a file being read: a dataset field) is put into an error, a status message or a log line: control
// characters escaped so it cannot forge lines or terminal sequences, and cut to a bounded length so it cannot grow a
// status or the log without bound. Idempotent: sanitising an already sanitised string returns it unchanged
// (backslashes are not escaped, so no escape is ever doubled).
public enum ClientText {
    /// Longest client string quoted inside a message (an item id, a method name), in UTF-8 bytes.
    public static let quoteLimit = 128
    /// Longest status message (after escaping), in UTF-8 bytes.
    public static let messageLimit = 1024
    /// Longest log line part (a message or one metadata value), in UTF-8 bytes.
    public static let logLimit = 1024

    /// `text` with C0/C1 control characters, DEL, and the Unicode line/paragraph separators and bidirectional
    /// overrides written as `\n`, `\r`, `\t` or `\u{XX}`, cut at a character boundary so the result (including the
    /// `...(N more bytes)` marker) is at most `limit` UTF-8 bytes.
    public static func clip(_ text: String, limit: Int = messageLimit) -> String {
        // Fast path: short and printable.
        if text.utf8.count <= limit && !text.unicodeScalars.contains(where: needsEscape) { return text }
        let scalars = text.unicodeScalars
        var total = 0
        for s in scalars { total += escapedCount(s) }
        // Room kept for the marker when the text does not fit.
        let budget = total <= limit ? total : max(0, limit - 24)
        var out = ""
        out.reserveCapacity(budget + 24)
        var used = 0
        for s in scalars {
            let n = escapedCount(s)
            if used + n > budget { break }
            if needsEscape(s) { out += escape(s) } else { out.unicodeScalars.append(s) }
            used += n
        }
        if used < total { out += "...(\(total - used) more bytes)" }
        return out
    }

    /// A client string quoted for a message: `'value'`, sanitised and cut at `quoteLimit`.
    public static func quote(_ text: String, limit: Int = quoteLimit) -> String {
        "'" + clip(text, limit: limit) + "'"
    }

    private static func escapedCount(_ s: Unicode.Scalar) -> Int {
        needsEscape(s) ? escape(s).utf8.count : UTF8.width(s)
    }

    static func needsEscape(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        return v < 0x20 || (v >= 0x7f && v < 0xa0) || v == 0x2028 || v == 0x2029
            || (v >= 0x202a && v <= 0x202e) || (v >= 0x2066 && v <= 0x2069) || v == 0xfeff
    }

    private static func escape(_ s: Unicode.Scalar) -> String {
        switch s {
        case "\n": return "\\n"
        case "\r": return "\\r"
        case "\t": return "\\t"
        default: return "\\u{" + String(s.value, radix: 16) + "}"
        }
    }
}
