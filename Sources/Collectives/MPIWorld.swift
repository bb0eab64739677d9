// MPI_COMM_WORLD of Open MPI (Debian's libopenmpi-dev through the CMPI module map). Initialised once per process
// with MPI_THREAD_FUNNELED (only the thread that calls these methods talks to MPI; compute threads never do) and
// finalised at exit. Errors return instead of aborting (MPI_ERRORS_RETURN) and become CollectiveError with MPI's
// message. Open MPI's predefined handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ...) are C macros over the addresses
// of globals of incomplete type, which Swift cannot import; their addresses are looked up by symbol name in the
// loaded libmpi instead. Counts above Int32.max are sent in chunks.
import CMPI
import Foundation

public final class MPIWorld: Communicator {
    public let rank: Int
    public let size: Int
    let comm: MPI_Comm
    let float: MPI_Datatype
    let double: MPI_Datatype
    let byte: MPI_Datatype
    let sumOp: MPI_Op
    private static let lock = NSLock()
    private static var instance: MPIWorld?
    private static var failure: CollectiveError?
    /// Elements per MPI call: MPI counts are 32-bit.
    nonisolated(unsafe) static var chunk = 1 << 30

    /// The world, initialising MPI on first use (a failure is remembered and thrown again).
    public static func shared() throws -> MPIWorld {
        lock.lock()
        defer { lock.unlock() }
        if let instance { return instance }
        if let failure { throw failure }
        do {
            let world = try MPIWorld()
            instance = world
            atexit { MPIWorld.finalize() }
            return world
        } catch let e as CollectiveError {
            failure = e
            throw e
        }
    }

    private init() throws {
        var provided: Int32 = 0
        let initialised = MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided)
        guard initialised == MPI_SUCCESS else {
            throw CollectiveError.mpi(call: "MPI_Init_thread", message: "error code \(initialised)")
        }
        comm = try Self.handle("ompi_mpi_comm_world")
        float = try Self.handle("ompi_mpi_float")
        double = try Self.handle("ompi_mpi_double")
        byte = try Self.handle("ompi_mpi_byte")
        sumOp = try Self.handle("ompi_mpi_op_sum")
        let errorsReturn: MPI_Errhandler = try Self.handle("ompi_mpi_errors_return")
        try Self.check(MPI_Comm_set_errhandler(comm, errorsReturn), "MPI_Comm_set_errhandler")
        var r: Int32 = 0, s: Int32 = 0
        try Self.check(MPI_Comm_rank(comm, &r), "MPI_Comm_rank")
        try Self.check(MPI_Comm_size(comm, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
    }

    private static func finalize() {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0 { MPI_Finalize() }
    }

    /// A predefined handle: the address of Open MPI's global of that name.
    private static func handle(_ symbol: String) throws -> OpaquePointer {
        guard let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), symbol) else {  // RTLD_DEFAULT
            throw CollectiveError.mpi(call: "dlsym", message: "libmpi has no symbol \(symbol)")
        }
        return OpaquePointer(address)
    }

    static func check(_ code: Int32, _ call: String) throws {
        guard code != MPI_SUCCESS else { return }
        var text = [CChar](repeating: 0, count: 1024)  // MPI_MAX_ERROR_STRING is 256
        var length: Int32 = 0
        MPI_Error_string(code, &text, &length)
        throw CollectiveError.mpi(call: call, message: String(cString: text))
    }

    /// Runs `body(offset, count)` over `total` elements in chunks MPI's 32-bit counts can hold.
    private func chunks(_ total: Int, _ body: (Int, Int32) throws -> Void) rethrows {
        var offset = 0
        while offset < total {
            let n = min(Self.chunk, total - offset)
            try body(offset, Int32(n))
            offset += n
        }
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        try chunks(count) { offset, n in
            try Self.check(MPI_Allreduce(MPI_IN_PLACE_address, buffer + offset, n, float, sumOp, comm), "MPI_Allreduce")
        }
    }

    public func allreduceSum(_ buffer: UnsafeMutablePointer<Double>, count: Int) throws {
        try chunks(count) { offset, n in
            try Self.check(MPI_Allreduce(MPI_IN_PLACE_address, buffer + offset, n, double, sumOp, comm), "MPI_Allreduce")
        }
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int) throws {
        precondition((0..<size).contains(root), "broadcast root \(root) outside 0..<\(size)")
        try chunks(bytes) { offset, n in
            try Self.check(MPI_Bcast(buffer + offset, n, byte, Int32(root), comm), "MPI_Bcast")
        }
    }

    public func allgather(_ input: UnsafeRawPointer, bytes: Int, into output: UnsafeMutableRawPointer) throws {
        precondition(bytes <= Int(Int32.max), "allgather blocks are at most 2 GiB")
        try Self.check(MPI_Allgather(input, Int32(bytes), byte, output, Int32(bytes), byte, comm), "MPI_Allgather")
    }

    public func barrier() throws {
        try Self.check(MPI_Barrier(comm), "MPI_Barrier")
    }
}

/// MPI_IN_PLACE is `(void *) 1` in Open MPI's mpi.h.
private let MPI_IN_PLACE_address = UnsafeMutableRawPointer(bitPattern: 1)
