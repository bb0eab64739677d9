// Seconds spent per named phase of a pass, accumulated across calls while installed on a model or a training graph
// (`r2ec bench engine --profile`, `r2ec bench train`); the pass reads the clock only when one is installed.
// Single-threaded callers only.

public final class PhaseProfile: @unchecked Sendable {
    public private(set) var seconds: [String: Double] = [:]
    /// Phase names in the order they were first seen.
    public private(set) var order: [String] = []
    private var last = 0.0
    public init() {}
    public func start() { last = GEMMBenchmark.now() }
    /// Adds the time since the previous lap (or `start`) to `phase`.
    public func lap(_ phase: String) {
        let now = GEMMBenchmark.now()
        if seconds[phase] == nil { order.append(phase) }
        seconds[phase, default: 0] += now - last
        last = now
    }
}
