// A data-parallel run resumes from rank 0's scratch folder on every rank: rank 0 reads the folder's files and
// broadcasts them, and every other rank writes them into a folder of its own (ranks on other hosts may not see rank
// 0's disk; ranks on the same host must not write into rank 0's folder), from which it resumes exactly as rank 0
// does from the original. A failure on rank 0 (an unreadable file) is sent to every rank, so none waits forever
// for bytes that will not come.
import Collectives
import Foundation

enum SharedScratch {
    /// What rank 0 announces before the files: their paths (relative to the folder) and sizes, or why it cannot.
    private struct Manifest: Codable {
        var files: [File] = []
        var error: String?
        struct File: Codable { var path: String; var bytes: Int }
    }

    /// The folder this rank reads `work`'s files from: `work` itself on rank 0 (and in a single process); on the
    /// other ranks `copy(of:rank:)`, written here, which the caller removes once it has read it.
    static func share(_ work: String, over world: Communicator) throws -> String {
        if world.size == 1 { return work }
        var manifest = Manifest()
        if world.isRoot {
            do { manifest.files = try files(under: work) } catch { manifest.error = "\(error)" }
        }
        manifest = try broadcast(manifest, over: world)
        if let error = manifest.error {
            throw TrainError.state("rank 0 cannot share its state with the other ranks: \(error)")
        }
        let target = world.isRoot ? work : copy(of: work, rank: world.rank)
        let fm = FileManager.default
        if !world.isRoot {
            try? fm.removeItem(atPath: target)
            try fm.createDirectory(atPath: target, withIntermediateDirectories: true)
        }
        for file in manifest.files {
            // Rank 0 says whether it could read the file before anyone waits for its bytes.
            var bytes = Data(count: world.isRoot ? 0 : file.bytes)
            var failure = ""
            if world.isRoot {
                do {
                    bytes = try Data(contentsOf: URL(fileURLWithPath: work + "/" + file.path))
                    if bytes.count != file.bytes { failure = "\(work)/\(file.path) changed size while it was shared" }
                } catch {
                    failure = "\(work)/\(file.path): \(error)"
                }
            }
            if try !world.broadcast(failure.isEmpty) {
                throw TrainError.state("rank 0 cannot share its state with the other ranks: " +
                                       (world.isRoot ? failure : "reading \(file.path) failed on rank 0"))
            }
            if file.bytes > 0 {
                try bytes.withUnsafeMutableBytes { try world.broadcast($0.baseAddress!, bytes: file.bytes, root: 0) }
            }
            if !world.isRoot {
                let path = target + "/" + file.path
                try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try bytes.write(to: URL(fileURLWithPath: path))
            }
        }
        return target
    }

    /// Rank `rank`'s private copy of `work`, beside it.
    static func copy(of work: String, rank: Int) -> String { work + ".rank\(rank)" }

    /// Every regular file under `directory`, by path relative to it, in a stable order.
    private static func files(under directory: String) throws -> [Manifest.File] {
        let fm = FileManager.default
        guard let walker = fm.enumerator(atPath: directory) else {
            throw TrainError.state("cannot list \(directory)")
        }
        var found: [Manifest.File] = []
        while let relative = walker.nextObject() as? String {
            let attributes = try fm.attributesOfItem(atPath: directory + "/" + relative)
            guard attributes[.type] as? FileAttributeType == .typeRegular else { continue }
            found.append(.init(path: relative, bytes: (attributes[.size] as? NSNumber)?.intValue ?? 0))
        }
        return found.sorted { $0.path < $1.path }
    }

    /// Rank 0's manifest on every rank: its length, then its JSON.
    private static func broadcast(_ manifest: Manifest, over world: Communicator) throws -> Manifest {
        var json = world.isRoot ? try JSONEncoder().encode(manifest) : Data()
        let count = try world.broadcast(json.count)
        if !world.isRoot { json = Data(count: count) }
        try json.withUnsafeMutableBytes { try world.broadcast($0.baseAddress!, bytes: count, root: 0) }
        return try JSONDecoder().decode(Manifest.self, from: json)
    }
}
