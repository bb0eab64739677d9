// The open-loop Poisson arrivals against the exponential distribution's known moments (mean and standard deviation
// 1/rate, P(gap > 1/rate) = 1/e) and the Poisson counts' dispersion (variance = mean per window).
import Foundation
import RPC
import XCTest

final class PoissonArrivalsTests: XCTestCase {
    func testGapsAreExponentialAndCountsPoisson() {
        let rate = 50.0
        var arrivals = PoissonArrivals(rate: rate, seed: 7)
        let gaps = (0..<200_000).map { _ in arrivals.nextGap() }
        let mean = gaps.reduce(0, +) / Double(gaps.count)
        let sd = (gaps.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(gaps.count - 1)).squareRoot()
        XCTAssertEqual(mean, 1 / rate, accuracy: 0.01 / rate)
        XCTAssertEqual(sd, 1 / rate, accuracy: 0.02 / rate)
        XCTAssertEqual(Double(gaps.filter { $0 > 1 / rate }.count) / Double(gaps.count), exp(-1), accuracy: 0.005)
        XCTAssertTrue(gaps.allSatisfy { $0 >= 0 && $0.isFinite })
        // Arrivals per one-second window: mean 50 and, for a Poisson process, variance 50 too (evenly spaced
        // calls would have variance 0).
        var counts: [Double] = []
        var t = 0.0, window = 1.0, n = 0.0
        for gap in gaps {
            t += gap
            while t >= window { counts.append(n); n = 0; window += 1 }
            n += 1
        }
        let countMean = counts.reduce(0, +) / Double(counts.count)
        let variance = counts.map { ($0 - countMean) * ($0 - countMean) }.reduce(0, +) / Double(counts.count - 1)
        XCTAssertEqual(countMean, rate, accuracy: 1)
        XCTAssertEqual(variance / countMean, 1, accuracy: 0.15)
    }

    func testSeedReproducesTheSequence() {
        var a = PoissonArrivals(rate: 10, seed: 3), b = PoissonArrivals(rate: 10, seed: 3), c = PoissonArrivals(rate: 10, seed: 4)
        let x = (0..<5).map { _ in a.nextGap() }
        XCTAssertEqual(x, (0..<5).map { _ in b.nextGap() })
        XCTAssertNotEqual(x, (0..<5).map { _ in c.nextGap() })
    }
}
