// Bayesian personalised ranking (Rendle et al. 2009): SGD on sampled (user, positive, negative) triples with item
// biases, seeded and single-threaded so a seed reproduces a model. Histories are folded in by least squares.
import Data
import Foundation

public struct BPRConfig: Sendable, Equatable, Codable {
    public var factors = 64
    public var learningRate: Float = 0.05
    public var reg: Float = 0.002
    /// Each epoch draws as many triples as there are training interactions.
    public var epochs = 50
    public var seed: UInt64 = 0
    /// Fold-in of histories: confidence 1 + alpha, ridge reg (see ImplicitSolve.swift).
    public var foldInAlpha: Float = 10
    public var foldInReg: Float = 1
    public init() {}
}

public enum BPR {
    /// p . (qi - qj), eight lanes at a time when k allows.
    @inline(__always)
    static func dotDiff(_ p: UnsafeMutablePointer<Float>, _ qi: UnsafeMutablePointer<Float>,
                        _ qj: UnsafeMutablePointer<Float>, _ k: Int) -> Float {
        var f = 0
        var acc = SIMD8<Float>()
        while f + 8 <= k {
            let a = UnsafeRawPointer(p + f).loadUnaligned(as: SIMD8<Float>.self)
            let b = UnsafeRawPointer(qi + f).loadUnaligned(as: SIMD8<Float>.self)
            let c = UnsafeRawPointer(qj + f).loadUnaligned(as: SIMD8<Float>.self)
            acc += a * (b - c)
            f += 8
        }
        var x = acc.sum()
        while f < k { x += p[f] * (qi[f] - qj[f]); f += 1 }
        return x
    }

    /// The SGD step of one triple on the three factor rows (from their values before the step).
    @inline(__always)
    static func step(_ p: UnsafeMutablePointer<Float>, _ qi: UnsafeMutablePointer<Float>,
                     _ qj: UnsafeMutablePointer<Float>, _ k: Int, lr: Float, g: Float, reg: Float) {
        var f = 0
        while f + 8 <= k {
            let a = UnsafeRawPointer(p + f).loadUnaligned(as: SIMD8<Float>.self)
            let b = UnsafeRawPointer(qi + f).loadUnaligned(as: SIMD8<Float>.self)
            let c = UnsafeRawPointer(qj + f).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(p + f).storeBytes(of: a + lr * (g * (b - c) - reg * a), as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(qi + f).storeBytes(of: b + lr * (g * a - reg * b), as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(qj + f).storeBytes(of: c + lr * (-g * a - reg * c), as: SIMD8<Float>.self)
            f += 8
        }
        while f < k {
            let a = p[f], b = qi[f], c = qj[f]
            p[f] = a + lr * (g * (b - c) - reg * a)
            qi[f] = b + lr * (g * a - reg * b)
            qj[f] = c + lr * (-g * a - reg * c)
            f += 1
        }
    }

    /// Trains; `losses` receives the mean -log sigmoid(x_uij) of each epoch when given.
    public static func train(_ training: [Interaction], catalog: Catalog, numUsers: Int, config c: BPRConfig,
                             losses: ((Int, Double) -> Void)? = nil) throws -> FactorModel {
        guard !training.isEmpty else { throw EvalError.invalidInput("BPR needs training interactions") }
        let start = Date()
        let k = c.factors, n = catalog.count
        let ui = SparseRows.userItems(training, numUsers: numUsers, numItems: n)
        var rng = SplitMix64(seed: c.seed)
        var p = (0..<(numUsers * k)).map { _ in (rng.unit() - 0.5) / Float(k) }
        var q = (0..<(n * k)).map { _ in (rng.unit() - 0.5) / Float(k) }
        var bias = [Float](repeating: 0, count: n)
        let pairs = training.map { (Int32($0.user), Int32($0.item)) }
        let lr = c.learningRate, reg = c.reg

        /// Whether user u has item j (binary search in the sorted CSR row).
        func has(_ u: Int, _ j: Int32) -> Bool {
            var lo = ui.offsets[u], hi = ui.offsets[u + 1]
            while lo < hi {
                let mid = (lo + hi) / 2
                if ui.columns[mid] == j { return true }
                if ui.columns[mid] < j { lo = mid + 1 } else { hi = mid }
            }
            return false
        }

        for epoch in 0..<c.epochs {
            var loss = 0.0
            p.withUnsafeMutableBufferPointer { p in
                q.withUnsafeMutableBufferPointer { q in
                    bias.withUnsafeMutableBufferPointer { bias in
                        for _ in 0..<pairs.count {
                            let (u32, i32) = pairs[Int(rng.next() % UInt64(pairs.count))]
                            let u = Int(u32), i = Int(i32)
                            var j = Int32(truncatingIfNeeded: rng.next() % UInt64(n))
                            var tries = 0
                            while has(u, j) && tries < 20 { j = Int32(truncatingIfNeeded: rng.next() % UInt64(n)); tries += 1 }
                            if has(u, j) { continue }
                            let jj = Int(j)
                            let pu = p.baseAddress! + u * k, qi = q.baseAddress! + i * k, qj = q.baseAddress! + jj * k
                            let x = bias[i] - bias[jj] + BPR.dotDiff(pu, qi, qj, k)
                            let g = 1 / (1 + expf(x))  // sigmoid(-x)
                            loss += Double(x > 0 ? log1pf(expf(-x)) : -x + log1pf(expf(x)))
                            bias[i] += lr * (g - reg * bias[i])
                            bias[jj] += lr * (-g - reg * bias[jj])
                            BPR.step(pu, qi, qj, k, lr: lr, g: g, reg: reg)
                        }
                    }
                }
            }
            losses?(epoch, loss / Double(pairs.count))
        }
        let seconds = Date().timeIntervalSince(start)
        let json = "{\"kind\":\"bpr\",\"factors\":\(k),\"learning_rate\":\(lr),\"reg\":\(reg),\"epochs\":\(c.epochs)," +
            "\"seed\":\(c.seed),\"fold_in_alpha\":\(c.foldInAlpha),\"fold_in_reg\":\(c.foldInReg)," +
            "\"training_interactions\":\(training.count),\"fit_seconds\":\(seconds)}"
        return FactorModel(kind: "bpr", catalog: catalog, configJSON: json, factors: k, itemFactors: q, itemBias: bias,
                           userFactors: p, foldInAlpha: c.foldInAlpha, foldInReg: c.foldInReg)
    }
}
