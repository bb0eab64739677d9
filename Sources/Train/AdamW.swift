// AdamW over a ParameterBuffer: moments m and v carved with the same layout, bias-corrected steps, decoupled weight
// decay on matrices only (norm weights and biases are not decayed), and global gradient-norm clipping.
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

    /// The L2 norm of all gradients (padding between tensors is zero), in double precision.
    public static func gradientNorm(_ g: ParameterBuffer) -> Double {
        var sum = 0.0
        let p = g.base
        for i in 0..<g.count { sum += Double(p[i]) * Double(p[i]) }
        return sum.squareRoot()
    }

    /// One AdamW update of `parameters` from `gradients` at learning rate `lr`; returns the gradient norm before
    /// clipping. Gradients are scaled by min(1, clipNorm / norm) first.
    @discardableResult
    public func update(parameters: ParameterBuffer, gradients: ParameterBuffer, lr: Float) -> Double {
        let norm = Self.gradientNorm(gradients)
        let clip: Float = settings.clipNorm > 0 && norm > Double(settings.clipNorm) ? Float(Double(settings.clipNorm) / norm) : 1
        step += 1
        let b1 = settings.beta1, b2 = settings.beta2, eps = settings.epsilon
        let correction1 = 1 - Float(pow(Double(b1), Double(step)))
        let correction2 = 1 - Float(pow(Double(b2), Double(step)))
        for (e, decay) in zip(parameters.layout.entries, decays) {
            let p = parameters.base + e.offset, g = gradients.base + e.offset
            let mm = m.base + e.offset, vv = v.base + e.offset
            let wd = decay ? settings.weightDecay : 0
            ThreadPool.shared.parallelSlices(e.count, minimumPerSlice: 16_384) { slice in
                for i in slice {
                    let gi = g[i] * clip
                    mm[i] = b1 * mm[i] + (1 - b1) * gi
                    vv[i] = b2 * vv[i] + (1 - b2) * gi * gi
                    let mHat = mm[i] / correction1, vHat = vv[i] / correction2
                    p[i] -= lr * (mHat / (vHat.squareRoot() + eps) + wd * p[i])
                }
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
