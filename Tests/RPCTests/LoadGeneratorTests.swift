// The load generator's per-class figures: requests of two kinds interleaved in one load are timed apart. Against a
// server whose model takes 20 ms, valid Recommend calls (class 0) are slow and invalid ones (class 1, refused before
// the model) are fast, so a call counted in the wrong class would show in the classes' medians.
import Foundation
@testable import RPC
import XCTest

final class LoadGeneratorTests: ServerFixture {
    func testInterleavedClassesAreTimedApart() throws {
        try startServer(delay: 0.02)
        var plan = LoadGenerator.Plan(port: port, method: recommend,
                                      requests: [recommendRequest(["3"], topK: 2), recommendRequest([], topK: 2)])
        plan.classes = [0, 1]
        plan.connections = 2
        plan.inFlight = 2
        plan.warmup = 0.2
        plan.duration = 1
        let r = try LoadGenerator(plan).run()
        XCTAssertEqual(r.classLatencies.count, 2)
        let (slow, fast) = (r.classLatencies[0].totalCount, r.classLatencies[1].totalCount)
        XCTAssertGreaterThan(slow, 10)
        XCTAssertGreaterThan(fast, 10)
        XCTAssertEqual(slow + fast, r.latencies.totalCount)
        XCTAssertEqual(UInt64(r.statuses[.ok] ?? 0), slow, "every valid call is class 0")
        XCTAssertEqual(UInt64(r.statuses[.invalidArgument] ?? 0), fast, "every refused call is class 1")
        XCTAssertGreaterThanOrEqual(r.percentile(50, ofClass: 0), 0.019)
        XCTAssertLessThan(r.percentile(50, ofClass: 1), 0.019)
    }
}
