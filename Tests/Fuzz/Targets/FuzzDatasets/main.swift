// libFuzzer target: the dataset readers through DatasetLoader.load, as `r2ec serve --dataset` reads a directory.
// Input: byte 0 picks the layout (RecBole atomic, MovieLens 100K / 1M / latest CSV, Amazon 2023 JSONL); the rest
// is cut at NUL bytes into that layout's files, written to a scratch directory. A reader may only return a dataset
// or throw DataError; a dataset it returns must be consistent and survive both splits.
import Data
import Foundation
import FuzzSupport

let layouts: [(dir: String, files: [String])] = [
    ("fuzz", ["fuzz.inter", "fuzz.item", "fuzz.user"]),
    ("ml-100k", ["u.data", "u.item", "u.genre"]),
    ("ml-1m", ["ratings.dat", "movies.dat"]),
    ("ml-latest", ["ratings.csv", "movies.csv"]),
    ("amazon", ["Fuzz.jsonl", "meta_Fuzz.jsonl"]),
]
/// Scratch directory, in memory when the machine has /dev/shm (a disk directory costs most of each execution).
let root = (FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm/" : NSTemporaryDirectory())
    + "r2ec-fuzz-datasets-\(getpid())"

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = bytes(data, size)
    guard let selector = input.first else { return 0 }
    let layout = layouts[Int(selector) % layouts.count]
    let dir = root + "/" + layout.dir
    try? FileManager.default.removeItem(atPath: dir)
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let parts = input.dropFirst().split(separator: 0, maxSplits: layout.files.count - 1, omittingEmptySubsequences: false)
    for (name, part) in zip(layout.files, parts) {
        FileManager.default.createFile(atPath: dir + "/" + name, contents: Foundation.Data(part))
    }
    let dataset: Dataset
    do {
        dataset = try DatasetLoader.load(dir)
    } catch is DataError {
        return 0
    } catch {
        preconditionFailure("\(layout.dir): non-DataError \(error)")
    }
    precondition(dataset.userIds.count == Set(dataset.userIds).count, "duplicate user ids")
    for x in dataset.interactions {
        precondition(x.user >= 0 && x.user < dataset.numUsers, "interaction user out of range")
        precondition(x.item >= 0 && x.item < dataset.catalog.count, "interaction item out of range")
    }
    _ = dataset.itemStats()
    _ = dataset.fingerprint
    for kind in Splits.Kind.allCases { _ = Splits.make(kind, dataset).trainingSamples() }
    return 0
}

atexit { try? FileManager.default.removeItem(atPath: root) }  // libFuzzer ends with exit()
fuzzMain(fuzzOne)
