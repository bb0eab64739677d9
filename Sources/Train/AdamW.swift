// AdamW over a ParameterBuffer: moments m and v carved with the same layout, bias-corrected steps, decoupled weight
// decay on matrices only (norm weights and biases are not decayed), and global gradient-norm clipping.
import CKernels
import Foundation
import Model
import Tensor

public struct AdamWSettings: Codable, Sendable, Equatable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.95
    public var epsilon: Float = 1e-8
    public var weightDecay: Float = 0.0
    /// Clip the global gradient norm to this (0: no clipping).
    public var clipNorm: Float = 1.0
    public init() {}
}

public final class AdamW: @unchecked Sendable {
    public let settings: AdamWSettings
    public let m: ParameterBuffer
    public let v: ParameterBuffer
    /// Updates taken so far (the bias correction uses step + 1 for the next one).
    public var step: Int = 0
    /// Per layout entry: whether weight decay applies (two-dimensional tensors).
    private let decays: [Bool]

    public init(layout: ParameterLayout, settings: AdamWSettings) {
        self.settings = settings
        m = ParameterBuffer(layout: layout)
        v = ParameterBuffer(layout: layout)
        decays = layout.entries.map { $0.shape.count == 2 }
    }

    /// The L2 norm of all gradients (padding between tensors is zero), squares and sums in double precision.
    public static func gradientNorm(_ g: ParameterBuffer) -> Double {
        let isa = CPU.isa.c, pool = ThreadPool.shared
        let slices = max(1, min(pool.threadCount, g.count / 65_536))
        var sums = [Double](repeating: 0, count: slices)
        sums.withUnsafeMutableBufferPointer { out in
            pool.parallelFor(slices) { s in
                let i0 = g.count * s / slices, i1 = g.count * (s + 1) / slices
                out[s] = r2ec_sum_squares(isa, g.base + i0, i1 - i0)
            }
        }
        return sums.reduce(0, +).squareRoot()
    }

    /// One AdamW update of `parameters` from `gradients` at learning rate `lr`; returns the gradient norm before
    /// clipping. Gradients are scaled by min(1, clipNorm / norm) first. One pass of CKernels' r2ec_adamw per tensor
    /// piece, the whole buffer split evenly over the pool (small tensors share a thread's slice).
    @discardableResult
    public func update(parameters: ParameterBuffer, gradients: ParameterBuffer, lr: Float) -> Double {
        let norm = Self.gradientNorm(gradients)
        let clip: Float = settings.clipNorm > 0 && norm > Double(settings.clipNorm) ? Float(Double(settings.clipNorm) / norm) : 1
        step += 1
        let b1 = settings.beta1, b2 = settings.beta2
        let constants = r2ec_adamw_step(
            clip: clip, beta1: b1, beta2: b2, correction1: 1 - Float(pow(Double(b1), Double(step))),
            correction2: 1 - Float(pow(Double(b2), Double(step))), lr: lr, epsilon: settings.epsilon, weight_decay: 0)
        let entries = parameters.layout.entries, decays = self.decays, weightDecay = settings.weightDecay
        let total = entries.map { $0.offset + $0.count }.max() ?? 0
        let isa = CPU.isa.c, pool = ThreadPool.shared
        let slices = max(1, min(pool.threadCount, total / 65_536))
        pool.parallelFor(slices) { s in
            let lower = total * s / slices, upper = total * (s + 1) / slices
            var k = constants
            for (e, decay) in zip(entries, decays) {
                let i0 = max(lower, e.offset), i1 = min(upper, e.offset + e.count)
                if i0 >= i1 { continue }
                k.weight_decay = decay ? weightDecay : 0
                r2ec_adamw(isa, parameters.base + i0, gradients.base + i0, m.base + i0, v.base + i0, i1 - i0, &k)
            }
        }
        return norm
    }
}

/// Learning rate by step: linear warm-up from lr/warmup to lr over `warmup` steps, then constant or cosine down to
/// lr * minRatio at `total` steps.
public struct LearningRateSchedule: Codable, Sendable, Equatable {
    public enum Decay: String, Codable, Sendable { case constant, cosine }
    public var peak: Float
    public var warmup: Int
    public var total: Int
    public var decay: Decay
    public var minRatio: Float

    public init(peak: Float, warmup: Int, total: Int, decay: Decay = .constant, minRatio: Float = 0.1) {
        self.peak = peak; self.warmup = warmup; self.total = total; self.decay = decay; self.minRatio = minRatio
    }

    /// The rate for update `step` (0-based).
    public func rate(_ step: Int) -> Float {
        if step < warmup { return peak * Float(step + 1) / Float(warmup) }
        switch decay {
        case .constant: return peak
        case .cosine:
            let span = max(1, total - warmup)
            let progress = min(1, Double(step - warmup) / Double(span))
            let cosine = 0.5 * (1 + cos(Double.pi * progress))
            return peak * (minRatio + (1 - minRatio) * Float(cosine))
        }
    }
}
