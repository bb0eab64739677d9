// A whole text file in memory as UTF-8 bytes (Latin-1 files, like MovieLens' u.item, are transcoded), walked line by
// line and split into fields that remember their 1-based column, so that readers can name file:line:column.
import Foundation

/// One field of a line: its text and the 1-based byte column where it starts.
struct Field {
    var text: String
    var column: Int
}

struct TextFile {
    /// The path as given, used in error messages.
    let path: String
    let bytes: [UInt8]

    init(path: String, bytes: [UInt8]) {
        self.path = path
        self.bytes = TextFile.utf8(bytes)
    }

    static func read(_ path: String) throws -> TextFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError.unreadable(file: path, message: "cannot read the file")
        }
        return TextFile(path: path, bytes: [UInt8](data))
    }

    /// The bytes unchanged when they are valid UTF-8, else read as Latin-1 and re-encoded as UTF-8.
    static func utf8(_ bytes: [UInt8]) -> [UInt8] {
        if String(validating: bytes, as: UTF8.self) != nil { return bytes }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + bytes.count / 16)
        for b in bytes {
            if b < 0x80 { out.append(b) } else { out.append(0xC0 | (b >> 6)); out.append(0x80 | (b & 0x3F)) }
        }
        return out
    }

    /// Calls `body` with each line's 1-based number and byte range (without "\n" or "\r\n").
    /// Blank lines are passed too; readers decide whether they are allowed.
    func forEachLine(_ body: (_ number: Int, _ range: Range<Int>) throws -> Void) rethrows {
        var start = 0, number = 1
        let n = bytes.count
        while start < n {
            var end = start
            while end < n && bytes[end] != 0x0A { end += 1 }
            var stop = end
            if stop > start && bytes[stop - 1] == 0x0D { stop -= 1 }
            try body(number, start..<stop)
            number += 1
            start = end + 1
        }
    }

    func string(_ range: Range<Int>) -> String {
        String(decoding: bytes[range], as: UTF8.self)
    }

    /// Splits a line at every occurrence of `separator` (one or more bytes, e.g. "\t" or "::").
    func split(_ range: Range<Int>, separator: [UInt8]) -> [Field] {
        var fields: [Field] = []
        var fieldStart = range.lowerBound, i = range.lowerBound
        let s0 = separator[0], m = separator.count
        while i < range.upperBound {
            if bytes[i] == s0 && i + m <= range.upperBound && (m == 1 || Array(bytes[i..<(i + m)]) == separator) {
                fields.append(Field(text: string(fieldStart..<i), column: fieldStart - range.lowerBound + 1))
                i += m
                fieldStart = i
            } else {
                i += 1
            }
        }
        fields.append(Field(text: string(fieldStart..<range.upperBound), column: fieldStart - range.lowerBound + 1))
        return fields
    }

    /// Splits a CSV line (RFC 4180: fields may be quoted, "" inside quotes is a quote). A quoted field must end
    /// with a quote followed by a comma or the end of the line; anything else is malformed.
    func splitCSV(_ range: Range<Int>, line: Int) throws -> [Field] {
        var fields: [Field] = []
        var i = range.lowerBound
        let end = range.upperBound
        while true {
            let column = i - range.lowerBound + 1
            if i < end && bytes[i] == 0x22 {  // quoted
                var text: [UInt8] = []
                i += 1
                var closed = false
                while i < end {
                    if bytes[i] == 0x22 {
                        if i + 1 < end && bytes[i + 1] == 0x22 { text.append(0x22); i += 2; continue }
                        closed = true; i += 1; break
                    }
                    text.append(bytes[i]); i += 1
                }
                if !closed {
                    throw DataError.malformed(file: path, line: line, column: column,
                                              message: "quoted field is not closed before the end of the line")
                }
                if i < end && bytes[i] != 0x2C {
                    throw DataError.malformed(file: path, line: line, column: i - range.lowerBound + 1,
                                              message: "expected a comma after the closing quote")
                }
                fields.append(Field(text: String(decoding: text, as: UTF8.self), column: column))
            } else {
                var j = i
                while j < end && bytes[j] != 0x2C { j += 1 }
                fields.append(Field(text: string(i..<j), column: column))
                i = j
            }
            if i >= end { return fields }
            i += 1  // the comma
            if i == end { fields.append(Field(text: "", column: i - range.lowerBound + 1)); return fields }
        }
    }

    // MARK: typed field access with located errors

    func malformed(_ line: Int, _ column: Int, _ message: String) -> DataError {
        .malformed(file: path, line: line, column: column, message: message)
    }

    /// The fields of a line, requiring exactly `count` of them (the error points past the last field present).
    func expect(_ fields: [Field], count: Int, line: Int, lineLength: Int, what: String) throws {
        guard fields.count == count else {
            let column = fields.count > count ? fields[count].column : lineLength + 1
            throw malformed(line, column, "expected \(count) fields (\(what)), found \(fields.count)")
        }
    }

    func nonEmpty(_ f: Field, line: Int, name: String) throws -> String {
        let t = f.text.trimmedASCII
        guard !t.isEmpty else { throw malformed(line, f.column, "\(name) is empty") }
        return t
    }

    func float(_ f: Field, line: Int, name: String) throws -> Float {
        let t = f.text.trimmedASCII
        guard let v = Float(t), v.isFinite else {
            throw malformed(line, f.column, "\(name) '\(t)' is not a number")
        }
        return v
    }

    /// A timestamp in whole seconds; decimals (RecBole writes float timestamps) are truncated.
    func timestamp(_ f: Field, line: Int, name: String) throws -> Int64 {
        let t = f.text.trimmedASCII
        if let v = Int64(t) { return v }
        guard let d = Double(t), d.isFinite, abs(d) < 9e18 else {
            throw malformed(line, f.column, "\(name) '\(t)' is not a timestamp")
        }
        return Int64(d)
    }
}

extension String {
    /// Without leading and trailing spaces and tabs. Fast path for the usual unpadded field (Foundation's
    /// trimmingCharacters cost more than the rest of parsing ml-100k together).
    var trimmedASCII: String {
        let u = utf8
        guard let f = u.first, let l = u.last else { return self }
        let isSpace = { (b: UInt8) in b == 0x20 || b == 0x09 }
        if !isSpace(f) && !isSpace(l) { return self }
        var s = u.startIndex, e = u.endIndex
        while s < e && isSpace(u[s]) { s = u.index(after: s) }
        while e > s && isSpace(u[u.index(before: e)]) { e = u.index(before: e) }
        return String(self[s..<e])
    }
}

/// Line-by-line reading of a file too large to hold (Amazon's JSONL runs to gigabytes), through C's getline.
enum LineStream {
    /// Calls `body` with each 1-based line number and the line's bytes (without "\n" or "\r\n").
    static func forEachLine(_ path: String, _ body: (Int, ArraySlice<UInt8>) throws -> Void) throws {
        guard let f = fopen(path, "rb") else { throw DataError.unreadable(file: path, message: "cannot open the file") }
        defer { fclose(f) }
        var buffer: UnsafeMutablePointer<CChar>? = nil
        var capacity = 0
        defer { free(buffer) }
        var number = 0
        var bytes: [UInt8] = []
        while true {
            let n = getline(&buffer, &capacity, f)
            if n < 0 { break }
            number += 1
            var length = n
            buffer!.withMemoryRebound(to: UInt8.self, capacity: n) { p in
                if length > 0 && p[length - 1] == 0x0A { length -= 1 }
                if length > 0 && p[length - 1] == 0x0D { length -= 1 }
                bytes.removeAll(keepingCapacity: true)
                bytes.append(contentsOf: UnsafeBufferPointer(start: p, count: length))
            }
            try body(number, bytes[...])
        }
        if ferror(f) != 0 { throw DataError.unreadable(file: path, message: "read error after line \(number)") }
    }
}
