// Serving side of a factor baseline (WALS, BPR): fixed item factors (and biases); a history is folded in with one
// regularised weighted least-squares solve against the item factors (`ImplicitSolver`; BPR by default refits the
// user vector with its own SGD instead, BPR.swift), then all items are scored
// with one GEMM per batch. Immutable after construction, so safe for concurrent reads.
import COpenBLAS
import Data
import Foundation
import Tensor

public final class FactorModel: Recommender {
    public let kind: String
    public let catalog: Catalog
    public let configJSON: String
    public let factors: Int
    /// Items x factors, row-major.
    public let itemFactors: [Float]
    /// Per-item additive score (BPR's item bias); zeros for WALS.
    public let itemBias: [Float]
    /// Users x factors from training (for embedding maps); scoring never uses them, it folds histories in.
    public let userFactors: [Float]
    let solver: ImplicitSolver
    /// BPR's own fold-in (SGD against the fixed items) when set; else the least-squares solve.
    let sgdFoldIn: BPRConfig?

    init(kind: String, catalog: Catalog, configJSON: String, factors: Int, itemFactors: [Float], itemBias: [Float]?,
         userFactors: [Float], foldInAlpha: Float, foldInReg: Float, sgdFoldIn: BPRConfig? = nil) {
        self.sgdFoldIn = sgdFoldIn
        self.kind = kind
        self.catalog = catalog
        self.configJSON = configJSON
        self.factors = factors
        self.itemFactors = itemFactors
        self.itemBias = itemBias ?? [Float](repeating: 0, count: catalog.count)
        self.userFactors = userFactors
        self.solver = ImplicitSolver(factors: itemFactors, k: factors, alpha: foldInAlpha, reg: foldInReg)
    }

    public var numParameters: Int { itemFactors.count + userFactors.count + (kind == "bpr" ? itemBias.count : 0) }

    /// The folded-in user vector of a history (k floats).
    public func foldIn(_ history: UserHistory) throws -> [Float] {
        for i in history.items where i < 0 || i >= catalog.count {
            throw RecommenderError.invalidQuery("history item index \(i) is outside the catalogue of \(catalog.count)")
        }
        if let c = sgdFoldIn { return BPR.foldIn(history, items: itemFactors, bias: itemBias, k: factors, config: c) }
        let row = SparseRows.row(history)
        var x = [Float](repeating: 0, count: factors)
        var w = ImplicitSolver.Workspace(k: factors, maxRow: row.columns.count)
        try row.columns.withUnsafeBufferPointer { c in
            try row.values.withUnsafeBufferPointer { v in
                try x.withUnsafeMutableBufferPointer { try solver.solve(columns: c, values: v, into: $0.baseAddress!, workspace: &w) }
            }
        }
        return x
    }

    public func scoreAll(_ histories: [UserHistory]) throws -> [Float] {
        let n = catalog.count, k = factors, b = histories.count
        guard b > 0 else { return [] }
        var users = [Float]()
        users.reserveCapacity(b * k)
        for h in histories { users.append(contentsOf: try foldIn(h)) }
        var out = [Float](repeating: 0, count: b * n)
        for q in 0..<b { for i in 0..<n { out[q * n + i] = itemBias[i] } }
        BLAS.configure()
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(b), Int32(n), Int32(k), 1, users, Int32(k),
                    itemFactors, Int32(k), 1, &out, Int32(n))
        return out
    }

    /// Scores of every item for users seen in training, from their trained vectors (no fold-in).
    public func scoreTrainedUsers(_ users: [Int]) throws -> [Float] {
        let n = catalog.count, k = factors, numUsers = userFactors.count / max(1, k)
        var x = [Float]()
        x.reserveCapacity(users.count * k)
        for u in users {
            guard u >= 0 && u < numUsers else { throw RecommenderError.invalidQuery("user \(u) was not in training") }
            x.append(contentsOf: userFactors[(u * k)..<((u + 1) * k)])
        }
        var out = [Float](repeating: 0, count: users.count * n)
        for q in 0..<users.count { for i in 0..<n { out[q * n + i] = itemBias[i] } }
        if !users.isEmpty {
            BLAS.configure()
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(users.count), Int32(n), Int32(k), 1, x, Int32(k),
                        itemFactors, Int32(k), 1, &out, Int32(n))
        }
        return out
    }

    /// Cosine similarity of item factors.
    public func similarities(to item: Int) throws -> [Float] {
        guard item >= 0 && item < catalog.count else {
            throw RecommenderError.invalidQuery("item index \(item) is outside the catalogue of \(catalog.count)")
        }
        let n = catalog.count, k = factors
        var dots = [Float](repeating: 0, count: n)
        BLAS.configure()
        itemFactors.withUnsafeBufferPointer { y in
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), 1, y.baseAddress, Int32(k),
                        y.baseAddress! + item * k, 1, 0, &dots, 1)
        }
        let norm = { (i: Int) -> Float in
            var s: Float = 0
            for j in 0..<k { s += self.itemFactors[i * k + j] * self.itemFactors[i * k + j] }
            return s.squareRoot()
        }
        let ni = norm(item)
        return (0..<n).map { j in
            let d = ni * norm(j)
            return d > 0 ? dots[j] / d : 0
        }
    }
}
