// Errors of the Data layer: every malformed input names its file, 1-based line and 1-based column.

/// Why a dataset could not be read or split.
public enum DataError: Error, Equatable, CustomStringConvertible {
    /// The file's content is malformed at `line`:`column` (1-based; column counts bytes of the line).
    case malformed(file: String, line: Int, column: Int, message: String)
    /// A file the format needs is missing or unreadable.
    case unreadable(file: String, message: String)
    /// The directory holds no format this loader knows (the message lists what was looked for).
    case unknownFormat(directory: String, message: String)
    /// The data is well-formed but unusable as asked (e.g. nothing left after k-core filtering).
    case invalid(String)

    public var description: String {
        switch self {
        case let .malformed(file, line, column, message): return "\(file):\(line):\(column): \(message)"
        case let .unreadable(file, message): return "\(file): \(message)"
        case let .unknownFormat(directory, message): return "\(directory): \(message)"
        case let .invalid(message): return message
        }
    }
}
