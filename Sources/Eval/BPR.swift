// Bayesian personalised ranking (Rendle et al. 2009): SGD on sampled (user, positive, negative) triples with item
// biases, seeded and single-threaded so a seed reproduces a model. A history is folded in by the same SGD on a fresh
// user vector against the fixed items (as many steps as training gave a user with that history; seeded by the
// history, so equal histories score equally), or, with fold_in=ls, by one least-squares solve.
import Data
import Foundation

/// Defaults: the point the sweep selected on ml-100k's validation split (docs/evaluation.md).
public struct BPRConfig: Sendable, Equatable, Codable {
    public var factors = 64
    public var learningRate: Float = 0.02
    public var reg: Float = 0.002
    /// Each epoch draws as many triples as there are training interactions.
    public var epochs = 50
    public var seed: UInt64 = 0
    /// Fold-in of histories: "sgd" (the BPR objective, default) or "ls" (weighted least squares, ImplicitSolve.swift).
    public var foldIn = "sgd"
    /// Least-squares fold-in: confidence 1 + alpha, ridge reg.
    public var foldInAlpha: Float = 10
    public var foldInReg: Float = 1
    public init() {}
}

public enum BPR {
    /// Trains; `losses` receives the mean -log sigmoid(x_uij) of each epoch when given.
    public static func train(_ training: [Interaction], catalog: Catalog, numUsers: Int, config c: BPRConfig,
                             losses: ((Int, Double) -> Void)? = nil) throws -> FactorModel {
        guard !training.isEmpty else { throw EvalError.invalidInput("BPR needs training interactions") }
        guard c.foldIn == "sgd" || c.foldIn == "ls" else { throw EvalError.invalidOption("fold_in must be sgd or ls") }
        let start = Date()
        let k = c.factors, n = catalog.count
        let ui = SparseRows.userItems(training, numUsers: numUsers, numItems: n)
        var rng = SplitMix64(seed: c.seed)
        var p = (0..<(numUsers * k)).map { _ in (rng.nextUniform() - 0.5) / Float(k) }
        var q = (0..<(n * k)).map { _ in (rng.nextUniform() - 0.5) / Float(k) }
        var bias = [Float](repeating: 0, count: n)
        let users = training.map { Int32($0.user) }, items = training.map { Int32($0.item) }
        let lr = c.learningRate, reg = c.reg, count = training.count

        for epoch in 0..<c.epochs {
            var loss = 0.0
            p.withUnsafeMutableBufferPointer { p in
            q.withUnsafeMutableBufferPointer { q in
            bias.withUnsafeMutableBufferPointer { bias in
            ui.offsets.withUnsafeBufferPointer { offsets in
            ui.columns.withUnsafeBufferPointer { columns in
            users.withUnsafeBufferPointer { users in
            items.withUnsafeBufferPointer { items in
                for _ in 0..<count {
                    let s = rng.below(count)
                    let u = Int(users[s]), i = Int(items[s])
                    let row = UnsafeBufferPointer(rebasing: columns[offsets[u]..<offsets[u + 1]])
                    guard let jj = negative(&rng, n: n, excluding: row) else { continue }
                    let pu = p.baseAddress! + u * k, qi = q.baseAddress! + i * k, qj = q.baseAddress! + jj * k
                    let x = bias[i] - bias[jj] + dotDiff(pu, qi, qj, k)
                    let g = 1 / (1 + expf(x))  // sigmoid(-x)
                    if losses != nil { loss += Double(x > 0 ? log1pf(expf(-x)) : -x + log1pf(expf(x))) }
                    bias[i] += lr * (g - reg * bias[i])
                    bias[jj] += lr * (-g - reg * bias[jj])
                    step(pu, qi, qj, k, lr: lr, g: g, reg: reg)
                }
            }}}}}}}
            losses?(epoch, loss / Double(count))
        }
        let seconds = Date().timeIntervalSince(start)
        let json = "{\"kind\":\"bpr\",\"factors\":\(k),\"learning_rate\":\(lr),\"reg\":\(reg),\"epochs\":\(c.epochs)," +
            "\"seed\":\(c.seed),\"fold_in\":\"\(c.foldIn)\",\"fold_in_alpha\":\(c.foldInAlpha),\"fold_in_reg\":\(c.foldInReg)," +
            "\"training_interactions\":\(training.count),\"fit_seconds\":\(seconds)}"
        return FactorModel(kind: "bpr", catalog: catalog, configJSON: json, factors: k, itemFactors: q, itemBias: bias,
                           userFactors: p, foldInAlpha: c.foldInAlpha, foldInReg: c.foldInReg,
                           sgdFoldIn: c.foldIn == "sgd" ? c : nil)
    }

    /// A user vector for `history` by BPR SGD against fixed item factors and biases: epochs x |distinct items|
    /// triples, the expected number a training user with this history received.
    static func foldIn(_ history: UserHistory, items q: [Float], bias: [Float], k: Int, config c: BPRConfig) -> [Float] {
        var x = [Float](repeating: 0, count: k)
        let seen = Array(Set(history.items.map { Int32($0) })).sorted()
        guard !seen.isEmpty else { return x }
        // Seeded by the history, so that the same history always gets the same vector.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ c.seed
        for i in history.items { h = (h ^ UInt64(i)) &* 0x100_0000_01b3 }
        var rng = SplitMix64(seed: h)
        let n = bias.count, lr = c.learningRate, reg = c.reg
        seen.withUnsafeBufferPointer { row in
        x.withUnsafeMutableBufferPointer { x in
        q.withUnsafeBufferPointer { q in
            for _ in 0..<(c.epochs * seen.count) {
                let i = Int(row[rng.below(row.count)])
                guard let j = negative(&rng, n: n, excluding: row) else { continue }
                let qi = UnsafeMutablePointer(mutating: q.baseAddress! + i * k)
                let qj = UnsafeMutablePointer(mutating: q.baseAddress! + j * k)
                let xv = bias[i] - bias[j] + dotDiff(x.baseAddress!, qi, qj, k)
                let g = 1 / (1 + expf(xv))
                for f in 0..<k { x[f] += lr * (g * (qi[f] - qj[f]) - reg * x[f]) }  // items stay fixed
            }
        }}}
        return x
    }

    /// A uniformly drawn item not in the sorted `row`, or nil after 20 tries (a user who has almost everything).
    @inline(__always)
    static func negative(_ rng: inout SplitMix64, n: Int, excluding row: UnsafeBufferPointer<Int32>) -> Int? {
        for _ in 0..<20 {
            let j = Int32(truncatingIfNeeded: rng.below(n))
            var lo = 0, hi = row.count, found = false
            while lo < hi {
                let mid = (lo + hi) >> 1
                let v = row[mid]
                if v == j { found = true; break }
                if v < j { lo = mid + 1 } else { hi = mid }
            }
            if !found { return Int(j) }
        }
        return nil
    }

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
}

extension SplitMix64 {
    /// Uniform in 0..<n (n < 2^32) by multiply-shift, without a division.
    @inline(__always)
    mutating func below(_ n: Int) -> Int { Int(((next() >> 32) &* UInt64(n)) >> 32) }
}
