// Errors of the Eval layer: bad baseline configuration, numerical failure of a solve, unusable evaluation input.

public enum EvalError: Error, Equatable, CustomStringConvertible {
    /// No baseline of this kind exists (the message lists the known kinds).
    case unknownBaseline(String)
    /// An option is unknown for the baseline or its value does not parse (the message names it).
    case invalidOption(String)
    /// A LAPACK solve failed (the matrix was not positive definite); names the routine and its info code.
    case solveFailed(routine: String, info: Int32)
    /// The evaluation cannot run as asked (e.g. no samples, a model scoring the wrong number of items).
    case invalidInput(String)

    public var description: String {
        switch self {
        case .unknownBaseline(let m): return m
        case .invalidOption(let m): return m
        case let .solveFailed(routine, info): return "\(routine) failed with info \(info) (matrix not positive definite)"
        case .invalidInput(let m): return m
        }
    }
}
