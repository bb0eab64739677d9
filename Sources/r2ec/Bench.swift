// `r2ec bench ...`: benchmarks that report ratios measured in one run on this machine (docs/benchmarks.md).
import ArgumentParser

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that report ratios measured in one run on this machine.",
        subcommands: [BenchGemm.self, BenchEngine.self, BenchTrain.self, BenchRPC.self, BenchServe.self, BenchSoak.self, BenchIngest.self, BenchScale.self]
    )
}
