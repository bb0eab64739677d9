// Amazon Reviews 2023 JSONL: a reviews file CATEGORY.jsonl (user_id, parent_asin or asin, rating, timestamp in
// milliseconds) and its metadata meta_CATEGORY.jsonl (parent_asin, title, description, features, categories).
// The catalogue is the items that have reviews; metadata only supplies their text (the full meta file is far larger).
// Both files are streamed line by line: the full category files run to gigabytes.
import Foundation

enum AmazonReader {
    /// (reviews file, meta file or nil) in a directory, or nil when it holds no reviews JSONL.
    static func detect(_ directory: String) -> (reviews: String, meta: String?)? {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        guard let reviews = files.first(where: { $0.hasSuffix(".jsonl") && !$0.hasPrefix("meta_") }) else { return nil }
        let meta = "meta_" + reviews
        return (reviews, files.contains(meta) ? meta : files.first(where: { $0.hasPrefix("meta_") && $0.hasSuffix(".jsonl") }))
    }

    /// Streams the reviews, then the metadata of the reviewed items (the full meta file is far larger than the
    /// catalogue, so items nobody reviewed are skipped).
    static func stream<S: DatasetSink>(_ directory: String, reviews: String, meta: String?, into sink: inout S,
                                       meter: ReadMeter?) throws {
        let path = { (f: String) in (directory as NSString).appendingPathComponent(f) }
        meter?.expect([path(reviews)] + (meta.map { [path($0)] } ?? []))
        var reviewed = Set<String>()
        let file = path(reviews)
        try forEachObject(file, meter: meter) { line, o in
            guard let user = o["user_id"]?.string else { throw malformed(file, line, "review has no user_id string") }
            if let problem = Identifier.problem(user) {
                throw malformed(file, line, "user_id \(ClientText.quote(user)): \(problem)")
            }
            guard let item = (o["parent_asin"]?.string ?? o["asin"]?.string) else {
                throw malformed(file, line, "review has no parent_asin or asin string")
            }
            if let problem = Identifier.problem(item) {
                throw malformed(file, line, "parent_asin \(ClientText.quote(item)): \(problem)")
            }
            guard let rating = o["rating"]?.number, Float(rating).isFinite else {
                throw malformed(file, line, "review has no finite numeric rating")
            }
            guard let t = o["timestamp"]?.number, abs(t) < 9e18 else {
                throw malformed(file, line, "review has no numeric timestamp within +-9e18")
            }
            // 2023 timestamps are milliseconds; older dumps used seconds.
            let seconds = t > 1e11 ? Int64(t / 1000) : Int64(t)
            reviewed.insert(item)
            try sink.interaction(user: user, item: item, rating: Float(rating), timestamp: seconds)
        }
        if let meta {
            let file = path(meta)
            try forEachObject(file, meter: meter) { line, o in
                guard let id = (o["parent_asin"]?.string ?? o["asin"]?.string) else {
                    throw malformed(file, line, "metadata has no parent_asin or asin string")
                }
                guard reviewed.contains(id) else { return }
                var description = (o["description"]?.strings ?? []).joined(separator: " ")
                if description.isEmpty { description = (o["features"]?.strings ?? []).joined(separator: " ") }
                try sink.item(Item(id: id, title: o["title"]?.string ?? "", genres: o["categories"]?.strings ?? [],
                                   description: description))
            }
        }
    }

    /// The dataset's name: the reviews file without its extension.
    static func name(reviews: String) -> String { (reviews as NSString).deletingPathExtension }

    static func malformed(_ file: String, _ line: Int, _ message: String) -> DataError {
        .malformed(file: file, line: line, column: 1, message: message)
    }

    /// Streams the file, one JSON object per non-blank line.
    static func forEachObject(_ file: String, meter: ReadMeter? = nil, _ body: (Int, JSONValue) throws -> Void) throws {
        meter?.file = file
        try LineStream.forEachLine(file, meter: meter) { line, bytes in
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return }
            let v: JSONValue
            do { v = try JSONLineParser.parse(bytes) } catch let e as JSONLineParser.Failure {
                throw DataError.malformed(file: file, line: line, column: e.column, message: e.message)
            }
            guard case .object = v else { throw malformed(file, line, "expected a JSON object per line") }
            try body(line, v)
        }
    }
}
