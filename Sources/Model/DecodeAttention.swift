// Attention of one query row per head against a sequence's cached keys/values (a decode step): CKernels' AVX-512 or
// AVX2 kernel (Tensor.CPU.isa), else these portable SIMD loops. At this size (a few hundred keys of 64 floats) BLAS
// call and packing overheads would cost more than the math. (`a += b * c` and a halving sum, not SIMD's
// addingProduct/sum(): without an FMA target flag those lower to scalar calls, 17x slower here.)
import CKernels
import Foundation
import Tensor

enum DecodeAttention {
    @inline(__always) static func horizontalSum(_ v: SIMD16<Float>) -> Float {
        let h8 = v.lowHalf + v.highHalf, h4 = h8.lowHalf + h8.highHalf, h2 = h4.lowHalf + h4.highHalf
        return h2[0] + h2[1]
    }

    /// out[h] = softmax(scale * q[h] · K^T) · V for the `heads` consecutive query heads at q (headDim apart),
    /// keys/values rows 0..<context (elements of `precision`) with row stride `stride`; headDim a multiple of 16.
    /// `scores` holds heads * context floats.
    static func forward(queries q: UnsafePointer<Float>, heads: Int, keys: UnsafeRawPointer, values: UnsafeRawPointer,
                        precision: KVPrecision, stride: Int, context: Int, headDim hd: Int, scale: Float,
                        scores: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
        precondition(hd % 16 == 0)
        let isa = CPU.isa
        switch (precision, isa >= .avx2) {
        case (.float32, true):
            r2ec_decode_attention(isa.c, q, Int32(heads), keys.assumingMemoryBound(to: Float.self),
                                  values.assumingMemoryBound(to: Float.self), Int32(stride), Int32(context), Int32(hd),
                                  scale, scores, out)
        case (.float16, true):
            r2ec_decode_attention_f16(isa.c, q, Int32(heads), keys.assumingMemoryBound(to: UInt16.self),
                                      values.assumingMemoryBound(to: UInt16.self), Int32(stride), Int32(context),
                                      Int32(hd), scale, scores, out)
        case (.float32, false):
            forwardPortable(queries: q, heads: heads, keys: keys.assumingMemoryBound(to: Float.self),
                            values: values.assumingMemoryBound(to: Float.self), stride: stride, context: context,
                            headDim: hd, scale: scale, scores: scores, out: out)
        case (.float16, false):
            let widened = widen(keys: keys, values: values, stride: stride, rows: context, width: hd)
            defer { widened.deallocate() }
            forwardPortable(queries: q, heads: heads, keys: widened, values: widened + context * hd, stride: hd,
                            context: context, headDim: hd, scale: scale, scores: scores, out: out)
        }
    }

    /// Float32 copies of `rows` float16 key rows and value rows (row stride `stride` elements, `width` used): keys
    /// at [0, rows * width), values after them, rows `width` apart. The caller deallocates.
    static func widen(keys: UnsafeRawPointer, values: UnsafeRawPointer, stride: Int, rows: Int,
                      width: Int) -> UnsafeMutablePointer<Float> {
        let out = UnsafeMutablePointer<Float>.allocate(capacity: 2 * rows * width)
        for (halves, base) in [(keys, out), (values, out + rows * width)] {
            let h = halves.assumingMemoryBound(to: UInt16.self)
            for r in 0..<rows { Half.widen(h + r * stride, to: base + r * width, count: width) }
        }
        return out
    }

    /// The portable path (Swift SIMD without target flags).
    static func forwardPortable(queries q: UnsafePointer<Float>, heads: Int, keys: UnsafePointer<Float>,
                                values: UnsafePointer<Float>, stride: Int, context: Int, headDim hd: Int, scale: Float,
                                scores: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
        let vectors = hd / 16
        @inline(__always) func load(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
            UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
        }
        for h in 0..<heads {
            let qh = q + h * hd, row = scores + h * context
            for j in 0..<context {
                let k = keys + j * stride
                var acc = load(qh) * load(k)
                for v in 1..<vectors { acc += load(qh + 16 * v) * load(k + 16 * v) }
                row[j] = horizontalSum(acc) * scale
            }
        }
        Softmax.forward(out: scores, input: scores, rows: heads, cols: context)
        for h in 0..<heads {
            let row = scores + h * context, target = out + h * hd
            var v = 0
            // Four accumulators (one 64-float head) per pass keep the loop in registers.
            while v < vectors {
                let n = min(4, vectors - v)
                var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
                for j in 0..<context {
                    let p = row[j], base = values + j * stride + 16 * v
                    a0 += p * load(base)
                    if n > 1 { a1 += p * load(base + 16) }
                    if n > 2 { a2 += p * load(base + 32) }
                    if n > 3 { a3 += p * load(base + 48) }
                }
                @inline(__always) func store(_ a: SIMD16<Float>, _ i: Int) {
                    UnsafeMutableRawPointer(target + 16 * (v + i)).storeBytes(of: a, as: SIMD16<Float>.self)
                }
                store(a0, 0)
                if n > 1 { store(a1, 1) }
                if n > 2 { store(a2, 2) }
                if n > 3 { store(a3, 3) }
                v += n
            }
        }
    }
}
