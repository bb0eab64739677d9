// Reads a dataset directory, detecting its format: RecBole atomic files (NAME.inter), raw MovieLens (u.data,
// ratings.dat, ratings.csv) or Amazon Reviews 2023 JSONL (CATEGORY.jsonl + meta_CATEGORY.jsonl), in that order.
// `stream` hands the rows to a sink as they are read (memory: one line); `load` collects them into a Dataset.
import Foundation

public enum DatasetLoader {
    public static func load(_ directory: String) throws -> Dataset {
        var builder = DatasetBuilder()
        try stream(directory, into: &builder)
        return builder.build(name: try name(directory))
    }

    /// The dataset's name: NAME of NAME.inter, the directory's name for MovieLens, the category for Amazon.
    public static func name(_ directory: String) throws -> String {
        switch try format(directory) {
        case .atomic(let name): return name
        case .movieLens: return (directory as NSString).lastPathComponent
        case .amazon(let reviews, _): return AmazonReader.name(reviews: reviews)
        }
    }

    /// Reads `directory` row by row into `sink` (see `DatasetSink` for the order), counting bytes in `meter`.
    public static func stream<S: DatasetSink>(_ directory: String, into sink: inout S, meter: ReadMeter? = nil) throws {
        switch try format(directory) {
        case .atomic(let name): try AtomicReader.stream(directory, name: name, into: &sink, meter: meter)
        case .movieLens(let release): try MovieLensReader.stream(directory, release: release, into: &sink, meter: meter)
        case .amazon(let reviews, let meta):
            try AmazonReader.stream(directory, reviews: reviews, meta: meta, into: &sink, meter: meter)
        }
    }

    enum Format {
        case atomic(name: String)
        case movieLens(MovieLensReader.Release)
        case amazon(reviews: String, meta: String?)
    }

    static func format(_ directory: String) throws -> Format {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw DataError.unreadable(file: directory, message: "no such directory (run scripts/fetch-data.sh for ml-100k)")
        }
        if let name = AtomicReader.detect(directory) { return .atomic(name: name) }
        if let release = MovieLensReader.detect(directory) { return .movieLens(release) }
        if let files = AmazonReader.detect(directory) { return .amazon(reviews: files.reviews, meta: files.meta) }
        throw DataError.unknownFormat(directory: directory, message:
            "no NAME.inter (RecBole), u.data / ratings.dat / ratings.csv (MovieLens) or CATEGORY.jsonl (Amazon 2023)")
    }
}
