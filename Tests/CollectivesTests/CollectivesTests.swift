// Collectives on real Open MPI: this test binary started as 2 ranks by mpirun on this machine (shared memory), and as
// one rank on each of two test hosts made of network namespaces, talking TCP over a veth pair. Each rank runs
// RankBodyTests.testRankBody, which checks every collective against float64 references.
import Foundation
import XCTest
@testable import Collectives

final class CollectivesTests: XCTestCase {
    /// This test binary, run under mpirun with only the rank body selected.
    func rankBody(ranks: Int) throws -> MPIRun {
        let binary = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        var run = MPIRun(ranks: ranks, program: binary, arguments: ["CollectivesTests.RankBodyTests/testRankBody"])
        run.environment["SWIFT_BACKTRACE"] = "enable=no"
        return run
    }

    /// Asserts that every rank passed its checks; returns each rank's network namespace.
    @discardableResult
    func assertEveryRankChecked(_ result: MPIRun.Result, ranks: Int, file: StaticString = #filePath,
                                line: UInt = #line) -> [String] {
        XCTAssertFalse(result.timedOut, "mpirun timed out:\n\(result.output)", file: file, line: line)
        XCTAssertEqual(result.status, 0, "mpirun failed:\n\(result.output)", file: file, line: line)
        XCTAssertFalse(result.output.contains("with 1 test skipped"), "a rank skipped its body:\n\(result.output)",
                       file: file, line: line)
        return (0..<ranks).map { r in
            let prefix = "rank \(r) of \(ranks): every collective checked in "
            guard let line = result.output.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else {
                XCTFail("rank \(r) did not finish its checks:\n\(result.output)", file: file, line: line)
                return ""
            }
            return String(line.dropFirst(prefix.count))
        }
    }

    func testOneProcessWithoutMPIRunIsASingleRank() throws {
        try XCTSkipIf(Collectives.launchedByMPI, "this binary is running as a rank")
        let world = try Collectives.world()
        XCTAssertTrue(world is SingleProcess)
        XCTAssertEqual(world.rank, 0)
        XCTAssertEqual(world.size, 1)
        var x: [Float] = [1, 2]
        try x.withUnsafeMutableBufferPointer { try world.allreduceSum($0.baseAddress!, count: 2) }
        XCTAssertEqual(x, [1, 2])
        XCTAssertEqual(world.slice(of: 5), 0..<5)
        try world.checkAgreement(7, what: "anything")
    }

    func testTwoRanksOnOneMachine() throws {
        try XCTSkipIf(Collectives.launchedByMPI, "this binary is running as a rank")
        let run = try rankBody(ranks: 2)
        let namespaces = assertEveryRankChecked(try run.run(timeout: 120), ranks: 2)
        XCTAssertEqual(namespaces[0], namespaces[1])
        // Three ranks: sums are no longer one rounding, the slices are uneven.
        assertEveryRankChecked(try rankBody(ranks: 3).run(timeout: 120), ranks: 3)
    }

    func testTwoHostsInNetworkNamespacesOverTCP() throws {
        try XCTSkipIf(Collectives.launchedByMPI, "this binary is running as a rank")
        try XCTSkipUnless(geteuid() == 0, "network namespaces need root (CI runs as root)")
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized.path
        let hosts = try NamespaceHosts(scripts: root + "/scripts")
        defer { hosts.down() }
        var run = try rankBody(ranks: 2)
        hosts.configure(&run)
        let result = try run.run(timeout: 180)
        let namespaces = assertEveryRankChecked(result, ranks: 2)
        XCTAssertNotEqual(namespaces[0], namespaces[1], "the ranks ran on different hosts (network namespaces)")
        let own = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
        XCTAssertFalse(namespaces.contains(own), "neither rank ran in the test's own namespace")
    }
}
