// An exponential moving average of the parameters (Polyak averaging): evaluations and the kept checkpoint use the
// average instead of the last iterate, which smooths the noise of small-batch steps. The decay ramps up as
// min(decay, (1 + n) / (10 + n)) over the first updates so the early average is not dominated by the start.
import Model

public final class ParameterAverage {
    public let average: ParameterBuffer
    public let decay: Float
    /// Updates folded in so far (saved with the training state so a resumed run ramps the same way).
    public var updates: Int

    public init(of parameters: ParameterBuffer, decay: Float, updates: Int = 0) {
        precondition(decay > 0 && decay < 1, "the average's decay must be in (0, 1)")
        average = parameters.copy()
        self.decay = decay
        self.updates = updates
    }

    /// The decay the next update uses.
    public var currentDecay: Float { min(decay, Float(1 + updates) / Float(10 + updates)) }

    /// average = d * average + (1 - d) * parameters.
    public func update(from parameters: ParameterBuffer) {
        let d = currentDecay, a = average.base, p = parameters.base
        for i in 0..<average.count { a[i] = d * a[i] + (1 - d) * p[i] }
        updates += 1
    }

    /// Runs `body` with the average in `parameters`, then puts the live parameters back.
    public func withAverage<T>(in parameters: ParameterBuffer, _ body: () throws -> T) rethrows -> T {
        exchange(parameters)
        defer { exchange(parameters) }
        return try body()
    }

    private func exchange(_ parameters: ParameterBuffer) {
        let a = average.base, p = parameters.base
        for i in 0..<average.count { let t = a[i]; a[i] = p[i]; p[i] = t }
    }
}
