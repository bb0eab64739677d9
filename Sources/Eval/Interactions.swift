// Sparse user-item count matrices for the factor baselines: CSR rows with merged duplicates, and the transpose.
import Data

/// A sparse matrix in compressed rows: row r has columns `columns[offsets[r]..<offsets[r+1]]` with `values`.
public struct SparseRows: Sendable {
    public let rows: Int
    public let cols: Int
    public let offsets: [Int]
    public let columns: [Int32]
    public let values: [Float]

    /// Counts of (row, column) pairs, duplicates added, columns ascending within a row.
    public init(rows: Int, cols: Int, pairs: [(Int, Int)]) {
        var perRow = [[Int]](repeating: [], count: rows)
        for (r, c) in pairs { perRow[r].append(c) }
        var offsets = [0], columns: [Int32] = [], values: [Float] = []
        for var row in perRow {
            row.sort()
            var i = 0
            while i < row.count {
                var j = i
                while j < row.count && row[j] == row[i] { j += 1 }
                columns.append(Int32(row[i])); values.append(Float(j - i))
                i = j
            }
            offsets.append(columns.count)
        }
        self.rows = rows; self.cols = cols; self.offsets = offsets; self.columns = columns; self.values = values
    }

    public static func userItems(_ xs: [Interaction], numUsers: Int, numItems: Int) -> SparseRows {
        SparseRows(rows: numUsers, cols: numItems, pairs: xs.map { ($0.user, $0.item) })
    }

    public func transposed() -> SparseRows {
        var pairs: [(Int, Int)] = []
        pairs.reserveCapacity(columns.count)
        for r in 0..<rows {
            for p in offsets[r]..<offsets[r + 1] {
                for _ in 0..<Int(values[p]) { pairs.append((Int(columns[p]), r)) }
            }
        }
        return SparseRows(rows: cols, cols: rows, pairs: pairs)
    }

    /// A history as one sparse row: item counts.
    public static func row(_ history: UserHistory) -> (columns: [Int32], values: [Float]) {
        var counts: [Int: Float] = [:]
        for i in history.items { counts[i, default: 0] += 1 }
        let keys = counts.keys.sorted()
        return (keys.map { Int32($0) }, keys.map { counts[$0]! })
    }
}
