// Moving datasets in and out of a store: `r2ec store import` streams any dataset directory the Data readers know
// into a store in chunks (memory: one chunk), and `r2ec store export` writes a store as RecBole atomic files, so that
// `train` and `eval` read exactly what the store holds.
import Data
import Foundation

/// A DatasetSink that writes to a store, one transaction per chunk of rows.
public struct StoreImporter: DatasetSink {
    public let store: EventStore
    public let name: String
    public let chunkEvents: Int
    private var items: [CatalogItem] = []
    private var events: [UserEvent] = []
    public private(set) var importedItems = 0
    public private(set) var importedEvents = 0
    /// Called after every chunk with the rows imported so far.
    public var onChunk: (_ items: Int, _ events: Int) -> Void = { _, _ in }

    public init(store: EventStore, name: String, chunkEvents: Int = 20_000) {
        self.store = store; self.name = name; self.chunkEvents = chunkEvents
    }

    public mutating func item(_ item: Item) throws {
        items.append(CatalogItem(item: item))
        if items.count >= chunkEvents { try flush() }
    }

    public mutating func interaction(user: String, item: String, rating: Float, timestamp: Int64) throws {
        events.append(UserEvent(userId: user, itemId: item, timestamp: timestamp, rating: rating))
        if events.count >= chunkEvents { try flush() }
    }

    /// Writes what is buffered.
    public mutating func flush() throws {
        guard !items.isEmpty || !events.isEmpty else { return }
        try store.importRows(items: items, events: events, name: name)
        importedItems += items.count
        importedEvents += events.count
        items.removeAll(keepingCapacity: true)
        events.removeAll(keepingCapacity: true)
        onChunk(importedItems, importedEvents)
    }
}

/// Writes a store as RecBole atomic files: DIR/NAME.item (item_id, movie_title, release_year, class, description)
/// and DIR/NAME.inter (user_id, item_id, rating, timestamp), NAME being the directory's name, events in the order
/// recorded. Atomic files cannot hold tabs or line breaks inside a field, nor spaces inside a token_seq element:
/// those become spaces, and spaces inside a genre become underscores (docs/architecture.md).
public enum StoreExporter {
    public static func export(_ store: EventStore, to directory: String,
                              progress: (_ events: Int) -> Void = { _ in }) throws -> (items: Int, events: Int) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let name = (directory as NSString).lastPathComponent
        let base = (directory as NSString).appendingPathComponent(name)
        let items = try store.items(changedAfter: 0).items
        var itemFile = FileSink(base + ".item.partial")
        try itemFile.write("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\tdescription:token_seq\n")
        for c in items {
            let i = c.item
            try itemFile.write([field(i.id), field(i.title), i.year == 0 ? "" : "\(i.year)",
                                i.genres.map { field($0).replacingOccurrences(of: " ", with: "_") }.joined(separator: " "),
                                field(i.description)].joined(separator: "\t") + "\n")
        }
        try itemFile.close()
        var interFile = FileSink(base + ".inter.partial")
        try interFile.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        var count = 0
        try store.forEachEvent(chunk: 10_000) { events in
            var text = ""
            text.reserveCapacity(events.count * 32)
            for e in events {
                text += field(e.userId) + "\t" + field(e.itemId) + "\t" + "\(e.rating)" + "\t" + "\(e.timestamp)" + "\n"
            }
            try interFile.write(text)
            count += events.count
            progress(count)
        }
        try interFile.close()
        // Files appear whole or not at all.
        for ext in ["item", "inter"] {
            _ = try? FileManager.default.removeItem(atPath: "\(base).\(ext)")
            try FileManager.default.moveItem(atPath: "\(base).\(ext).partial", toPath: "\(base).\(ext)")
        }
        return (items.count, count)
    }

    /// A field's text with tabs and line breaks turned into spaces.
    static func field(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) else { return s }
        return String(s.map { $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" ? " " : $0 })
    }
}

/// Buffered writes to a new file.
struct FileSink {
    let path: String
    private let handle: UnsafeMutablePointer<FILE>?

    init(_ path: String) {
        self.path = path
        handle = fopen(path, "wb")
    }

    mutating func write(_ text: String) throws {
        guard let handle else { throw StoreError.unusable("cannot create \(path): \(String(cString: strerror(errno)))") }
        let ok = text.utf8.withContiguousStorageIfAvailable { fwrite($0.baseAddress, 1, $0.count, handle) == $0.count }
            ?? Array(text.utf8).withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, handle) == $0.count }
        guard ok else { throw StoreError.full("cannot write \(path): \(String(cString: strerror(errno)))") }
    }

    func close() throws {
        guard let handle else { throw StoreError.unusable("cannot create \(path)") }
        guard fflush(handle) == 0, fclose(handle) == 0 else {
            throw StoreError.full("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
