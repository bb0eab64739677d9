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

    static func load(_ directory: String, release: Release) throws -> Dataset {
        let path = { (f: String) in (directory as NSString).appendingPathComponent(f) }
        let name = (directory as NSString).lastPathComponent
        var builder = DatasetBuilder()
        switch release {
        case .ml100k:
            if FileManager.default.fileExists(atPath: path("u.item")) {
                var genreNames = genres100k
                if FileManager.default.fileExists(atPath: path("u.genre")) {
                    genreNames = try readGenres(TextFile.read(path("u.genre")))
                }
                try readItems100k(TextFile.read(path("u.item")), genres: genreNames, into: &builder)
            }
            try readRatings(TextFile.read(path("u.data")), separator: [0x09], into: &builder)
        case .ml1m:
            if FileManager.default.fileExists(atPath: path("movies.dat")) {
                try readMovies1m(TextFile.read(path("movies.dat")), into: &builder)
            }
            try readRatings(TextFile.read(path("ratings.dat")), separator: Array("::".utf8), into: &builder)
        case .latest:
            if FileManager.default.fileExists(atPath: path("movies.csv")) {
                try readMoviesCSV(TextFile.read(path("movies.csv")), into: &builder)
            }
            try readRatingsCSV(TextFile.read(path("ratings.csv")), into: &builder)
        }
        return builder.build(name: name, keepUnratedItems: true)
    }

    /// user, item, rating, timestamp per line.
    static func readRatings(_ file: TextFile, separator: [UInt8], into builder: inout DatasetBuilder) throws {
        try file.forEachLine { line, range in
            if range.isEmpty { return }
            let f = file.split(range, separator: separator)
            try file.expect(f, count: 4, line: line, lineLength: range.count, what: "user, item, rating, timestamp")
            builder.add(user: try file.nonEmpty(f[0], line: line, name: "user id"),
                        item: try file.nonEmpty(f[1], line: line, name: "item id"),
                        rating: try file.float(f[2], line: line, name: "rating"),
                        timestamp: try file.timestamp(f[3], line: line, name: "timestamp"))
        }
    }

    static func readRatingsCSV(_ file: TextFile, into builder: inout DatasetBuilder) throws {
        try file.forEachLine { line, range in
            if range.isEmpty || line == 1 { return }  // header: userId,movieId,rating,timestamp
            let f = try file.splitCSV(range, line: line)
            try file.expect(f, count: 4, line: line, lineLength: range.count, what: "userId, movieId, rating, timestamp")
            builder.add(user: try file.nonEmpty(f[0], line: line, name: "userId"),
                        item: try file.nonEmpty(f[1], line: line, name: "movieId"),
                        rating: try file.float(f[2], line: line, name: "rating"),
                        timestamp: try file.timestamp(f[3], line: line, name: "timestamp"))
        }
    }

    static func readGenres(_ file: TextFile) throws -> [String] {
        var byIndex: [Int: String] = [:]
        try file.forEachLine { line, range in
            if range.isEmpty { return }
            let f = file.split(range, separator: [0x7C])
            try file.expect(f, count: 2, line: line, lineLength: range.count, what: "genre, index")
            guard let i = Int(f[1].text), i >= 0 else { throw file.malformed(line, f[1].column, "genre index is not a number") }
            byIndex[i] = f[0].text
        }
        return (0..<byIndex.count).map { byIndex[$0] ?? "genre\($0)" }
    }

    /// id|title|release date|video release date|IMDb URL|flag x N genres.
    static func readItems100k(_ file: TextFile, genres: [String], into builder: inout DatasetBuilder) throws {
        try file.forEachLine { line, range in
            if range.isEmpty { return }
            let f = file.split(range, separator: [0x7C])
            try file.expect(f, count: 5 + genres.count, line: line, lineLength: range.count,
                            what: "id, title, dates, URL and \(genres.count) genre flags")
            let id = try file.nonEmpty(f[0], line: line, name: "movie id")
            var item = MovieTitle.splitYear(Item(id: id, title: f[1].text))
            for (g, flag) in zip(genres, f[5...]) {
                switch flag.text {
                case "1": item.genres.append(g)
                case "0": break
                default: throw file.malformed(line, flag.column, "genre flag '\(flag.text)' is not 0 or 1")
                }
            }
            if item.year == 0, let y = f[2].text.split(separator: "-").last.flatMap({ Int($0) }) { item.year = y }
            try insert(item, file: file, line: line, column: f[0].column, into: &builder)
        }
    }

    /// MovieID::Title (Year)::Genre|Genre.
    static func readMovies1m(_ file: TextFile, into builder: inout DatasetBuilder) throws {
        try file.forEachLine { line, range in
            if range.isEmpty { return }
            let f = file.split(range, separator: Array("::".utf8))
            try file.expect(f, count: 3, line: line, lineLength: range.count, what: "id, title, genres")
            try movie(id: f[0], title: f[1], genres: f[2], file: file, line: line, into: &builder)
        }
    }

    /// movieId,title,genres with a header line; titles may be quoted.
    static func readMoviesCSV(_ file: TextFile, into builder: inout DatasetBuilder) throws {
        try file.forEachLine { line, range in
            if range.isEmpty || line == 1 { return }
            let f = try file.splitCSV(range, line: line)
            try file.expect(f, count: 3, line: line, lineLength: range.count, what: "movieId, title, genres")
            try movie(id: f[0], title: f[1], genres: f[2], file: file, line: line, into: &builder)
        }
    }

    static func movie(id: Field, title: Field, genres: Field, file: TextFile, line: Int,
                      into builder: inout DatasetBuilder) throws {
        var item = MovieTitle.splitYear(Item(id: try file.nonEmpty(id, line: line, name: "movie id"), title: title.text))
        let g = genres.text.trimmedASCII
        if g != "(no genres listed)" && !g.isEmpty { item.genres = g.split(separator: "|").map(String.init) }
        try insert(item, file: file, line: line, column: id.column, into: &builder)
    }

    static func insert(_ item: Item, file: TextFile, line: Int, column: Int, into builder: inout DatasetBuilder) throws {
        if builder.items[item.id] != nil { throw file.malformed(line, column, "movie id '\(item.id)' appears twice") }
        builder.items[item.id] = item
    }
}
