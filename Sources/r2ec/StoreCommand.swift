// `r2ec store import | export | info`: datasets into and out of the live loop's store (docs/architecture.md,
// "The Store target").
import ArgumentParser
import Data
import Foundation
import Store

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Import a dataset into a store, export a store as RecBole atomic files, or describe a store.",
        subcommands: [StoreImport.self, StoreExport.self, StoreInfoCommand.self])
}

struct StoreImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Stream a dataset directory (RecBole atomic, MovieLens 100K/1M/latest, Amazon 2023) into a store.",
        discussion: "Items first, then interactions as events of kind 'interaction', in file order, one transaction per chunk. "
            + "Importing the same dataset twice appends its interactions again.")

    @Option(help: "Dataset directory.") var dataset: String
    @Option(help: "The store: \(StoreURL.usage).") var store: String
    @Option(help: "Rows per transaction.") var chunk = 20_000

    func run() throws {
        let started = Date()
        let target = try Stores.open(store)
        defer { target.close() }
        let (items, events) = try Self.importDataset(dataset, into: target, chunk: chunk)
        let info = try target.info()
        let seconds = Date().timeIntervalSince(started)
        print("imported \(dataset) into \(target.location) in \(String(format: "%.1f", seconds)) s: "
            + "\(items) item rows, \(events) events (\(Int(Double(events) / max(seconds, 1e-9)))/s); the store holds "
            + "\(info.items) items, \(info.users) users, \(info.events) events")
    }

    /// Streams `dataset` into `store` with a progress bar on stderr; returns the item rows and events imported.
    static func importDataset(_ dataset: String, into store: EventStore, chunk: Int = 20_000) throws -> (items: Int, events: Int) {
        let meter = ReadMeter()
        var importer = StoreImporter(store: store, name: try DatasetLoader.name(dataset), chunkEvents: chunk)
        let bar = ProgressBar(label: "import")
        importer.onChunk = { items, events in
            bar.show(done: Double(meter.bytesRead), total: Double(meter.totalBytes), detail: "\(items) items, \(events) events")
        }
        try DatasetLoader.stream(dataset, into: &importer, meter: meter)
        try importer.flush()
        bar.finish()
        return (importer.importedItems, importer.importedEvents)
    }
}

struct StoreExport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a store as RecBole atomic files OUT/NAME.item and OUT/NAME.inter (NAME: OUT's last component).",
        discussion: "Readable by `r2ec train --dataset OUT` and `r2ec eval --dataset OUT`. Reads one consistent snapshot; "
            + "needs no writer lock, so a server may keep running on the store.")

    @Option(help: "The store: \(StoreURL.usage).") var store: String
    @Option(help: "Output directory.") var out: String

    func run() throws {
        let source = try Stores.open(store, writer: false)
        defer { source.close() }
        let total = try source.info().events
        let bar = ProgressBar(label: "export")
        let (items, events) = try StoreExporter.export(source, to: out) { n in
            bar.show(done: Double(n), total: Double(total), detail: "\(n) events")
        }
        bar.finish()
        print("exported \(source.location) to \(out): \(items) items, \(events) events")
    }
}

struct StoreInfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Counts and versions of a store.")

    @Option(help: "The store: \(StoreURL.usage).") var store: String

    func run() throws {
        let source = try Stores.open(store, writer: false)
        defer { source.close() }
        let i = try source.info()
        print("\(source.location): dataset \(i.name), \(i.items) items, \(i.users) users, \(i.events) events, "
            + "catalogue version \(i.catalogVersion), schema version \(i.schemaVersion)")
    }
}
