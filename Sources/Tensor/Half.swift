// IEEE binary16 conversions (CKernels' half.c) on the instruction set Tensor.CPU chooses: the float16 KV cache
// stores keys and values through these.
import CKernels

public enum Half {
    /// dst[i] = binary16(src[i]) for i < count (round to nearest even, overflow to infinity, NaN kept).
    public static func convert(_ src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<UInt16>, count: Int) {
        r2ec_f32_to_f16(CPU.isa.c, src, dst, Int32(count))
    }

    /// dst[i] = Float(src[i]) for i < count (exact).
    public static func widen(_ src: UnsafePointer<UInt16>, to dst: UnsafeMutablePointer<Float>, count: Int) {
        r2ec_f16_to_f32(CPU.isa.c, src, dst, Int32(count))
    }
}
