// Amazon Reviews 2023 JSONL: a reviews file CATEGORY.jsonl (user_id, parent_asin or asin, rating, timestamp in
// milliseconds) and its metadata meta_CATEGORY.jsonl (parent_asin, title, description, features, categories).
// The catalogue is the items that have reviews; metadata only supplies their text (the full meta file is far larger).
import Foundation

enum AmazonReader {
    /// (reviews file, meta file or nil) in a directory, or nil when it holds no reviews JSONL.
    static func detect(_ directory: String) -> (reviews: String, meta: String?)? {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        guard let reviews = files.first(where: { $0.hasSuffix(".jsonl") && !$0.hasPrefix("meta_") }) else { return nil }
        let meta = "meta_" + reviews
        return (reviews, files.contains(meta) ? meta : files.first(where: { $0.hasPrefix("meta_") && $0.hasSuffix(".jsonl") }))
    }

    static func load(_ directory: String, reviews: String, meta: String?) throws -> Dataset {
        let path = { (f: String) in (directory as NSString).appendingPathComponent(f) }
        var builder = DatasetBuilder()
        let file = try TextFile.read(path(reviews))
        try forEachObject(file) { line, o in
            guard let user = o["user_id"]?.string, !user.isEmpty else {
                throw file.malformed(line, 1, "review has no user_id string")
            }
            guard let item = (o["parent_asin"]?.string ?? o["asin"]?.string), !item.isEmpty else {
                throw file.malformed(line, 1, "review has no parent_asin or asin string")
            }
            guard let rating = o["rating"]?.number else { throw file.malformed(line, 1, "review has no numeric rating") }
            guard let t = o["timestamp"]?.number else { throw file.malformed(line, 1, "review has no numeric timestamp") }
            // 2023 timestamps are milliseconds; older dumps used seconds.
            let seconds = t > 1e11 ? Int64(t / 1000) : Int64(t)
            builder.add(user: user, item: item, rating: Float(rating), timestamp: seconds)
        }
        if let meta {
            let wanted = Set(builder.rows.map(\.item))
            let file = try TextFile.read(path(meta))
            try forEachObject(file) { line, o in
                guard let id = (o["parent_asin"]?.string ?? o["asin"]?.string) else {
                    throw file.malformed(line, 1, "metadata has no parent_asin or asin string")
                }
                guard wanted.contains(id) else { return }
                var description = (o["description"]?.strings ?? []).joined(separator: " ")
                if description.isEmpty { description = (o["features"]?.strings ?? []).joined(separator: " ") }
                builder.items[id] = Item(id: id, title: o["title"]?.string ?? "", genres: o["categories"]?.strings ?? [],
                                         description: description)
            }
        }
        let name = (reviews as NSString).deletingPathExtension
        return builder.build(name: name, keepUnratedItems: false)
    }

    static func forEachObject(_ file: TextFile, _ body: (Int, JSONValue) throws -> Void) throws {
        try file.forEachLine { line, range in
            if range.allSatisfy({ file.bytes[$0] == 0x20 || file.bytes[$0] == 0x09 }) { return }
            let v: JSONValue
            do { v = try JSONLineParser.parse(file.bytes[range]) } catch let e as JSONLineParser.Failure {
                throw file.malformed(line, e.column, e.message)
            }
            guard case .object = v else { throw file.malformed(line, 1, "expected a JSON object per line") }
            try body(line, v)
        }
    }
}
