// `r2ec data synth`: synthetic RecBole atomic files of any size (Zipf popularity, drifting taste clusters, titles
// and genres from vocabularies, session timestamps), seeded and streamed, with a progress bar on stderr.
import ArgumentParser
import Data
import Foundation

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Dataset tools.",
        subcommands: [DataSynth.self]
    )
}

struct DataSynth: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write synthetic RecBole atomic files (NAME.item, NAME.inter) with realistic structure.",
        discussion: """
        Items get Zipf popularity and belong to taste clusters (each with its own genres and title words); every user \
        starts in one cluster and, with probability --drift, moves towards a second one along their time line, \
        exploring global popularity in --exploration of their events. Users rate an item at most once; every user \
        has at least --min-user-events events; timestamps come in sessions. The same arguments always write the \
        same bytes. Memory grows with users and items, not with events. Read the result with any command's \
        --dataset DIR.
        """
    )

    @Option(help: "Users (ids 1..U).") var users: Int
    @Option(help: "Items (ids 1..I).") var items: Int
    @Option(help: "Interactions in all (at least users x --min-user-events, at most users x items / 2).") var events: Int
    @Option(help: "Output directory (created); files are NAME.item and NAME.inter.") var out: String
    @Option(help: "Dataset name (default: the output directory's name).") var name: String?
    @Option(help: "Random seed: the same seed and sizes give the same files.") var seed: UInt64 = 1
    @Option(help: "Zipf exponent of item popularity.") var zipf = 1.0
    @Option(help: "Taste clusters (0: sqrt(items) / 4, clamped to 4...64).") var clusters = 0
    @Option(help: "Events every user has at least.") var minUserEvents = 5
    @Option(help: "Share of users whose taste drifts to a second cluster.") var drift = 0.5
    @Option(help: "Share of events drawn from global popularity.") var exploration = 0.1
    @Option(help: "Days the timestamps span (from 2015-01-01).") var days = 1095

    var spec: SyntheticSpec {
        var spec = SyntheticSpec(users: users, items: items, events: events)
        spec.seed = seed
        spec.zipfExponent = zipf
        spec.clusters = clusters
        spec.minUserEvents = minUserEvents
        spec.drift = drift
        spec.exploration = exploration
        spec.days = days
        return spec
    }

    func validate() throws {
        do { _ = try spec.validated() } catch let e as DataError { throw ValidationError(e.description) }
    }

    func run() throws {
        let datasetName = name ?? (out as NSString).lastPathComponent
        let started = Date()
        let bar = ProgressBar(label: "synth")
        let summary = try SyntheticData.write(spec, directory: out, name: datasetName) { done, total in
            bar.show(done: Double(done), total: Double(total),
                     detail: "\(ProgressBar.count(done))/\(ProgressBar.count(total)) rows (items, then events)")
        }
        bar.finish()
        let seconds = Date().timeIntervalSince(started)
        func size(_ path: String) -> String {
            let bytes = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int ?? 0
            return String(format: "%.1f MiB", Double(bytes) / 1_048_576)
        }
        print("\(summary.itemFile): \(summary.items) items in \(summary.clusters) taste clusters (\(size(summary.itemFile)))")
        print("\(summary.interFile): \(summary.events) events of \(summary.users) users, " +
              "\(summary.minUserEvents)-\(summary.maxUserEvents) per user (\(size(summary.interFile)))")
        print(String(format: "%.1f s, %.0f events/s, peak memory (maxrss) %.1f MiB", seconds,
                     Double(summary.events) / max(seconds, 1e-9), Console.peakMemoryMiB))
    }
}
