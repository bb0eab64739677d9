// What each rank runs when CollectivesTests start this test binary under mpirun (MPILaunch): every collective of
// MPIWorld against references each rank computes itself in float64 from every rank's seeded inputs. In an ordinary
// test run (no mpirun) it is skipped.
import Data
import Foundation
import XCTest
@testable import Collectives

final class RankBodyTests: XCTestCase {
    /// Rank r's input to the float allreduce: seeded values in [-1, 1).
    static func input(rank: Int, count: Int) -> [Float] {
        var rng = SplitMix64(seed: 1000 + UInt64(rank))
        return (0..<count).map { _ in rng.nextUniform() * 2 - 1 }
    }

    func testRankBody() throws {
        try XCTSkipUnless(Collectives.launchedByMPI, "the body of a rank; CollectivesTests start it under mpirun")
        let world = try Collectives.world()
        XCTAssertTrue(world is MPIWorld)
        let size = world.size, rank = world.rank
        XCTAssertEqual(String(size), ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"])

        // Float sums of an odd count larger than MPI's segment sizes, against float64 sums of every rank's input.
        let count = 1_000_003
        var buffer = Self.input(rank: rank, count: count)
        try buffer.withUnsafeMutableBufferPointer { try world.allreduceSum($0.baseAddress!, count: count) }
        let inputs = (0..<size).map { Self.input(rank: $0, count: count) }
        var worst = 0.0
        for i in 0..<count {
            let exact = inputs.reduce(0.0) { $0 + Double($1[i]) }
            worst = max(worst, abs(Double(buffer[i]) - exact))
            // Two ranks: a + b rounded once, exactly the float64 sum rounded to float.
            if size == 2 { XCTAssertEqual(buffer[i], Float(exact), "element \(i)"); if buffer[i] != Float(exact) { break } }
        }
        XCTAssertLessThan(worst, 1e-6 * Double(size))

        // The same sums through 7-element chunks (the path counts above Int32.max take).
        var chunked = Self.input(rank: rank, count: 1000)
        let saved = MPIWorld.chunk
        MPIWorld.chunk = 7
        try chunked.withUnsafeMutableBufferPointer { try world.allreduceSum($0.baseAddress!, count: 1000) }
        MPIWorld.chunk = saved
        for i in 0..<1000 {
            XCTAssertEqual(Double(chunked[i]), inputs.reduce(0.0) { $0 + Double($1[i]) }, accuracy: 1e-6 * Double(size))
        }

        // Doubles, one value and several, and an empty buffer.
        XCTAssertEqual(try world.sum(Double(rank + 1)), Double(size * (size + 1) / 2))
        XCTAssertEqual(try world.sum([1, Double(rank), 0.5]), [Double(size), Double(size * (size - 1) / 2), 0.5 * Double(size)])
        var empty: [Float] = [1]
        try empty.withUnsafeMutableBufferPointer { try world.allreduceSum($0.baseAddress!, count: 0) }
        XCTAssertEqual(empty, [1])

        // Broadcast from the last rank; allgather of per-rank blocks.
        let root = size - 1
        var bytes = [UInt8](repeating: UInt8(rank), count: 4099)
        try bytes.withUnsafeMutableBytes { try world.broadcast($0.baseAddress!, bytes: $0.count, root: root) }
        XCTAssertEqual(bytes, [UInt8](repeating: UInt8(root), count: 4099))
        XCTAssertEqual(try world.broadcast(rank == 0 ? 42.5 : -1.0), 42.5)
        var mine: [Int32] = [Int32(rank), Int32(rank * 10), -Int32(rank)]
        var all = [Int32](repeating: -7, count: 3 * size)
        try mine.withUnsafeMutableBytes { m in
            try all.withUnsafeMutableBytes { try world.allgather(m.baseAddress!, bytes: m.count, into: $0.baseAddress!) }
        }
        XCTAssertEqual(all, (0..<size).flatMap { [Int32($0), Int32($0 * 10), -Int32($0)] })

        // Slices cover 0..<n once, in rank order, differing in length by one at most.
        for n in [0, 1, size - 1, size, 7 * size + 3] {
            let s = world.slice(of: n)
            let bounds = [Int64(s.lowerBound), Int64(s.upperBound)]
            var gathered = [Int64](repeating: -1, count: 2 * size)
            try bounds.withUnsafeBytes { b in
                try gathered.withUnsafeMutableBytes { try world.allgather(b.baseAddress!, bytes: 16, into: $0.baseAddress!) }
            }
            XCTAssertEqual(gathered.first, 0)
            XCTAssertEqual(gathered.last, Int64(n))
            for r in 1..<size { XCTAssertEqual(gathered[2 * r], gathered[2 * r - 1], "slices meet") }
            let lengths = (0..<size).map { gathered[2 * $0 + 1] - gathered[2 * $0] }
            XCTAssertLessThanOrEqual(lengths.max()! - lengths.min()!, 1)
        }

        // Agreement: equal values pass; a rank-dependent value fails on every rank with a message naming it.
        try world.checkAgreement(0xFEED, what: "the config")
        XCTAssertThrowsError(try world.checkAgreement(UInt64(rank), what: "the config")) { error in
            XCTAssertEqual(error as? CollectiveError,
                           .mismatch("the config differs between rank 0 and rank 1: every rank must be started with the same arguments"))
        }
        try world.barrier()
        // The network namespace this rank runs in: the two-host test checks its ranks ran in different ones.
        let namespace = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")) ?? "?"
        print("rank \(rank) of \(size): every collective checked in \(namespace)")
    }
}
