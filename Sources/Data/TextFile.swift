// Text files read line by line (streamed: memory holds one line, so multi-gigabyte files import in constant
// memory). Each line is UTF-8 (a line that is not valid UTF-8, like MovieLens' Latin-1 u.item, is read as Latin-1
// and re-encoded) and splits into fields that remember their 1-based column, so readers can name file:line:column.
import Foundation

/// One field of a line: its text and the 1-based byte column where it starts.
struct Field {
    var text: String
    var column: Int
}

/// One line's bytes as UTF-8, without "\n" or "\r\n".
struct TextLine {
    let bytes: [UInt8]

    /// `raw` unchanged when it is valid UTF-8, else read as Latin-1 and re-encoded as UTF-8.
    init(raw: ArraySlice<UInt8>) {
        if raw.allSatisfy({ $0 < 0x80 }) || String(validating: raw, as: UTF8.self) != nil {
            bytes = Array(raw)
            return
        }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count + raw.count / 8)
        for b in raw {
            if b < 0x80 { out.append(b) } else { out.append(0xC0 | (b >> 6)); out.append(0x80 | (b & 0x3F)) }
        }
        bytes = out
    }

    var isEmpty: Bool { bytes.isEmpty }
    var count: Int { bytes.count }
    var text: String { String(decoding: bytes, as: UTF8.self) }

    func string(_ range: Range<Int>) -> String { String(decoding: bytes[range], as: UTF8.self) }

    /// Splits the line at every occurrence of `separator` (one or more bytes, e.g. "\t" or "::").
    func split(separator: [UInt8]) -> [Field] {
        var fields: [Field] = []
        var fieldStart = 0, i = 0
        let n = bytes.count, s0 = separator[0], m = separator.count
        while i < n {
            if bytes[i] == s0 && i + m <= n && (m == 1 || Array(bytes[i..<(i + m)]) == separator) {
                fields.append(Field(text: string(fieldStart..<i), column: fieldStart + 1))
                i += m
                fieldStart = i
            } else {
                i += 1
            }
        }
        fields.append(Field(text: string(fieldStart..<n), column: fieldStart + 1))
        return fields
    }

    /// Splits a CSV line (RFC 4180: fields may be quoted, "" inside quotes is a quote). A quoted field must end
    /// with a quote followed by a comma or the end of the line; anything else is malformed.
    func splitCSV(file: TextFile, line: Int) throws -> [Field] {
        var fields: [Field] = []
        var i = 0
        let end = bytes.count
        while true {
            let column = i + 1
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
                if !closed { throw file.malformed(line, column, "quoted field is not closed before the end of the line") }
                if i < end && bytes[i] != 0x2C { throw file.malformed(line, i + 1, "expected a comma after the closing quote") }
                fields.append(Field(text: String(decoding: text, as: UTF8.self), column: column))
            } else {
                var j = i
                while j < end && bytes[j] != 0x2C { j += 1 }
                fields.append(Field(text: string(i..<j), column: column))
                i = j
            }
            if i >= end { return fields }
            i += 1  // the comma
            if i == end { fields.append(Field(text: "", column: i + 1)); return fields }
        }
    }
}

/// A text file of a dataset, named in error messages by the path as given.
struct TextFile {
    let path: String
    /// Counts the bytes read, for a progress display (nil: nobody watches).
    let meter: ReadMeter?

    init(_ path: String, meter: ReadMeter? = nil) {
        self.path = path
        self.meter = meter
    }

    /// Calls `body` with each line's 1-based number and text. Blank lines are passed too; readers decide whether
    /// they are allowed.
    func forEachLine(_ body: (_ number: Int, _ line: TextLine) throws -> Void) throws {
        meter?.file = path
        try LineStream.forEachLine(path, meter: meter) { number, raw in try body(number, TextLine(raw: raw)) }
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

    /// A user or item id (Identifier's rule), trimmed of ASCII blanks.
    func identifier(_ f: Field, line: Int, name: String) throws -> String {
        let t = f.text.trimmedASCII
        if let problem = Identifier.problem(t) { throw malformed(line, f.column, "\(name) \(ClientText.quote(t)): \(problem)") }
        return t
    }

    func float(_ f: Field, line: Int, name: String) throws -> Float {
        let t = f.text.trimmedASCII
        guard let v = Float(t), v.isFinite else {
            throw malformed(line, f.column, "\(name) \(ClientText.quote(t)) is not a number")
        }
        return v
    }

    /// A timestamp in whole seconds; decimals (RecBole writes float timestamps) are truncated.
    func timestamp(_ f: Field, line: Int, name: String) throws -> Int64 {
        let t = f.text.trimmedASCII
        if let v = Int64(t) { return v }
        guard let d = Double(t), d.isFinite, abs(d) < 9e18 else {
            throw malformed(line, f.column, "\(name) \(ClientText.quote(t)) is not a timestamp")
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

/// How far the readers are through a dataset's files, for a progress bar: bytes read of the bytes to read.
/// Updated by the reading thread; read by the same thread (a sink's callbacks) or after the read ends.
public final class ReadMeter: @unchecked Sendable {
    /// Sum of the sizes of the files the reader will read (known once reading starts).
    public internal(set) var totalBytes: Int64 = 0
    public internal(set) var bytesRead: Int64 = 0
    /// The file being read now.
    public internal(set) var file = ""
    public init() {}

    /// Adds the sizes of `paths` (those that exist) to the total.
    func expect(_ paths: [String]) {
        for p in paths {
            if let size = (try? FileManager.default.attributesOfItem(atPath: p))?[.size] as? NSNumber {
                totalBytes += size.int64Value
            }
        }
    }
}

/// Line-by-line reading of a file too large to hold (Amazon's JSONL runs to gigabytes), through C's getline.
enum LineStream {
    /// Calls `body` with each 1-based line number and the line's bytes (without "\n" or "\r\n").
    static func forEachLine(_ path: String, meter: ReadMeter? = nil,
                            _ body: (Int, ArraySlice<UInt8>) throws -> Void) throws {
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
            meter?.bytesRead += Int64(n)
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
