// The bearer-token file of `r2ec serve --auth-token-file`: one token per line, `admin TOKEN` for a token that may
// also call the Admin service, `#` comments and blank lines ignored. Lines may end in LF or CRLF (a file written on
// Windows parses the same); surrounding spaces and tabs are ignored. A token is RFC 6750's b64token (letters,
// digits and - . _ ~ + / followed by any '='), the only form an `authorization: Bearer` header can carry, so a
// token that could never authenticate is refused at start-up instead of silently never matching. Errors name the
// file and the line as an editor numbers it.
import Foundation

public enum TokenFile {
    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    public struct Tokens: Equatable {
        public var tokens: Set<String> = []
        public var admin: Set<String> = []
    }

    public static func read(_ path: String) throws -> Tokens {
        guard let bytes = FileManager.default.contents(atPath: path) else { throw Error(description: "cannot read \(path)") }
        guard let text = String(bytes: bytes, encoding: .utf8) else { throw Error(description: "\(path) is not UTF-8 text") }
        return try parse(text, path: path)
    }

    public static func parse(_ text: String, path: String) throws -> Tokens {
        var result = Tokens()
        // Split on the unicode scalars: as Characters, "\r\n" is one grapheme and would not equal "\n".
        let lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
        for (n, scalars) in lines.enumerated() {
            var line = String(String.UnicodeScalarView(scalars))
            if line.hasSuffix("\r") { line.removeLast() }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if fields.isEmpty || fields[0].hasPrefix("#") { continue }
            let at = "\(path):\(n + 1)"
            let token: String
            switch (fields.count, fields.first) {
            case (1, _): token = fields[0]
            case (2, "admin"): token = fields[1]
            default: throw Error(description: "\(at): expected 'TOKEN' or 'admin TOKEN', got \(fields.count) fields")
            }
            guard isBearerToken(token) else {
                throw Error(description: "\(at): a token may hold only letters, digits and - . _ ~ + / (then '=' " +
                            "padding), as an authorization: Bearer header carries it")
            }
            if fields.count == 2 { result.admin.insert(token) } else { result.tokens.insert(token) }
        }
        guard !result.tokens.isEmpty || !result.admin.isEmpty else { throw Error(description: "\(path) holds no token") }
        return result
    }

    /// RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
    static func isBearerToken(_ token: String) -> Bool {
        let body = token.utf8.prefix { $0 != UInt8(ascii: "=") }
        guard !body.isEmpty, token.utf8.dropFirst(body.count).allSatisfy({ $0 == UInt8(ascii: "=") }) else { return false }
        return body.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || "-._~+/".utf8.contains(c)
        }
    }
}
