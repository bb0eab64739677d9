// Collaborative signal beside the text (issue 16 part 2): a learned vector per item seen in training, added to the
// item's unit text read-out before a second L2 normalisation, so an item's column is unit(unit(text) + e_item).
// Items without a training interaction keep e = 0 and so their text vector alone (new and cold items), exactly as
// without id vectors. The vectors start at zero (training starts from the text-only model), train with the rec
// loss through `ContrastiveBatch.itemOffsets` and a lazy Adam over the rows a step touched, and are saved beside the
// checkpoint in item_id_vectors.safetensors keyed by item id (metadata "item_ids", a JSON list), so a loader
// matches them to any catalogue by id.
import Data
import Foundation
import Model
import Tensor

public final class ItemIDVectors: @unchecked Sendable {
    public static let fileName = "item_id_vectors.safetensors"
    static let tensorName = "item_id_vectors"

    public let count: Int
    public let dimension: Int
    /// [count, dimension].
    public let values: FloatBuffer
    /// Items that may learn a vector (those with a training interaction); the others stay at zero.
    public let trainable: [Bool]
    private let m: FloatBuffer, v: FloatBuffer
    /// Per row, the Adam steps it has taken (bias correction of a lazily updated row).
    private var rowSteps: [Int32]
    private var pending: [Int: [Float]] = [:]
    var best: FloatBuffer?

    public init(count: Int, dimension: Int, trainable: [Bool]) {
        precondition(trainable.count == count)
        self.count = count; self.dimension = dimension; self.trainable = trainable
        values = FloatBuffer(shape: [max(1, count), dimension])
        m = FloatBuffer(shape: [max(1, count), dimension])
        v = FloatBuffer(shape: [max(1, count), dimension])
        rowSteps = [Int32](repeating: 0, count: count)
    }

    /// The rows of `items` as one [items.count, dimension] block (zero rows for untrainable items).
    func gather(_ items: [Int]) -> FloatBuffer {
        let out = FloatBuffer(shape: [max(1, items.count), dimension])
        for (i, item) in items.enumerated() where trainable[item] {
            (out.data + i * dimension).update(from: values.data + item * dimension, count: dimension)
        }
        return out
    }

    /// Adds the gradients of `items`' rows (a block as `gather` returned) for the next `step`.
    func accumulate(_ items: [Int], gradients: FloatBuffer) {
        for (i, item) in items.enumerated() where trainable[item] {
            let g = gradients.data + i * dimension
            var row = pending[item] ?? [Float](repeating: 0, count: dimension)
            for j in 0..<dimension { row[j] += g[j] }
            pending[item] = row
        }
    }

    /// One lazy Adam step (beta 0.9 / 0.999, no weight decay) on the rows with pending gradients; clears them.
    func step(lr: Float) {
        let b1: Float = 0.9, b2: Float = 0.999, eps: Float = 1e-8
        for (item, g) in pending {
            rowSteps[item] += 1
            let t = Float(rowSteps[item])
            let c1 = 1 - pow(b1, t), c2 = 1 - pow(b2, t)
            let x = values.data + item * dimension, mm = m.data + item * dimension, vv = v.data + item * dimension
            for j in 0..<dimension {
                mm[j] = b1 * mm[j] + (1 - b1) * g[j]
                vv[j] = b2 * vv[j] + (1 - b2) * g[j] * g[j]
                x[j] -= lr * (mm[j] / c1) / ((vv[j] / c2).squareRoot() + eps)
            }
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// table[i] = unit(table[i] + e_i) for every item with a vector (rows of unit text vectors, in place).
    public func apply(to table: FloatBuffer) {
        Self.apply(values.data, trainable, to: table)
    }

    static func apply(_ values: UnsafePointer<Float>, _ has: [Bool], to table: FloatBuffer) {
        let d = table.rowLength
        for item in 0..<min(has.count, table.rowCount) where has[item] {
            let row = table.data + item * d, e = values + item * d
            for j in 0..<d { row[j] += e[j] }
            L2Normalize.forward(out: row, input: row, rows: 1, dim: d)
        }
    }

    func keepBest() {
        let b = best ?? FloatBuffer(shape: values.shape)
        b.copy(from: values)
        best = b
    }

    func restoreBest() {
        if let best { values.copy(from: best) }
    }

    /// Writes the current vectors of the trainable items, keyed by `ids` (the catalogue's item ids).
    func save(ids: [String], directory: String) throws {
        let rows = (0..<count).filter { trainable[$0] }
        let block = FloatBuffer(shape: [max(1, rows.count), dimension])
        for (i, item) in rows.enumerated() {
            (block.data + i * dimension).update(from: values.data + item * dimension, count: dimension)
        }
        let list = String(decoding: try JSONEncoder().encode(rows.map { ids[$0] }), as: UTF8.self)
        try SafetensorsWriter.write([.init(name: Self.tensorName, shape: [rows.count, dimension],
                                           values: UnsafeBufferPointer(start: block.data, count: rows.count * dimension))],
                                    metadata: ["item_ids": list], to: directory + "/" + Self.fileName)
    }

    /// The saved vectors of checkpoint `directory` matched to `catalog` by item id (nil when the checkpoint has
    /// none): per catalogue item, whether it has one, and the [items, dimension] values.
    public static func load(directory: String, catalog: Catalog, dimension: Int) throws -> (has: [Bool], values: FloatBuffer)? {
        let path = directory + "/" + fileName
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let file = try SafetensorsFile(path: path)
        guard let shape = file.entries[tensorName]?.shape, shape.count == 2, shape[1] == dimension else {
            throw TrainError.state("\(path): expected a tensor \(tensorName) of shape [n, \(dimension)]")
        }
        guard let text = file.metadata["item_ids"], let ids = try? JSONDecoder().decode([String].self, from: Data(text.utf8)),
              ids.count == shape[0] else {
            throw TrainError.state("\(path): metadata item_ids must be a JSON list of \(shape[0]) item ids")
        }
        let rows = try file.array(tensorName, expectedShape: shape)
        var index: [String: Int] = [:]
        for (i, item) in catalog.items.enumerated() { index[item.id] = i }
        var has = [Bool](repeating: false, count: catalog.count)
        let values = FloatBuffer(shape: [max(1, catalog.count), dimension])
        for (r, id) in ids.enumerated() {
            guard let item = index[id] else { continue }
            has[item] = true
            rows.withUnsafeBufferPointer { (values.data + item * dimension).update(from: $0.baseAddress! + r * dimension, count: dimension) }
        }
        return (has, values)
    }

    // Resumable state: values, moments and per-row steps.
    func saveState(directory: String) throws {
        let n = count * dimension
        try SafetensorsWriter.write([
            .init(name: "values", shape: [count, dimension], values: UnsafeBufferPointer(start: values.data, count: n)),
            .init(name: "m", shape: [count, dimension], values: UnsafeBufferPointer(start: m.data, count: n)),
            .init(name: "v", shape: [count, dimension], values: UnsafeBufferPointer(start: v.data, count: n)),
            .init(name: "best", shape: [count, dimension], values: UnsafeBufferPointer(start: (best ?? values).data, count: n)),
        ], metadata: ["row_steps": rowSteps.map(String.init).joined(separator: ",")], to: directory + "/item_ids.safetensors")
    }

    func loadState(directory: String) throws {
        let file = try SafetensorsFile(path: directory + "/item_ids.safetensors")
        let n = count * dimension
        try file.read("values", into: UnsafeMutableBufferPointer(start: values.data, count: n), expectedShape: [count, dimension])
        try file.read("m", into: UnsafeMutableBufferPointer(start: m.data, count: n), expectedShape: [count, dimension])
        try file.read("v", into: UnsafeMutableBufferPointer(start: v.data, count: n), expectedShape: [count, dimension])
        let b = FloatBuffer(shape: values.shape)
        try file.read("best", into: UnsafeMutableBufferPointer(start: b.data, count: n), expectedShape: [count, dimension])
        best = b
        let steps = (file.metadata["row_steps"] ?? "").split(separator: ",").compactMap { Int32($0) }
        guard steps.count == count else { throw TrainError.state("\(directory)/item_ids.safetensors: row_steps has \(steps.count) of \(count) rows") }
        rowSteps = steps
    }
}
