// The r2ec command-line program: serve, train, eval, store, data, bench, call.
import ArgumentParser

@main
struct R2ecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "r2ec",
        abstract: "A dual-head recommender network: serve, train, evaluate, benchmark, make data.",
        subcommands: [Serve.self, Call.self, TrainCommand.self, TuneCommand.self, EvalCommand.self, StoreCommand.self, DataCommand.self,
                      Bench.self]
    )
}
