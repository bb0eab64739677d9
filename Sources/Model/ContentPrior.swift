// New items' content prior (`--new-item-prior W`, docs/evaluation.md): an item with no training interaction is read
// from a title the network never trained on, and its text vector follows its genres less than a trained item's
// does. The prior places it between its text and the trained items of its genres:
//     v = unit((1 - W) * text + W * mean over its genres g of centroid(g)),
// centroid(g) = the mean of the trained items' table vectors having genre g (unit rows; the mean is not normalised).
// Genres no trained item has are skipped; an item none of whose genres has one keeps its text vector. The centroids
// are taken once, when a checkpoint is loaded (the trained items' vectors change only with a refit), so an
// UpsertItems costs one pass over the added items' genres, not over the table.
import Data
import Tensor

public struct ContentPrior: Sendable {
    /// W in [0, 1]: 0 leaves text vectors as they are, 1 replaces them by the genre mean.
    public let weight: Float
    public let dimension: Int
    /// Per genre, the mean vector of the trained items having it.
    public let centroids: [String: [Float]]

    public init(weight: Float, dimension: Int, centroids: [String: [Float]]) {
        precondition((0...1).contains(weight) && centroids.values.allSatisfy { $0.count == dimension })
        self.weight = weight; self.dimension = dimension; self.centroids = centroids
    }

    /// The centroids of `table`'s rows of trained items (`trained[i]`), by the genres of `catalog`.
    public init(weight: Float, table: FloatBuffer, catalog: Catalog, trained: [Bool]) {
        precondition(trained.count == catalog.count && table.rowCount >= catalog.count)
        let d = table.rowLength
        var sums: [String: [Double]] = [:]
        var counts: [String: Int] = [:]
        for i in 0..<catalog.count where trained[i] {
            let row = table.data + i * d
            for g in Set(catalog[i].genres) {
                // Taken out of the dictionary while adding, so the sum is updated in place, not copied per item.
                var s = sums.removeValue(forKey: g) ?? [Double](repeating: 0, count: d)
                for j in 0..<d { s[j] += Double(row[j]) }
                sums[g] = s
                counts[g, default: 0] += 1
            }
        }
        var centroids: [String: [Float]] = [:]
        for (g, s) in sums {
            let n = Double(counts[g]!)
            centroids[g] = s.map { Float($0 / n) }
        }
        self.init(weight: weight, dimension: d, centroids: centroids)
    }

    /// The prior of an item with `genres`: the mean of its genres' centroids; nil when none has a trained item.
    public func prior(genres: [String]) -> [Float]? {
        let known = Set(genres).compactMap { centroids[$0] }
        guard !known.isEmpty else { return nil }
        var mean = [Float](repeating: 0, count: dimension)
        for c in known { for j in 0..<dimension { mean[j] += c[j] } }
        let n = Float(known.count)
        return mean.map { $0 / n }
    }

    /// Blends the rows `rows` of `table` (text vectors of items without a training interaction) in place; returns
    /// how many had a prior.
    @discardableResult
    public func apply(to table: FloatBuffer, rows: [Int], catalog: Catalog) -> Int {
        precondition(table.rowLength == dimension)
        guard weight > 0 else { return 0 }
        var blended = 0
        for i in rows {
            guard let p = prior(genres: catalog[i].genres) else { continue }
            let row = table.data + i * dimension
            for j in 0..<dimension { row[j] = (1 - weight) * row[j] + weight * p[j] }
            L2Normalize.forward(out: row, input: row, rows: 1, dim: dimension)
            blended += 1
        }
        return blended
    }
}
