// The decode attention kernels (AVX-512 and AVX2 in CKernels, the portable Swift SIMD path, each forced through
// Tensor.CPU on every machine that has it; float32 and float16 keys/values) against a float64 loop over the definition: softmax(scale · q · K^T) · V per head, keys/values with a row stride
// wider than a head. Float16 inputs are compared with the definition over the same values rounded to halves.
import Data
import XCTest
@testable import Model
import Tensor

final class DecodeAttentionTests: XCTestCase {
    func reference(q: [Float], heads: Int, keys: [Float], values: [Float], stride: Int, context: Int, hd: Int,
                   scale: Float) -> [Double] {
        var out = [Double](repeating: 0, count: heads * hd)
        for h in 0..<heads {
            let s = (0..<context).map { j in (0..<hd).reduce(0.0) { $0 + Double(q[h * hd + $1]) * Double(keys[j * stride + $1]) } * Double(scale) }
            let m = s.max()!, e = s.map { Foundation.exp($0 - m) }, z = e.reduce(0, +)
            for d in 0..<hd { out[h * hd + d] = (0..<context).reduce(0.0) { $0 + e[$1] / z * Double(values[$1 * stride + d]) } }
        }
        return out
    }

    func testKernelsMatchFloat64Definition() {
        CPU.forEachAvailable { isa in
            print("decode attention with the \(isa) kernels")
            kernelsMatchFloat64Definition()
        }
    }

    func kernelsMatchFloat64Definition() {
        var rng = SplitMix64(seed: 9)
        for (heads, context, hd) in [(1, 1, 16), (2, 17, 64), (2, 160, 64), (4, 33, 48), (1, 300, 128), (3, 5, 80)] {
            let stride = 2 * hd + 8
            let q = (0..<(heads * hd)).map { _ in rng.nextGaussian() }
            let keys = (0..<(context * stride)).map { _ in rng.nextGaussian() }
            let values = (0..<(context * stride)).map { _ in rng.nextGaussian() }
            let scale = 1 / Float(hd).squareRoot()
            let expected = reference(q: q, heads: heads, keys: keys, values: values, stride: stride, context: context,
                                     hd: hd, scale: scale)
            var scores = [Float](repeating: 0, count: heads * context)
            for path in ["dispatched", "portable"] {
                var out = [Float](repeating: .nan, count: heads * hd)
                if path == "dispatched" {
                    DecodeAttention.forward(queries: q, heads: heads, keys: keys, values: values, precision: .float32,
                                            stride: stride, context: context, headDim: hd, scale: scale,
                                            scores: &scores, out: &out)
                } else {
                    DecodeAttention.forwardPortable(queries: q, heads: heads, keys: keys, values: values, stride: stride,
                                                    context: context, headDim: hd, scale: scale, scores: &scores, out: &out)
                }
                let worst = zip(out, expected).map { abs(Double($0) - $1) }.max()!
                XCTAssertLessThan(worst, 2e-5, "\(CPU.isa) \(path) heads \(heads) context \(context) head_dim \(hd)")
            }
            // Float16 keys and values.
            let keyHalves = keys.map { Float16($0).bitPattern }, valueHalves = values.map { Float16($0).bitPattern }
            let expectedHalf = reference(q: q, heads: heads, keys: keys.map { Float(Float16($0)) },
                                         values: values.map { Float(Float16($0)) }, stride: stride, context: context,
                                         hd: hd, scale: scale)
            var out = [Float](repeating: .nan, count: heads * hd)
            DecodeAttention.forward(queries: q, heads: heads, keys: keyHalves, values: valueHalves, precision: .float16,
                                    stride: stride, context: context, headDim: hd, scale: scale, scores: &scores, out: &out)
            let worst = zip(out, expectedHalf).map { abs(Double($0) - $1) }.max()!
            XCTAssertLessThan(worst, 2e-5, "\(CPU.isa) float16 heads \(heads) context \(context) head_dim \(hd)")
        }
    }
}
