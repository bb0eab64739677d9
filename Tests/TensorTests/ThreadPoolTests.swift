// ThreadPool: every index runs exactly once, nested and concurrent calls complete (inline), n = 0 and 1 work.
import XCTest
import Synchronization
@testable import Tensor

final class ThreadPoolTests: XCTestCase {
    func testEveryIndexRunsOnce() {
        for n in [0, 1, 2, 3, 1000] {
            let hits = FloatBuffer(shape: [max(n, 1)])
            ThreadPool.shared.parallelFor(n) { i in hits.data[i] += 1 }
            for i in 0..<n { XCTAssertEqual(hits.data[i], 1, "index \(i) of \(n)") }
        }
    }

    func testNestedCallsRunInline() {
        let hits = FloatBuffer(shape: [8, 8])
        ThreadPool.shared.parallelFor(8) { i in
            ThreadPool.shared.parallelFor(8) { j in hits.data[i * 8 + j] += 1 }
        }
        XCTAssertEqual(hits.toArray(), [Float](repeating: 1, count: 64))
    }

    func testConcurrentCallersAllFinish() {
        let total = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<200 {
                ThreadPool.shared.parallelFor(10) { _ in total.wrappingAdd(1, ordering: .relaxed) }
            }
        }
        XCTAssertEqual(total.load(ordering: .relaxed), 4 * 200 * 10)
    }

    func testSlicesCoverTheRangeExactly() {
        for n in [1, 5, 1001] {
            let hits = FloatBuffer(shape: [n])
            ThreadPool.shared.parallelSlices(n, minimumPerSlice: 2) { range in for i in range { hits.data[i] += 1 } }
            XCTAssertEqual(hits.toArray(), [Float](repeating: 1, count: n))
        }
    }

    func testManyBackToBackJobsLoseNoWork() {
        // Exercises the spin/sleep hand-offs: jobs arrive faster than a futex wake-up, and after idle gaps.
        let total = Atomic<Int>(0)
        for round in 0..<20_000 {
            ThreadPool.shared.parallelFor(3) { _ in total.wrappingAdd(1, ordering: .relaxed) }
            if round % 5_000 == 0 { usleep(2_000) }
        }
        XCTAssertEqual(total.load(ordering: .relaxed), 60_000)
    }
}
