// Call outcomes as gRPC's 17 canonical status codes, and the one error type the serving core raises.
// The RPC layer puts these on the wire unchanged (docs/protocol.md, "Status codes").
import Data

public enum StatusCode: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case ok = 0, cancelled, unknown, invalidArgument, deadlineExceeded, notFound, alreadyExists,
         permissionDenied, resourceExhausted, failedPrecondition, aborted, outOfRange, unimplemented,
         `internal`, unavailable, dataLoss, unauthenticated

    /// The gRPC name, e.g. "INVALID_ARGUMENT".
    public var name: String {
        switch self {
        case .ok: return "OK"
        case .cancelled: return "CANCELLED"
        case .unknown: return "UNKNOWN"
        case .invalidArgument: return "INVALID_ARGUMENT"
        case .deadlineExceeded: return "DEADLINE_EXCEEDED"
        case .notFound: return "NOT_FOUND"
        case .alreadyExists: return "ALREADY_EXISTS"
        case .permissionDenied: return "PERMISSION_DENIED"
        case .resourceExhausted: return "RESOURCE_EXHAUSTED"
        case .failedPrecondition: return "FAILED_PRECONDITION"
        case .aborted: return "ABORTED"
        case .outOfRange: return "OUT_OF_RANGE"
        case .unimplemented: return "UNIMPLEMENTED"
        case .internal: return "INTERNAL"
        case .unavailable: return "UNAVAILABLE"
        case .dataLoss: return "DATA_LOSS"
        case .unauthenticated: return "UNAUTHENTICATED"
        }
    }

    public var description: String { name }
}

/// A failed call: its status code, a message for the caller, and for INVALID_ARGUMENT the field at fault.
public struct ServingError: Error, Equatable, CustomStringConvertible {
    public var code: StatusCode
    public var message: String
    /// Path of the request field at fault ("history[2].item_id"), when known.
    public var field: String
    /// The configured limit this call hit ("history_length", "top_k", ...), for the limit-hit metric.
    public var limit: String?

    public init(_ code: StatusCode, _ message: String, field: String = "", limit: String? = nil) {
        self.code = code
        // Messages quote client strings (item ids, model names): escaped and bounded here, once for every door.
        self.message = ClientText.clip(message)
        self.field = ClientText.clip(field, limit: 256)
        self.limit = limit
    }

    public static func invalid(_ field: String, _ message: String) -> ServingError {
        ServingError(.invalidArgument, "\(field): \(message)", field: field)
    }

    public var description: String { "\(code.name): \(message)" }
}
