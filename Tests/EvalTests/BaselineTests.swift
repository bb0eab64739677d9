import COpenBLAS
import Data
import Foundation
import XCTest
@testable import Eval
import Tensor

final class BaselineTests: XCTestCase {
    /// Two blocks: users 0-3 like items 0-3, users 4-7 like items 4-7 (each user misses one item of its block).
    func blocks() -> (xs: [Interaction], catalog: Catalog) {
        var xs: [Interaction] = []
        for u in 0..<8 {
            let base = u < 4 ? 0 : 4
            for i in 0..<4 where i != u % 4 { xs.append(Interaction(user: u, item: base + i, rating: 4, timestamp: Int64(i))) }
        }
        return (xs, Catalog(items: (0..<8).map { Item(id: String($0)) }))
    }

    /// Solves A x = b in Double by Gaussian elimination with partial pivoting.
    func solve(_ a0: [[Double]], _ b0: [Double]) -> [Double] {
        var a = a0, b = b0
        let n = b.count
        for c in 0..<n {
            let p = (c..<n).max { abs(a[$0][c]) < abs(a[$1][c]) }!
            a.swapAt(c, p); b.swapAt(c, p)
            for r in (c + 1)..<n {
                let f = a[r][c] / a[c][c]
                for k in c..<n { a[r][k] -= f * a[c][k] }
                b[r] -= f * b[c]
            }
        }
        var x = [Double](repeating: 0, count: n)
        for r in stride(from: n - 1, through: 0, by: -1) {
            var s = b[r]
            for k in (r + 1)..<n { s -= a[r][k] * x[k] }
            x[r] = s / a[r][r]
        }
        return x
    }

    func testWALSFoldInMatchesDirectFloat64LeastSquares() throws {
        let (xs, catalog) = blocks()
        let alpha: Float = 2, reg: Float = 0.5
        let model = try WALS.train(xs, catalog: catalog, numUsers: 8,
                                   config: { var c = WALSConfig(); c.factors = 3; c.alpha = alpha; c.reg = reg; c.iterations = 4; return c }())
        let history = UserHistory(items: [0, 2, 2, 5])
        let x = try model.foldIn(history)
        // Direct weighted least squares over all 8 items: c_i = 1 + alpha * count_i, p_i = [count_i > 0].
        let k = 3
        var count = [Double](repeating: 0, count: 8)
        for i in history.items { count[i] += 1 }
        var a = [[Double]](repeating: [Double](repeating: 0, count: k), count: k)
        var b = [Double](repeating: 0, count: k)
        for i in 0..<8 {
            let y = (0..<k).map { Double(model.itemFactors[i * k + $0]) }
            let c = 1 + Double(alpha) * count[i], p = count[i] > 0 ? 1.0 : 0
            for r in 0..<k {
                b[r] += c * p * y[r]
                for s in 0..<k { a[r][s] += c * y[r] * y[s] }
            }
        }
        for r in 0..<k { a[r][r] += Double(reg) }
        let expected = solve(a, b)
        for r in 0..<k { XCTAssertEqual(Double(x[r]), expected[r], accuracy: 1e-4 * max(1, abs(expected[r]))) }
        // scoreAll = folded-in vector times item factors.
        let scores = try model.scoreAll([history])
        for i in 0..<8 {
            let dot = (0..<k).reduce(Float(0)) { $0 + x[$1] * model.itemFactors[i * k + $1] }
            XCTAssertEqual(scores[i], dot, accuracy: 1e-5)
        }
    }

    /// OpenBLAS starts with a thread per core; a served WALS model left it so, and OpenBLAS's worker thread then
    /// spun in sched_yield after every scoring GEMM, a core taken from the event loop (docs/reliability.md, Soak).
    /// Every factor-model entry point that calls cblas or LAPACK must first put OpenBLAS on one thread.
    func testFactorModelCallsRunOpenBLASOnOneThread() throws {
        let (xs, catalog) = blocks()
        let model = try WALS.train(xs, catalog: catalog, numUsers: 8,
                                   config: { var c = WALSConfig(); c.factors = 3; c.iterations = 2; return c }())
        let calls: [(String, () throws -> Void)] = [
            ("scoreAll", { _ = try model.scoreAll([UserHistory(items: [0, 2])]) }),
            ("scoreTrainedUsers", { _ = try model.scoreTrainedUsers([1]) }),
            ("similarities", { _ = try model.similarities(to: 3) }),
            ("foldIn", { _ = try model.foldIn(UserHistory(items: [1, 4])) }),
            ("WALS.train", { _ = try WALS.train(xs, catalog: catalog, numUsers: 8, config: { var c = WALSConfig(); c.factors = 3; c.iterations = 1; return c }()) }),
        ]
        for (name, call) in calls {
            openblas_set_num_threads(2)  // what OpenBLAS starts with on a 2-core machine
            try call()
            XCTAssertEqual(openblas_get_num_threads(), 1, name)
        }
    }

    /// The full WALS objective, in Double.
    func objective(_ m: FactorModel, _ xs: [Interaction], users: Int, alpha: Double, reg: Double) -> Double {
        let k = m.factors, n = m.catalog.count
        var count = [[Double]](repeating: [Double](repeating: 0, count: n), count: users)
        for x in xs { count[x.user][x.item] += 1 }
        var loss = 0.0
        for u in 0..<users {
            for i in 0..<n {
                var dot = 0.0
                for f in 0..<k { dot += Double(m.userFactors[u * k + f]) * Double(m.itemFactors[i * k + f]) }
                let c = 1 + alpha * count[u][i], p = count[u][i] > 0 ? 1.0 : 0
                loss += c * (p - dot) * (p - dot)
            }
        }
        return loss + reg * (m.userFactors.reduce(0) { $0 + Double($1 * $1) } + m.itemFactors.reduce(0) { $0 + Double($1 * $1) })
    }

    func testWALSObjectiveDecreasesAndBlocksAreRecovered() throws {
        let (xs, catalog) = blocks()
        var c = WALSConfig()
        c.factors = 4; c.alpha = 5; c.reg = 0.1
        var last = Double.infinity
        for it in [1, 2, 5, 10] {
            c.iterations = it
            let m = try WALS.train(xs, catalog: catalog, numUsers: 8, config: c)
            let o = objective(m, xs, users: 8, alpha: 5, reg: 0.1)
            XCTAssertLessThanOrEqual(o, last + 1e-6)
            last = o
        }
        let m = try WALS.train(xs, catalog: catalog, numUsers: 8, config: c)
        // User 0 misses item 0 of its block: it must outrank every item of the other block.
        let s = try m.scoreAll([UserHistory(items: [1, 2, 3])])
        XCTAssertGreaterThan(s[0], s[4...].max()!)
        // Two threads give the same factors as one.
        var one = c
        one.threads = 1
        XCTAssertEqual(try WALS.train(xs, catalog: catalog, numUsers: 8, config: one).itemFactors, m.itemFactors)
        // Similar items stay within their block.
        let sim = try m.similarities(to: 5)
        XCTAssertEqual(sim[5], 1, accuracy: 1e-5)
        XCTAssertGreaterThan(sim[6], sim[1])
    }

    func testBPRLossDecreasesAndIsSeeded() throws {
        let (xs, catalog) = blocks()
        var c = BPRConfig()
        c.factors = 8; c.epochs = 60; c.learningRate = 0.1; c.reg = 0.001
        var losses: [Double] = []
        let m = try BPR.train(xs, catalog: catalog, numUsers: 8, config: c) { _, l in losses.append(l) }
        XCTAssertEqual(losses.count, 60)
        XCTAssertLessThan(losses.suffix(5).reduce(0, +) / 5, 0.5 * losses[0])
        XCTAssertEqual(losses[0], log(2), accuracy: 0.05)  // near-zero init: sigmoid(0) for every triple
        let again = try BPR.train(xs, catalog: catalog, numUsers: 8, config: c)
        XCTAssertEqual(again.itemFactors, m.itemFactors)
        let s = try m.scoreTrainedUsers([0])
        XCTAssertGreaterThan(s[0], s[4...].max()!)
        let f = try m.scoreAll([UserHistory(items: [1, 2, 3])])  // SGD fold-in also prefers the block
        XCTAssertGreaterThan(f[0], f[4...].max()!)
        XCTAssertEqual(try m.scoreAll([UserHistory(items: [1, 2, 3])]), f)  // seeded by the history: repeatable
        var ls = c
        ls.foldIn = "ls"
        let l = try BPR.train(xs, catalog: catalog, numUsers: 8, config: ls).scoreAll([UserHistory(items: [1, 2, 3])])
        XCTAssertGreaterThan(l[0], l[4...].max()!)
        XCTAssertNotEqual(l, f)
    }

    func testPopularityAndFactory() throws {
        let (xs, catalog) = blocks()
        let pop = try Baselines.train(kind: "pop", on: xs + [Interaction(user: 0, item: 7)], catalog: catalog, numUsers: 8)
        XCTAssertEqual(try pop.scoreAll([UserHistory(items: [])]), [3, 3, 3, 3, 3, 3, 3, 4])
        XCTAssertThrowsError(try pop.similarities(to: 0))
        XCTAssertThrowsError(try Baselines.train(kind: "svd", on: xs, catalog: catalog, numUsers: 8)) { e in
            XCTAssertEqual(e as? EvalError, .unknownBaseline("unknown baseline 'svd' (known: pop, wals, bpr, random)"))
        }
        XCTAssertThrowsError(try Baselines.train(kind: "wals", on: xs, catalog: catalog, numUsers: 8, options: ["factor": "3"]))
        XCTAssertThrowsError(try Baselines.train(kind: "wals", on: xs, catalog: catalog, numUsers: 8, options: ["reg": "-1"]))
        XCTAssertThrowsError(try Baselines.train(kind: "bpr", on: xs, catalog: catalog, numUsers: 8, options: ["fold_in": "x"]))
        XCTAssertThrowsError(try Baselines.parseOptions("factors"))
        XCTAssertEqual(try Baselines.parseOptions("factors=3, reg=0.1"), ["factors": "3", "reg": "0.1"])
        let wals = try Baselines.train(kind: "wals", on: xs, catalog: catalog, numUsers: 8,
                                       options: ["factors": "2", "iterations": "3"])
        XCTAssertEqual(wals.kind, "wals")
        XCTAssertThrowsError(try wals.scoreAll([UserHistory(items: [9])]))
    }

    /// Chance level, counted directly from the scores: a fixed item ranks in the top 10 of a 40-item catalogue for
    /// 10/40 of the histories (binomial, 4,000 histories: standard deviation .0068, bound 5 of them).
    func testRandomIsChanceLevelSeededAndRepeatable() throws {
        let catalog = Catalog(items: (0..<40).map { Item(id: String($0)) })
        let random = try Baselines.train(kind: "random", on: [], catalog: catalog, numUsers: 0, options: ["seed": "3"])
        XCTAssertEqual(random.kind, "random")
        let histories = (0..<4000).map { UserHistory(items: [$0 % 40, ($0 / 40) % 40, $0 / 1600]) }
        let scores = try random.scoreAll(histories)
        XCTAssertEqual(scores.count, 4000 * 40)
        var hits = 0
        for q in 0..<4000 {
            let row = scores[(q * 40)..<(q * 40 + 40)]
            if row.filter({ $0 > row[q * 40] }).count < 10 { hits += 1 }
        }
        XCTAssertEqual(Double(hits) / 4000, 0.25, accuracy: 0.034)
        XCTAssertEqual(Double(scores.reduce(0, +)) / Double(scores.count), 0.5, accuracy: 0.01)
        XCTAssertTrue(scores.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertEqual(try random.scoreAll([histories[7]]), Array(scores[(7 * 40)..<(8 * 40)]))  // per history
        let other = try Baselines.train(kind: "random", on: [], catalog: catalog, numUsers: 0, options: ["seed": "4"])
        XCTAssertNotEqual(try other.scoreAll([histories[7]]), Array(scores[(7 * 40)..<(8 * 40)]))
        XCTAssertThrowsError(try random.similarities(to: 0))
        XCTAssertThrowsError(try Baselines.train(kind: "random", on: [], catalog: catalog, numUsers: 0, options: ["factors": "2"]))
    }

    func testSweepSelectsOnValidation() throws {
        let (xs, catalog) = blocks()
        let d = Dataset(name: "b", catalog: catalog, userIds: (0..<8).map(String.init), interactions: xs)
        let split = Splits.leaveOneOut(d)
        let r = try Sweep.run(kind: "wals", split: split, catalog: catalog,
                              grid: [["factors": "1", "iterations": "0"], ["factors": "4", "alpha": "5", "iterations": "10"]])
        XCTAssertEqual(r.points.count, 2)
        XCTAssertEqual(r.best.validationNDCG10, r.points.map(\.validationNDCG10).max())
    }

    /// docs/evaluation.md's popularity row, exactly (skipped when data/ml-100k is absent).
    func testPopularityReproducesPublishedML100KNumbers() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../data/ml-100k").path
        try XCTSkipUnless(FileManager.default.fileExists(atPath: dir + "/ml-100k.inter"), "data/ml-100k absent")
        let d = try DatasetLoader.load(dir)
        let split = Splits.leaveOneOut(d)
        var o = EvalOptions()
        o.bootstrapResamples = 0
        let r = try Evaluator.evaluate(Popularity(training: split.train, catalog: d.catalog), on: split.test, options: o)
        XCTAssertEqual(r.metrics["HR@10"]!, 0.0859, accuracy: 0.00005)
        XCTAssertEqual(r.metrics["NDCG@10"]!, 0.0449, accuracy: 0.00005)
        XCTAssertEqual(r.metrics["MRR"]!, 0.0416, accuracy: 0.00005)
    }
}
