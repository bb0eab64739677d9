// SiLU and SwiGLU: silu(x) = x * sigmoid(x); swiglu = silu(gate) * up, from two buffers or from one fused
// [rows, 2*ffn] buffer holding [gate | up] per row (the output of one stacked gate+up Linear).
// SwiGLU runs CKernels' r2ec_swiglu (per instruction set); its backward (Train) reads the fused gate|up buffer,
// recomputing sigmoid(gate).
import CKernels
import Foundation

public enum SiLU {
    /// out[count] = input * sigmoid(input). out may alias input.
    public static func forward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        ThreadPool.shared.parallelSlices((count + vectorWidth - 1) / vectorWidth, minimumPerSlice: 2048) { slice in
            let start = slice.lowerBound * vectorWidth, end = min(count, slice.upperBound * vectorWidth)
            var j = start
            while j + vectorWidth <= end { storeVector(silu(loadVector(input + j)), out + j); j += vectorWidth }
            if j < end { storePartial(silu(loadPartial(input + j, end - j)), out + j, end - j) }
        }
    }

    /// The naive twin: scalar loop with Foundation's exp.
    public static func forwardNaive(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        for j in 0..<count { out[j] = input[j] / (1 + Foundation.exp(-input[j])) }
    }

    @inline(__always) static func silu(_ x: FloatVector) -> FloatVector { x / (1 + vectorExp(-x)) }
}

public enum SwiGLU {
    /// out[rows, ffn] = silu(gate[r, j]) * up[r, j]; gate and up rows start every gateStride / upStride floats
    /// (ffn when packed). out may alias gate or up when the strides are ffn.
    public static func forward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>,
                               up: UnsafePointer<Float>, rows: Int, ffn: Int,
                               gateStride: Int? = nil, upStride: Int? = nil) {
        let gateStride = gateStride ?? ffn, upStride = upStride ?? ffn
        let isa = CPU.isa.c
        ThreadPool.shared.parallelSlices(rows, minimumPerSlice: max(1, 32_768 / max(ffn, 1))) { slice in
            let r0 = slice.lowerBound
            r2ec_swiglu(isa, out + r0 * ffn, gate + r0 * gateStride, gateStride, up + r0 * upStride, upStride,
                        Int32(slice.count), Int32(ffn))
        }
    }

    /// out[rows, ffn] = silu(gateUp[r, 0..<ffn]) * gateUp[r, ffn..<2ffn]: gate first, then up, in each row.
    public static func forwardFused(out: UnsafeMutablePointer<Float>, gateUp: UnsafePointer<Float>,
                                    rows: Int, ffn: Int) {
        forward(out: out, gate: gateUp, up: gateUp + ffn, rows: rows, ffn: ffn, gateStride: 2 * ffn,
                upStride: 2 * ffn)
    }

    /// The naive twin of `forward`.
    public static func forwardNaive(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>,
                                    up: UnsafePointer<Float>, rows: Int, ffn: Int,
                                    gateStride: Int? = nil, upStride: Int? = nil) {
        let gateStride = gateStride ?? ffn, upStride = upStride ?? ffn
        for r in 0..<rows {
            for j in 0..<ffn {
                let g = gate[r * gateStride + j]
                out[r * ffn + j] = g / (1 + Foundation.exp(-g)) * up[r * upStride + j]
            }
        }
    }

    /// The naive twin of `forwardFused`.
    public static func forwardFusedNaive(out: UnsafeMutablePointer<Float>, gateUp: UnsafePointer<Float>,
                                         rows: Int, ffn: Int) {
        forwardNaive(out: out, gate: gateUp, up: gateUp + ffn, rows: rows, ffn: ffn, gateStride: 2 * ffn,
                     upStride: 2 * ffn)
    }
}
