// A settings file or environment variable that cannot be used, with where it came from.

public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
