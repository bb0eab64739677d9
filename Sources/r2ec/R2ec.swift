// The r2ec command-line program: serve, train, eval, store, bench, call.
import ArgumentParser

@main
struct R2ecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "r2ec",
        abstract: "A dual-head recommender network: serve, train, evaluate, benchmark.",
        subcommands: [Serve.self, Call.self, TrainCommand.self, EvalCommand.self, StoreCommand.self, Bench.self]
    )
}
