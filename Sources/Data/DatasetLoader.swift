// Loads a dataset directory, detecting its format: RecBole atomic files (NAME.inter), raw MovieLens (u.data,
// ratings.dat, ratings.csv) or Amazon Reviews 2023 JSONL (CATEGORY.jsonl + meta_CATEGORY.jsonl), in that order.
import Foundation

public enum DatasetLoader {
    public static func load(_ directory: String) throws -> Dataset {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw DataError.unreadable(file: directory, message: "no such directory (run scripts/fetch-data.sh for ml-100k)")
        }
        if let name = AtomicReader.detect(directory) { return try AtomicReader.load(directory, name: name) }
        if let release = MovieLensReader.detect(directory) { return try MovieLensReader.load(directory, release: release) }
        if let files = AmazonReader.detect(directory) {
            return try AmazonReader.load(directory, reviews: files.reviews, meta: files.meta)
        }
        throw DataError.unknownFormat(directory: directory, message:
            "no NAME.inter (RecBole), u.data / ratings.dat / ratings.csv (MovieLens) or CATEGORY.jsonl (Amazon 2023)")
    }
}
