// Dropout for the training graph: masks of 0 (probability p, to 1/65536) or 1/(1-p) drawn from a counter-based hash of
// (seed, site, element), so a step's masks depend only on its seed (a resumed run draws the same ones) and are
// filled in parallel without a shared generator state. Forward multiplies by the mask; backward by the same mask.
import Tensor

enum Dropout {
    /// Fills mask[0..<count] for one site (embedding, a layer's attention or MLP branch) of one step.
    /// `offset`: elements of a larger mask before this one (mask[i] is element offset + i of it).
    static func fillMask(_ mask: UnsafeMutablePointer<Float>, count: Int, p: Float, seed: UInt64, site: UInt64,
                         offset: Int = 0) {
        precondition(p >= 0 && p < 1, "dropout must be in [0, 1)")
        let keep = 1 / (1 - p)
        // Element i takes 16 bits of mix(base + i / 4) as its uniform and is dropped when they are below p * 2^16.
        let threshold = UInt64((Double(p) * 65536).rounded())
        let origin = mix(seed ^ (site &* 0xD1B5_4A32_D192_ED03))
        if offset % 4 != 0 {
            // Not on a word boundary: each element finds its own word and 16 bits.
            ThreadPool.shared.parallelSlices(count, minimumPerSlice: 16384) { elements in
                for i in elements {
                    let g = offset + i
                    let bits = mix(origin &+ UInt64(g / 4)) >> UInt64(16 * (g % 4))
                    mask[i] = bits & 0xFFFF < threshold ? 0 : keep
                }
            }
            return
        }
        let base = origin &+ UInt64(offset / 4)
        ThreadPool.shared.parallelSlices((count + 3) / 4, minimumPerSlice: 4096) { words in
            for word in words {
                var bits = mix(base &+ UInt64(word))
                for i in (4 * word)..<min(count, 4 * word + 4) {
                    mask[i] = bits & 0xFFFF < threshold ? 0 : keep
                    bits >>= 16
                }
            }
        }
    }

    /// x[i] *= mask[i].
    static func apply(_ x: UnsafeMutablePointer<Float>, mask: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { x[i] *= mask[i] }
    }

    /// out[i] = residual[i] + mask[i] * branch[i].
    static func addMasked(out: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>, branch: UnsafePointer<Float>,
                          mask: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { out[i] = residual[i] + mask[i] * branch[i] }
    }

    /// out[i] = mask[i] * x[i].
    static func masked(out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, mask: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { out[i] = mask[i] * x[i] }
    }

    /// SplitMix64's finaliser: a bijective 64-bit mix.
    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
