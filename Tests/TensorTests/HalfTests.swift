// The float16 conversions of the KV cache against Swift's own Float16 (an independent implementation of IEEE
// binary16 rounding): every half bit pattern widens exactly, and floats round to nearest even, including ties,
// subnormals, overflow to infinity, signed zeros and NaN; under every instruction set this CPU has (AVX-512 16 at a
// time, F16C 8 at a time, the portable bit manipulation), the scalar tails too (odd counts).
import Tensor
import XCTest

final class HalfTests: XCTestCase {
    func testEveryHalfWidensExactly() {
        forEachISA("testEveryHalfWidensExactly") {
            let halves = (0...UInt16.max).map { $0 }
            var floats = [Float](repeating: 0, count: halves.count)
            Half.widen(halves, to: &floats, count: halves.count)
            for (h, f) in zip(halves, floats) {
                let expected = Float(Float16(bitPattern: h))
                if expected.isNaN { XCTAssertTrue(f.isNaN, "half \(h)"); continue }
                XCTAssertEqual(f.bitPattern, expected.bitPattern, "half \(String(h, radix: 16))")
            }
        }
    }

    func testFloatsRoundToNearestEven() {
        forEachISA("testFloatsRoundToNearestEven") {
            var values: [Float] = [0, -0, 1, -1, 65504, 65519.99, 65520, 65536, 1e9, -1e9, .infinity, -.infinity,
                                   6.1035156e-05, 6.0e-08, 5.96e-08, 2.98e-08, 2.99e-08, 1e-10, -3.0e-06,
                                   1.00048828125, 1.0009765625, 1.00146484375, 2049, 2051]   // ties at 1 + 2^-11 etc.
            var rng = SystemRandomNumberGenerator()
            for _ in 0..<20_000 {   // random bit patterns across the whole float range
                values.append(Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng)))
            }
            for _ in 0..<20_000 { values.append(Float.random(in: -70_000...70_000, using: &rng)) }
            for _ in 0..<20_000 { values.append(Float.random(in: -1e-4...1e-4, using: &rng)) }
            values.append(1)   // an odd count: the scalar tail runs too
            var halves = [UInt16](repeating: 0, count: values.count)
            Half.convert(values, to: &halves, count: values.count)
            for (f, h) in zip(values, halves) {
                let expected = Float16(f)
                if expected.isNaN { XCTAssertTrue(Float16(bitPattern: h).isNaN, "float \(f)"); continue }
                XCTAssertEqual(h, expected.bitPattern, "float \(f) (\(String(f.bitPattern, radix: 16)))")
            }
        }
    }
}
