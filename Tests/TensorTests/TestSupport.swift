// Test support: random buffers (Data's SplitMix64, so a failing case replays) and a max-abs-difference check that names the kernel.
import Data
import Tensor
import XCTest

func randomBuffer(_ shape: [Int], seed: UInt64, range: ClosedRange<Float> = -1...1) -> FloatBuffer {
    var generator = SplitMix64(seed: seed)
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


/// Runs `body` under every instruction set this CPU has (Tensor.CPU.forEachAvailable), printing which: the portable,
/// AVX2 and AVX-512 paths are all held to the same references on every machine.
func forEachISA(_ what: String, _ body: () throws -> Void) rethrows {
    try CPU.forEachAvailable { isa in
        print("[\(what) with the \(isa) kernels]")
        try body()
    }
}
