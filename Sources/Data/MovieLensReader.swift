// Raw MovieLens releases: 100K (u.data tab-separated, u.item pipe-separated with 19 genre flags, Latin-1),
// 1M (ratings.dat / movies.dat, "::"-separated), and latest/25M-style (ratings.csv / movies.csv, quoted CSV).
// Titles like "Toy Story (1995)" become title "Toy Story" and year 1995.
import Foundation

enum MovieTitle {
    /// Moves a trailing " (YYYY)" of the title into `year` (titles without one are kept as they are).
    static func splitYear(_ item: Item) -> Item {
        var item = item
        let t = item.title.trimmedASCII
        item.title = t
        let u = Array(t.utf8)
        guard u.count >= 6, u[u.count - 1] == UInt8(ascii: ")"), u[u.count - 6] == UInt8(ascii: "("),
              let y = Int(String(decoding: u[(u.count - 5)..<(u.count - 1)], as: UTF8.self)), y > 0 else { return item }
        item.year = y
        item.title = String(decoding: u[0..<(u.count - 6)], as: UTF8.self).trimmedASCII
        return item
    }
}

enum MovieLensReader {
    enum Release: String { case ml100k = "MovieLens 100K", ml1m = "MovieLens 1M", latest = "MovieLens latest" }

    /// The genres of u.item's 19 flags, in file order (u.genre, when present, overrides them).
    static let genres100k = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                             "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                             "Romance", "Sci-Fi", "Thriller", "War", "Western"]

    static func detect(_ directory: String) -> Release? {
        let fm = FileManager.default
        let has = { (f: String) in fm.fileExists(atPath: (directory as NSString).appendingPathComponent(f)) }
        if has("u.data") { return .ml100k }
        if has("ratings.dat") { return .ml1m }
        if has("ratings.csv") { return .latest }
        return nil
    }

    static func stream<S: DatasetSink>(_ directory: String, release: Release, into sink: inout S,
                                       meter: ReadMeter?) throws {
        let path = { (f: String) in (directory as NSString).appendingPathComponent(f) }
        let has = { (f: String) in FileManager.default.fileExists(atPath: path(f)) }
        let file = { (f: String) in TextFile(path(f), meter: meter) }
        var items = ItemFileReader()
        switch release {
        case .ml100k:
            meter?.expect(["u.genre", "u.item", "u.data"].map(path))
            if has("u.item") {
                let genreNames = has("u.genre") ? try readGenres(file("u.genre")) : genres100k
                try items.read100k(file("u.item"), genres: genreNames, into: &sink)
            }
            try readRatings(file("u.data"), separator: [0x09], into: &sink)
        case .ml1m:
            meter?.expect(["movies.dat", "ratings.dat"].map(path))
            if has("movies.dat") { try items.read1m(file("movies.dat"), into: &sink) }
            try readRatings(file("ratings.dat"), separator: Array("::".utf8), into: &sink)
        case .latest:
            meter?.expect(["movies.csv", "ratings.csv"].map(path))
            if has("movies.csv") { try items.readCSV(file("movies.csv"), into: &sink) }
            try readRatingsCSV(file("ratings.csv"), into: &sink)
        }
    }

    /// user, item, rating, timestamp per line.
    static func readRatings<S: DatasetSink>(_ file: TextFile, separator: [UInt8], into sink: inout S) throws {
        try file.forEachLine { line, text in
            if text.isEmpty { return }
            let f = text.split(separator: separator)
            try file.expect(f, count: 4, line: line, lineLength: text.count, what: "user, item, rating, timestamp")
            try sink.interaction(user: try file.identifier(f[0], line: line, name: "user id"),
                                 item: try file.identifier(f[1], line: line, name: "item id"),
                                 rating: try file.float(f[2], line: line, name: "rating"),
                                 timestamp: try file.timestamp(f[3], line: line, name: "timestamp"))
        }
    }

    static func readRatingsCSV<S: DatasetSink>(_ file: TextFile, into sink: inout S) throws {
        try file.forEachLine { line, text in
            if text.isEmpty || line == 1 { return }  // header: userId,movieId,rating,timestamp
            let f = try text.splitCSV(file: file, line: line)
            try file.expect(f, count: 4, line: line, lineLength: text.count, what: "userId, movieId, rating, timestamp")
            try sink.interaction(user: try file.identifier(f[0], line: line, name: "userId"),
                                 item: try file.identifier(f[1], line: line, name: "movieId"),
                                 rating: try file.float(f[2], line: line, name: "rating"),
                                 timestamp: try file.timestamp(f[3], line: line, name: "timestamp"))
        }
    }

    static func readGenres(_ file: TextFile) throws -> [String] {
        var byIndex: [Int: String] = [:]
        try file.forEachLine { line, text in
            if text.isEmpty { return }
            let f = text.split(separator: [0x7C])
            try file.expect(f, count: 2, line: line, lineLength: text.count, what: "genre, index")
            guard let i = Int(f[1].text), i >= 0 else { throw file.malformed(line, f[1].column, "genre index is not a number") }
            byIndex[i] = f[0].text
        }
        return (0..<byIndex.count).map { byIndex[$0] ?? "genre\($0)" }
    }

    /// The movie files of the three releases; a movie id may come once.
    struct ItemFileReader {
        var seen = Set<String>()

        /// id|title|release date|video release date|IMDb URL|flag x N genres.
        mutating func read100k<S: DatasetSink>(_ file: TextFile, genres: [String], into sink: inout S) throws {
            try file.forEachLine { line, text in
                if text.isEmpty { return }
                let f = text.split(separator: [0x7C])
                try file.expect(f, count: 5 + genres.count, line: line, lineLength: text.count,
                                what: "id, title, dates, URL and \(genres.count) genre flags")
                let id = try file.identifier(f[0], line: line, name: "movie id")
                var item = MovieTitle.splitYear(Item(id: id, title: f[1].text))
                for (g, flag) in zip(genres, f[5...]) {
                    switch flag.text {
                    case "1": item.genres.append(g)
                    case "0": break
                    default: throw file.malformed(line, flag.column, "genre flag \(ClientText.quote(flag.text)) is not 0 or 1")
                    }
                }
                if item.year == 0, let y = f[2].text.split(separator: "-").last.flatMap({ Int($0) }) { item.year = y }
                try insert(item, file: file, line: line, column: f[0].column, into: &sink)
            }
        }

        /// MovieID::Title (Year)::Genre|Genre.
        mutating func read1m<S: DatasetSink>(_ file: TextFile, into sink: inout S) throws {
            try file.forEachLine { line, text in
                if text.isEmpty { return }
                let f = text.split(separator: Array("::".utf8))
                try file.expect(f, count: 3, line: line, lineLength: text.count, what: "id, title, genres")
                try movie(id: f[0], title: f[1], genres: f[2], file: file, line: line, into: &sink)
            }
        }

        /// movieId,title,genres with a header line; titles may be quoted.
        mutating func readCSV<S: DatasetSink>(_ file: TextFile, into sink: inout S) throws {
            try file.forEachLine { line, text in
                if text.isEmpty || line == 1 { return }
                let f = try text.splitCSV(file: file, line: line)
                try file.expect(f, count: 3, line: line, lineLength: text.count, what: "movieId, title, genres")
                try movie(id: f[0], title: f[1], genres: f[2], file: file, line: line, into: &sink)
            }
        }

        mutating func movie<S: DatasetSink>(id: Field, title: Field, genres: Field, file: TextFile, line: Int,
                                            into sink: inout S) throws {
            var item = MovieTitle.splitYear(Item(id: try file.identifier(id, line: line, name: "movie id"), title: title.text))
            let g = genres.text.trimmedASCII
            if g != "(no genres listed)" && !g.isEmpty { item.genres = g.split(separator: "|").map(String.init) }
            try insert(item, file: file, line: line, column: id.column, into: &sink)
        }

        mutating func insert<S: DatasetSink>(_ item: Item, file: TextFile, line: Int, column: Int,
                                             into sink: inout S) throws {
            guard seen.insert(item.id).inserted else {
                throw file.malformed(line, column, "movie id '\(item.id)' appears twice")
            }
            try sink.item(item)
        }
    }
}
