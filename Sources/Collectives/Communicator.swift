// The collective operations data-parallel training needs, over every process of a run: sum a float buffer in place
// on every rank (gradients), sum doubles (losses, counts), broadcast bytes from one rank, gather equal-sized blocks
// from every rank, and a barrier. One process is a run of size 1 where every operation is the identity; `world()`
// returns Open MPI's world when the program was started by mpirun, and that single process otherwise.
import Foundation

public protocol Communicator: AnyObject {
    /// This process's index in 0..<size.
    var rank: Int { get }
    var size: Int { get }
    /// Replaces `count` floats with their element-wise sum over every rank (every rank gets the same sums).
    func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws
    /// The same for doubles (losses, token counts: small, exact enough to normalise by).
    func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws
    /// Copies `bytes` bytes of `root`'s buffer into every other rank's.
    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws
    /// Every rank sends `bytes` bytes; `output` receives size * bytes: rank 0's block first.
    func allgather(_ input: UnsafeRawPointer, bytes: Int, into output: UnsafeMutableRawPointer) throws
    func barrier() throws
}

public enum CollectiveError: Error, CustomStringConvertible, Equatable {
    /// An MPI call failed: the call and MPI's own message.
    case mpi(call: String, message: String)
    /// The ranks disagree about something they must share (the message says what).
    case mismatch(String)

    public var description: String {
        switch self {
        case let .mpi(call, message): return "\(call) failed: \(message)"
        case let .mismatch(message): return message
        }
    }
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    /// The sum of one value over every rank.
    public func sum(_ value: Double) throws -> Double {
        var v = value
        try allreduceSum(&v, count: 1)
        return v
    }

    /// The sum of several values over every rank.
    public func sum(_ values: [Double]) throws -> [Double] {
        var v = values
        try v.withUnsafeMutableBufferPointer { try allreduceSum($0.baseAddress!, count: $0.count) }
        return v
    }

    /// Root's value on every rank (a flag, a decision).
    public func broadcast<T: BitwiseCopyable>(_ value: T, root: Int = 0) throws -> T {
        var v = value
        try withUnsafeMutableBytes(of: &v) { try broadcast($0.baseAddress!, bytes: $0.count, root: root) }
        return v
    }

    /// The half-open slice of 0..<count this rank owns when `count` things are split as evenly as possible
    /// (the first count % size ranks take one more).
    public func slice(of count: Int) -> Range<Int> {
        let base = count / size, extra = count % size
        let start = rank * base + min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }

    /// Fails on every rank unless every rank passed the same value (a configuration or data fingerprint).
    public func checkAgreement(_ value: UInt64, what: String) throws {
        if size == 1 { return }
        var mine = value
        let all = UnsafeMutablePointer<UInt64>.allocate(capacity: size)
        defer { all.deallocate() }
        try allgather(&mine, bytes: 8, into: all)
        let values = UnsafeBufferPointer(start: all, count: size)
        if let other = values.firstIndex(where: { $0 != values[0] }) {
            throw CollectiveError.mismatch("\(what) differs between rank 0 and rank \(other): every rank must be started with the same arguments")
        }
    }
}

/// A run of one process: every collective is the identity.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {}
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {}
    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {
        precondition(root == 0, "a single process is rank 0")
    }
    public func allgather(_ input: UnsafeRawPointer, bytes: Int, into output: UnsafeMutableRawPointer) throws {
        output.copyMemory(from: input, byteCount: bytes)
    }
    public func barrier() throws {}
}

public enum Collectives {
    /// Whether this process was started by Open MPI's mpirun (which sets OMPI_COMM_WORLD_SIZE for every rank).
    public static var launchedByMPI: Bool { ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil }

    /// Every process of this run: MPI's world under mpirun (initialised once), a single process otherwise.
    public static func world() throws -> Communicator {
        launchedByMPI ? try MPIWorld.shared() : SingleProcess()
    }
}
