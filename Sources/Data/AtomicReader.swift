// RecBole atomic files: NAME.inter (required), NAME.item and NAME.user (optional), tab-separated, the first line a
// header of `name:type` fields (type token, token_seq, float or float_seq); token_seq values are space-separated.
// Interactions use user_id, item_id and, when present, rating and timestamp; items keep title, year, genres and
// description from the usual RecBole column names. Streamed: the item file, then the interactions.
import Foundation

/// The typed header of an atomic file.
struct AtomicHeader {
    enum FieldType: String { case token, token_seq, float, float_seq }
    let file: TextFile
    var names: [String] = []
    var types: [FieldType] = []

    func column(_ candidates: [String]) -> Int? {
        for c in candidates { if let i = names.firstIndex(of: c) { return i } }
        return nil
    }

    func require(_ name: String) throws -> Int {
        guard let i = names.firstIndex(of: name) else {
            throw file.malformed(1, 1, "header has no '\(name)' field")
        }
        return i
    }
}

enum AtomicTable {
    /// Reads `file`: `columns` gets the parsed header and picks the columns (its result, C, is handed to every
    /// row); `row` gets each data row's C, line number and fields (as many as the header has; `float` fields
    /// already checked to be numbers).
    static func read<C>(_ file: TextFile, columns: (AtomicHeader) throws -> C,
                        row: (_ columns: C, _ line: Int, _ fields: [Field]) throws -> Void) throws {
        var header: (AtomicHeader, C)?
        try file.forEachLine { number, line in
            if line.isEmpty { return }  // blank lines (e.g. a trailing one) are skipped
            let fields = line.split(separator: [0x09])
            guard let (h, c) = header else {
                var parsed = AtomicHeader(file: file)
                for f in fields {
                    let parts = f.text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                    guard parts.count == 2, !parts[0].isEmpty else {
                        throw file.malformed(number, f.column, "header field \(ClientText.quote(f.text)) is not name:type")
                    }
                    guard let t = AtomicHeader.FieldType(rawValue: String(parts[1])) else {
                        throw file.malformed(number, f.column + parts[0].utf8.count + 1,
                                             "unknown field type \(ClientText.quote(String(parts[1]))) (token, token_seq, float, float_seq)")
                    }
                    parsed.names.append(String(parts[0]))
                    parsed.types.append(t)
                }
                header = (parsed, try columns(parsed))
                return
            }
            try file.expect(fields, count: h.names.count, line: number, lineLength: line.count,
                            what: h.names.joined(separator: ", "))
            for (f, t) in zip(fields, h.types) where t == .float && !f.text.isEmpty {
                _ = try file.float(f, line: number, name: "float field")
            }
            try row(c, number, fields)
        }
        if header == nil { throw file.malformed(1, 1, "missing the name:type header line") }
    }
}

/// The columns of NAME.item that items are read from.
struct ItemColumns { var table: AtomicHeader; var id: Int; var title, year, genres, description: Int? }
/// The columns of NAME.inter.
struct InterColumns { var file: TextFile; var user, item: Int; var rating, time: Int? }

enum AtomicReader {
    /// The dataset name of a directory holding NAME.inter, or nil.
    static func detect(_ directory: String) -> String? {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let inters = files.filter { $0.hasSuffix(".inter") }.sorted()
        let base = (directory as NSString).lastPathComponent
        if inters.contains(base + ".inter") { return base }
        return inters.first.map { String($0.dropLast(".inter".count)) }
    }

    static func stream<S: DatasetSink>(_ directory: String, name: String, into sink: inout S, meter: ReadMeter?) throws {
        let path = { (ext: String) in (directory as NSString).appendingPathComponent("\(name).\(ext)") }
        let has = { (ext: String) in FileManager.default.fileExists(atPath: path(ext)) }
        meter?.expect(["item", "user", "inter"].map(path))

        if has("item") {
            var seen = Set<String>()
            try AtomicTable.read(TextFile(path("item"), meter: meter), columns: { table in
                ItemColumns(table: table, id: try table.require("item_id"),
                        title: table.column(["movie_title", "title", "name", "item_name"]),
                        year: table.column(["release_year", "year"]),
                        genres: table.column(["class", "genre", "genres", "categories"]),
                        description: table.column(["description", "desc", "overview"]))
            }, row: { (c: ItemColumns, line: Int, f: [Field]) in
                let file = c.table.file
                let itemId = try file.identifier(f[c.id], line: line, name: "item_id")
                guard seen.insert(itemId).inserted else {
                    throw file.malformed(line, f[c.id].column, "item_id '\(itemId)' appears twice")
                }
                var item = Item(id: itemId)
                if let title = c.title { item.title = f[title].text.trimmedASCII }
                if let year = c.year {
                    let t = f[year].text.trimmedASCII
                    // "1995", "1995.0"; anything else (empty, "nan", "1e999") leaves the year unknown.
                    item.year = Int(t) ?? Double(t).flatMap { abs($0) < 1e6 ? Int($0) : nil } ?? 0
                }
                if let genres = c.genres {
                    let isSeq = c.table.types[genres] == .token_seq
                    let t = f[genres].text
                    item.genres = isSeq ? t.split(separator: " ").map(String.init) : (t.isEmpty ? [] : [t])
                }
                if let description = c.description { item.description = f[description].text }
                if item.year == 0, !item.title.isEmpty { item = MovieTitle.splitYear(item) }
                try sink.item(item)
            })
        }

        if has("user") {
            // Read for well-formedness only: users enter the dataset through their interactions.
            try AtomicTable.read(TextFile(path("user"), meter: meter), columns: { try $0.require("user_id") },
                                 row: { _, _, _ in })
        }

        try AtomicTable.read(TextFile(path("inter"), meter: meter), columns: { table in
            InterColumns(file: table.file, user: try table.require("user_id"), item: try table.require("item_id"),
                    rating: table.column(["rating"]), time: table.column(["timestamp"]))
        }, row: { (c: InterColumns, line: Int, f: [Field]) in
            try sink.interaction(
                user: try c.file.identifier(f[c.user], line: line, name: "user_id"),
                item: try c.file.identifier(f[c.item], line: line, name: "item_id"),
                rating: try c.rating.map { try c.file.float(f[$0], line: line, name: "rating") } ?? 0,
                timestamp: try c.time.map { try c.file.timestamp(f[$0], line: line, name: "timestamp") } ?? 0)
        })
    }
}
