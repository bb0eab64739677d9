// Per-call state shared between the event loop and the workers: the deadline and a cooperative cancel flag.
import Foundation
import Synchronization

public final class CallContext: @unchecked Sendable {
    /// Monotonic deadline in nanoseconds (DispatchTime.uptimeNanoseconds), or nil for none.
    public let deadline: UInt64?
    private let cancelled = Atomic<Bool>(false)

    public init(deadline: UInt64? = nil) { self.deadline = deadline }

    /// A context whose deadline is `timeoutMs` from now; 0 = none; negative = already expired.
    public convenience init(timeoutMs: Int64) {
        if timeoutMs == 0 { self.init(deadline: nil); return }
        let now = DispatchTime.now().uptimeNanoseconds
        self.init(deadline: timeoutMs < 0 ? 0 : now &+ UInt64(timeoutMs) &* 1_000_000)
    }

    public func cancel() { cancelled.store(true, ordering: .relaxed) }
    public var isCancelled: Bool { cancelled.load(ordering: .relaxed) }

    public var isExpired: Bool {
        guard let deadline else { return false }
        return DispatchTime.now().uptimeNanoseconds >= deadline
    }

    /// The error to answer with instead of computing, if any.
    public var stopReason: ServingError? {
        if isCancelled { return ServingError(.cancelled, "call cancelled") }
        if isExpired { return ServingError(.deadlineExceeded, "deadline exceeded before the call was computed") }
        return nil
    }
}
