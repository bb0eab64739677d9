// Test support: a seeded generator, random buffers and a max-abs-difference check that names the kernel.
import XCTest
import Tensor

/// SplitMix64: deterministic across platforms, so a failing case replays.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func randomBuffer(_ shape: [Int], seed: UInt64, range: ClosedRange<Float> = -1...1) -> FloatBuffer {
    var generator = SeededGenerator(seed: seed)
    return FloatBuffer(shape: shape) { _ in Float.random(in: range, using: &generator) }
}

func maxAbsDifference(_ a: FloatBuffer, _ b: FloatBuffer) -> Float {
    precondition(a.count == b.count)
    var worst: Float = 0
    for i in 0..<a.count {
        let d = abs(a.data[i] - b.data[i])
        if d.isNaN || a.data[i].isNaN != b.data[i].isNaN { return .infinity }
        worst = max(worst, d)
    }
    return worst
}

func assertClose(_ actual: FloatBuffer, _ expected: FloatBuffer, tolerance: Float, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    let difference = maxAbsDifference(actual, expected)
    XCTAssertLessThanOrEqual(difference, tolerance, "\(what): max |difference| \(difference) > \(tolerance)",
                             file: file, line: line)
}
