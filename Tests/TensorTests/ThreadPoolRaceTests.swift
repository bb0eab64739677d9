// ThreadPool under back-to-back jobs of alternating sizes: a worker late from a small job must never claim an index
// of the large job that follows (it once could, pairing the old generation with the new job's count: ThreadSanitizer
// reported the jobCount race). Run under `scripts/sanitizers.sh thread` this also checks the pool is race-free.
import XCTest
@testable import Tensor

final class ThreadPoolRaceTests: XCTestCase {
    func testBackToBackJobsOfAlternatingSizesRunEachIndexOnce() {
        let pool = ThreadPool(threadCount: 2)
        // One counter per index: each index belongs to one claim, so only a double claim makes two threads meet.
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: 64)
        hits.initialize(repeating: 0, count: 64)
        defer { hits.deallocate() }
        for round in 0..<5_000 {
            let n = round % 2 == 0 ? 2 : 64
            pool.parallelFor(n) { i in hits[i] += 1 }
            for i in 0..<n {
                if hits[i] != 1 { return XCTFail("round \(round): index \(i) of \(n) ran \(hits[i]) times") }
                hits[i] = 0
            }
        }
    }
}
