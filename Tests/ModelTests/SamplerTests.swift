// The samplers: greedy arg-max with ties to the smaller id, seeded reproducibility, and the top-k / top-p cuts.
import XCTest
@testable import Model

final class SamplerTests: XCTestCase {
    func testGreedyTakesTheFirstMaximum() {
        var s = GreedySampler()
        XCTAssertEqual(s.sample([0.1, 3, 3, -1], count: 4), 1)
    }

    func testTopKOneAndTinyTopPAreGreedy() {
        let logits: [Float] = [0.3, 2.0, 1.9, -4, 0]
        var k1 = RandomSampler(settings: SamplingSettings(temperature: 1.5, topK: 1, seed: 3))
        var p0 = RandomSampler(settings: SamplingSettings(temperature: 1.5, topP: 0.01, seed: 4))
        for _ in 0..<50 {
            XCTAssertEqual(k1.sample(logits, count: 5), 1)
            XCTAssertEqual(p0.sample(logits, count: 5), 1)
        }
    }

    func testTopKRestrictsAndSeedsReproduce() {
        let logits: [Float] = [1, 1.1, 0.9, 5, -2, 0]
        var a = RandomSampler(settings: SamplingSettings(temperature: 5, topK: 3, seed: 42))
        var b = RandomSampler(settings: SamplingSettings(temperature: 5, topK: 3, seed: 42))
        var seen = Set<Int>()
        for _ in 0..<500 {
            let x = a.sample(logits, count: 6)
            XCTAssertEqual(x, b.sample(logits, count: 6))
            seen.insert(x)
        }
        XCTAssertEqual(seen, [0, 1, 3])
    }

    func testSamplingFollowsTheSoftmax() {
        let logits: [Float] = [0, Float(log(3.0))]  // probabilities 1/4, 3/4 at temperature 1
        var s = RandomSampler(settings: SamplingSettings(temperature: 1, seed: 7))
        var ones = 0
        for _ in 0..<20_000 where s.sample(logits, count: 2) == 1 { ones += 1 }
        XCTAssertEqual(Double(ones) / 20_000, 0.75, accuracy: 0.015)
    }
}
