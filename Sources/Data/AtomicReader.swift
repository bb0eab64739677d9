// RecBole atomic files: NAME.inter (required), NAME.item and NAME.user (optional), tab-separated, the first line a
// header of `name:type` fields (type token, token_seq, float or float_seq); token_seq values are space-separated.
// Interactions use user_id, item_id and, when present, rating and timestamp; items keep title, year, genres and
// description from the usual RecBole column names.
import Foundation

/// A parsed atomic table: typed header, then rows of fields.
struct AtomicTable {
    enum FieldType: String { case token, token_seq, float, float_seq }
    let file: TextFile
    var names: [String] = []
    var types: [FieldType] = []
    /// (line number, fields) per data row.
    var rows: [(line: Int, fields: [Field])] = []

    init(_ file: TextFile) throws {
        self.file = file
        var sawHeader = false
        try file.forEachLine { number, range in
            if range.isEmpty { return }  // blank lines (e.g. a trailing one) are skipped
            let fields = file.split(range, separator: [0x09])
            if !sawHeader {
                sawHeader = true
                for f in fields {
                    let parts = f.text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                    guard parts.count == 2, !parts[0].isEmpty else {
                        throw file.malformed(number, f.column, "header field '\(f.text)' is not name:type")
                    }
                    guard let t = FieldType(rawValue: String(parts[1])) else {
                        throw file.malformed(number, f.column + parts[0].utf8.count + 1,
                                             "unknown field type '\(parts[1])' (token, token_seq, float, float_seq)")
                    }
                    names.append(String(parts[0]))
                    types.append(t)
                }
                return
            }
            try file.expect(fields, count: names.count, line: number, lineLength: range.count,
                            what: names.joined(separator: ", "))
            for (f, t) in zip(fields, types) where t == .float && !f.text.isEmpty {
                _ = try file.float(f, line: number, name: "float field")
            }
            rows.append((number, fields))
        }
        if !sawHeader { throw file.malformed(1, 1, "missing the name:type header line") }
    }

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

enum AtomicReader {
    /// The dataset name of a directory holding NAME.inter, or nil.
    static func detect(_ directory: String) -> String? {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let inters = files.filter { $0.hasSuffix(".inter") }.sorted()
        let base = (directory as NSString).lastPathComponent
        if inters.contains(base + ".inter") { return base }
        return inters.first.map { String($0.dropLast(".inter".count)) }
    }

    static func load(_ directory: String, name: String) throws -> Dataset {
        let path = { (ext: String) in (directory as NSString).appendingPathComponent("\(name).\(ext)") }
        var builder = DatasetBuilder()

        if FileManager.default.fileExists(atPath: path("item")) {
            let table = try AtomicTable(TextFile.read(path("item")))
            let id = try table.require("item_id")
            let title = table.column(["movie_title", "title", "name", "item_name"])
            let year = table.column(["release_year", "year"])
            let genres = table.column(["class", "genre", "genres", "categories"])
            let description = table.column(["description", "desc", "overview"])
            for (line, f) in table.rows {
                let itemId = try table.file.nonEmpty(f[id], line: line, name: "item_id")
                if builder.items[itemId] != nil {
                    throw table.file.malformed(line, f[id].column, "item_id '\(itemId)' appears twice")
                }
                var item = Item(id: itemId)
                if let title { item.title = f[title].text.trimmedASCII }
                if let year {
                    let t = f[year].text.trimmedASCII
                    // "1995", "1995.0"; anything else (empty, "nan", "1e999") leaves the year unknown.
                    item.year = Int(t) ?? Double(t).flatMap { abs($0) < 1e6 ? Int($0) : nil } ?? 0
                }
                if let genres {
                    let isSeq = table.types[genres] == .token_seq
                    let t = f[genres].text
                    item.genres = isSeq ? t.split(separator: " ").map(String.init) : (t.isEmpty ? [] : [t])
                }
                if let description { item.description = f[description].text }
                if item.year == 0, !item.title.isEmpty { item = MovieTitle.splitYear(item) }
                builder.items[itemId] = item
            }
        }

        if FileManager.default.fileExists(atPath: path("user")) {
            // Parsed for well-formedness only: users enter the dataset through their interactions.
            let table = try AtomicTable(TextFile.read(path("user")))
            _ = try table.require("user_id")
        }

        let table = try AtomicTable(TextFile.read(path("inter")))
        let user = try table.require("user_id"), item = try table.require("item_id")
        let rating = table.column(["rating"]), time = table.column(["timestamp"])
        builder.rows.reserveCapacity(table.rows.count)
        for (line, f) in table.rows {
            builder.add(user: try table.file.nonEmpty(f[user], line: line, name: "user_id"),
                        item: try table.file.nonEmpty(f[item], line: line, name: "item_id"),
                        rating: try rating.map { try table.file.float(f[$0], line: line, name: "rating") } ?? 0,
                        timestamp: try time.map { try table.file.timestamp(f[$0], line: line, name: "timestamp") } ?? 0)
        }
        return builder.build(name: name, keepUnratedItems: true)
    }
}
