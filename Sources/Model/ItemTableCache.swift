// The item tables a server keeps for itself (`r2ec serve --item-table-cache DIR`). Serving never writes into the
// checkpoint it loads, so without it every start reads every item out again (~5 minutes at 10^6 items). One
// safetensors file per (weights, item prompts, network precision), named by their hashes: several models and
// catalogues share one directory and a stale table is never read. A build saves its rows every `chunkRows` rows into
// NAME.partial, whose header records how many rows are complete and an FNV-1a hash of them; a killed build resumes
// there on the next start, and the finished file is renamed into place. A file that is truncated, corrupt, foreign or
// of other dimensions is ignored with a warning naming it; sizes are checked against [items, hidden] before anything
// is read. Items a catalogue update adds at run time (UpsertItems) are encoded on the spot and not kept here.
import Data
import Foundation
import Tensor

#if _endian(big)
#error("the item table cache reads and writes the floats' bytes as they are in memory (little-endian)")
#endif

public struct ItemTableCache: Sendable {
    public static let format = "r2ec-item-table-cache-1"
    /// The directory the server owns (created at the first build).
    public let directory: String
    /// Rows read out between two saves of the partial file, a multiple of `batchSize`.
    public let chunkRows: Int
    /// Rows per read-out batch: ItemTable.build's, so that a cached table is the one an uncached load builds.
    public let batchSize: Int
    /// Test hook: the build throws `Interrupted` once this many chunks are saved, as a killed server stops.
    var stopAfterChunks: Int?
    /// Where warnings go (stderr; tests collect them).
    var warn: @Sendable (String) -> Void = { FileHandle.standardError.write(Foundation.Data("warning: \($0)\n".utf8)) }

    public init(directory: String, chunkRows: Int = 8192, batchSize: Int = 32) {
        precondition(batchSize > 0 && chunkRows > 0 && chunkRows % batchSize == 0, "chunks of whole batches")
        self.directory = directory; self.chunkRows = chunkRows; self.batchSize = batchSize
    }

    /// What a table is of: its file's name and what the file must describe.
    public struct Key: Sendable, Equatable {
        public var weightsHash: String
        public var promptsHash: String
        /// The network's precision (float32, bfloat16): a bfloat16 network reads out other vectors.
        public var precision: String
        public var count: Int
        public var dimension: Int

        public init(weightsHash: String, promptsHash: String, precision: String, count: Int, dimension: Int) {
            self.weightsHash = weightsHash; self.promptsHash = promptsHash; self.precision = precision
            self.count = count; self.dimension = dimension
        }

        public var fileName: String { "item-table-\(weightsHash)-\(promptsHash)-\(precision).safetensors" }
    }

    public enum Outcome: Equatable, Sendable {
        /// Read whole from the finished file.
        case read
        /// Read out by the network from row `resumedAt` on (rows before it from the partial file); `saved`: the
        /// finished file is in place.
        case built(resumedAt: Int, saved: Bool)
    }

    struct Interrupted: Error {}

    public func path(_ key: Key) -> String { directory + "/" + key.fileName }

    /// The table of `key`: read from its finished file when that is intact, else read out by `model` from
    /// `itemTokens()` (one token list per item, as ItemTable.build takes them), resuming the partial file when it
    /// holds complete rows, saving every `chunkRows` rows, and renamed into place when done. A directory that cannot
    /// be written, or a partial file another process is building, leaves the build in memory (with a warning).
    public func table(_ key: Key, model: Qwen2Model, itemTokens: () -> [[Int]],
                      progress: Bool) throws -> (table: ItemTable, outcome: Outcome) {
        precondition(key.dimension == model.configuration.hiddenSize, "a key of the model's width")
        let vectors = FloatBuffer(shape: [key.count, key.dimension])
        let finished = path(key)
        let began = Date()
        func result(_ outcome: Outcome) -> (table: ItemTable, outcome: Outcome) {
            (ItemTable(vectors: vectors, weightsHash: key.weightsHash, promptsHash: key.promptsHash), outcome)
        }
        func readFinished() -> Bool {
            guard let rows = read(finished, key, into: vectors, partial: false) else { return false }
            if progress {
                status("item table: read \(rows.rows) items from \(finished) in "
                    + String(format: "%.1f s", Date().timeIntervalSince(began)))
            }
            return true
        }
        let existed = FileManager.default.fileExists(atPath: finished)
        if existed && readFinished() { return result(.read) }
        var writer = openPartial(key, into: vectors)
        if writer != nil, !existed, FileManager.default.fileExists(atPath: finished), readFinished() {
            writer?.discard()   // another process finished it between the two looks
            return result(.read)
        }
        let start = writer?.rows ?? 0
        if progress && start > 0 { status("item table: resuming \(writer!.path) at row \(start) of \(key.count)") }
        let tokens = itemTokens()
        precondition(tokens.count == key.count, "one token list per item")
        var chunks = 0
        try ItemTable.readOut(model: model, itemTokens: tokens, into: vectors, from: start, batchSize: batchSize,
                              chunkRows: chunkRows, progress: progress) { rows in
            guard let w = writer else { return }
            do { try w.save(upTo: rows, from: vectors) } catch {
                warn("item table cache \(w.path): \(error); the rest is built in memory only")
                writer = nil
                return
            }
            chunks += 1
            if let stop = stopAfterChunks, chunks >= stop { throw Interrupted() }
        }
        guard let w = writer else { return result(.built(resumedAt: start, saved: false)) }
        do { try w.finish(as: finished) } catch {
            warn("item table cache \(w.path): \(error); not kept")
            return result(.built(resumedAt: start, saved: false))
        }
        return result(.built(resumedAt: start, saved: true))
    }

    // MARK: The file

    static let tensorName = ItemTable.tensorName
    /// Our header is a few hundred bytes: a claim beyond this is not one of ours (and is never allocated).
    static let maxHeaderBytes = 1 << 16

    /// The header of a file of `key` whose first `rows` rows hash to `hash`; the same length for every `rows`
    /// (fixed-width fields), so a build rewrites it in place.
    static func header(_ key: Key, batchSize: Int, rows: Int, hash: FNV1a) -> Foundation.Data {
        let digits = String(rows)
        return SafetensorsWriter.header([(tensorName, [key.count, key.dimension])], metadata: [
            "format": format, "weights_hash": key.weightsHash, "prompts_hash": key.promptsHash,
            "precision": key.precision, "batch_rows": String(batchSize),
            "rows_complete": String(repeating: "0", count: 20 - digits.count) + digits, "rows_hash": hash.hex16])
    }

    /// Reads the complete rows of the file at `path` into `vectors`: nil when there is no file, or (with a
    /// warning naming it) when it is not an intact table of `key` - of a finished table when `partial` is false.
    func read(_ path: String, _ key: Key, into vectors: FloatBuffer, partial: Bool) -> (rows: Int, hash: FNV1a)? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno != ENOENT { warn("item table cache \(path) ignored: cannot open it (\(String(cString: strerror(errno))))") }
            return nil
        }
        defer { close(fd) }
        do {
            return try readRows(fd, path: path, key, into: vectors, partial: partial)
        } catch {
            warn("item table cache \(path) ignored: \(error)")
            return nil
        }
    }

    private func readRows(_ fd: Int32, path: String, _ key: Key, into vectors: FloatBuffer,
                          partial: Bool) throws -> (rows: Int, hash: FNV1a) {
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { throw Failure("not a regular file") }
        let size = Int(info.st_size)
        var length: UInt64 = 0
        guard size >= 8 else { throw Failure("truncated: \(size) bytes") }
        try withUnsafeMutableBytes(of: &length) { try Self.readAll(fd, into: $0.baseAddress!, count: 8, at: 0) }
        length = UInt64(littleEndian: length)
        guard length <= UInt64(min(Self.maxHeaderBytes, size - 8)) else {
            throw Failure("header of \(length) bytes in a file of \(size) (not an item table, or truncated)")
        }
        var headerBytes = Foundation.Data(count: Int(length))
        try headerBytes.withUnsafeMutableBytes { try Self.readAll(fd, into: $0.baseAddress!, count: Int(length), at: 8) }
        let dataStart = 8 + Int(length)
        let (entries, metadata) = try SafetensorsFile.parseHeader(headerBytes, dataLength: size - dataStart, path: path)
        guard metadata["format"] == Self.format else { throw Failure("not an r2ec item table cache file") }
        for (field, expected) in [("weights_hash", key.weightsHash), ("prompts_hash", key.promptsHash),
                                  ("precision", key.precision)] where metadata[field] != expected {
            throw Failure("\(field) \(metadata[field] ?? "missing"), expected \(expected)")
        }
        guard entries.count == 1, let entry = entries[Self.tensorName], entry.dtypeName == "F32", entry.begin == 0,
              entry.shape == [key.count, key.dimension] else {
            throw Failure("its tensors are not one F32 \(Self.tensorName) of [\(key.count), \(key.dimension)]")
        }
        guard let rows = metadata["rows_complete"].flatMap({ Int($0) }), (0...key.count).contains(rows),
              let hash = metadata["rows_hash"].flatMap({ UInt64($0, radix: 16) }) else {
            throw Failure("rows_complete or rows_hash missing or out of range")
        }
        if partial {
            guard metadata["batch_rows"] == String(batchSize), rows % batchSize == 0 || rows == key.count else {
                throw Failure("rows read out in batches of \(metadata["batch_rows"] ?? "?"), this build's are \(batchSize)")
            }
        } else if rows != key.count {
            throw Failure("\(rows) of \(key.count) rows complete")
        }
        let bytes = rows * key.dimension * 4
        try Self.readAll(fd, into: vectors.data, count: bytes, at: dataStart)
        var check = FNV1a()
        check.words(UnsafeRawBufferPointer(start: vectors.data, count: bytes))
        guard check.value == hash else { throw Failure("its rows do not match rows_hash (corrupt)") }
        return (rows, check)
    }

    /// The partial file of `key`, locked for this process, with the complete rows it holds read into `vectors`
    /// (a fresh one when there is none or it is not usable); nil, with a warning, when it cannot be had.
    func openPartial(_ key: Key, into vectors: FloatBuffer) -> PartialFile? {
        let path = self.path(key) + ".partial"
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            warn("item table cache \(directory): cannot create it (\(error)); the table is built in memory only")
            return nil
        }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            warn("item table cache \(path): cannot open it (\(String(cString: strerror(errno)))); the table is built in memory only")
            return nil
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            warn("item table cache \(path) is being built by another process; this one builds its table in memory")
            return nil
        }
        var info = stat()
        let empty = fstat(fd, &info) == 0 && info.st_size == 0
        let file = PartialFile(fd: fd, path: path, key: key, batchSize: batchSize)
        if !empty, let held = read(path, key, into: vectors, partial: true) {
            (file.rows, file.hash) = held
            return file
        }
        do { try file.reset() } catch {
            warn("item table cache \(path): \(error); the table is built in memory only")
            return nil
        }
        return file
    }

    /// A partial file this process holds the lock of (released when it is closed).
    final class PartialFile {
        let fd: Int32
        let path: String
        let key: Key
        let batchSize: Int
        var rows = 0
        var hash = FNV1a()
        let dataStart: Int

        init(fd: Int32, path: String, key: Key, batchSize: Int) {
            self.fd = fd; self.path = path; self.key = key; self.batchSize = batchSize
            dataStart = ItemTableCache.header(key, batchSize: batchSize, rows: 0, hash: FNV1a()).count
        }
        deinit { close(fd) }

        /// An empty table: the header with no complete rows, the file at its full size (a sparse hole).
        func reset() throws {
            (rows, hash) = (0, FNV1a())
            guard ftruncate(fd, 0) == 0 else { throw Failure("truncate: \(String(cString: strerror(errno)))") }
            try writeHeader()
            guard ftruncate(fd, off_t(dataStart + key.count * key.dimension * 4)) == 0 else {
                throw Failure("extend: \(String(cString: strerror(errno)))")
            }
        }

        /// Writes rows `rows..<end` of `vectors`, makes them durable, then records them in the header.
        func save(upTo end: Int, from vectors: FloatBuffer) throws {
            let width = key.dimension * 4
            let bytes = UnsafeRawBufferPointer(start: vectors.data + rows * key.dimension, count: (end - rows) * width)
            try ItemTableCache.writeAll(fd, bytes, at: dataStart + rows * width)
            guard fdatasync(fd) == 0 else { throw Failure("sync: \(String(cString: strerror(errno)))") }
            hash.words(bytes)
            rows = end
            try writeHeader()
        }

        /// Makes the complete file durable and renames it to `finished` (atomically, then the directory synced).
        func finish(as finished: String) throws {
            precondition(rows == key.count, "a finished table has every row")
            guard fsync(fd) == 0 else { throw Failure("sync: \(String(cString: strerror(errno)))") }
            guard rename(path, finished) == 0 else { throw Failure("rename to \(finished): \(String(cString: strerror(errno)))") }
            let directory = open((finished as NSString).deletingLastPathComponent, O_RDONLY | O_CLOEXEC)
            if directory >= 0 { _ = fsync(directory); close(directory) }
        }

        /// Removes the file (the finished table is already in place).
        func discard() { unlink(path) }

        private func writeHeader() throws {
            let header = ItemTableCache.header(key, batchSize: batchSize, rows: rows, hash: hash)
            try header.withUnsafeBytes { try ItemTableCache.writeAll(fd, $0, at: 0) }
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func readAll(_ fd: Int32, into destination: UnsafeMutableRawPointer, count: Int, at offset: Int) throws {
        var done = 0
        while done < count {
            let n = pread(fd, destination + done, count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw Failure(n == 0 ? "truncated: it ends before byte \(offset + count)"
                                     : "read: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure("write: \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    private func status(_ line: String) { FileHandle.standardError.write(Foundation.Data((line + "\n").utf8)) }
}
