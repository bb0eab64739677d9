// A data-parallel rank's share of a global batch: the batch's sequences (in the order a single process runs them)
// cut into one contiguous run per rank with about equal token counts, so every rank's forward and backward take
// about the same time. Contiguous runs keep each row's place in the global batch computable (its dropout mask is the
// one a single process draws for that row).
import Collectives
import Tensor

struct BatchShare {
    /// This rank's sequences: indices into the global batch.
    let sequences: Range<Int>
    /// Rows (tokens) of the global batch before this rank's first sequence.
    let rowOffset: Int
    /// Rows of the whole batch.
    let totalRows: Int

    init(lengths: [Int], rank: Int, size: Int) {
        var before = [0]
        before.reserveCapacity(lengths.count + 1)
        for l in lengths { before.append(before.last! + l) }
        let total = before.last!
        /// The first sequence of rank r: the sequence boundary nearest to r/size of the tokens (the lower on a tie).
        func start(_ r: Int) -> Int {
            if r == 0 { return 0 }
            if r >= size { return lengths.count }
            let goal = Double(total) * Double(r) / Double(size)
            var i = 0
            while i < lengths.count && Double(before[i + 1]) <= goal { i += 1 }
            // before[i] <= goal < before[i + 1]: take the nearer boundary.
            if i < lengths.count && Double(before[i + 1]) - goal < goal - Double(before[i]) { i += 1 }
            return i
        }
        let lo = start(rank), hi = max(lo, start(rank + 1))
        sequences = lo..<hi
        rowOffset = before[lo]
        totalRows = total
    }

    init(lengths: [Int], world: Communicator) {
        self.init(lengths: lengths, rank: world.rank, size: world.size)
    }

    /// The row of this rank's graph holding token `token` (nil: the last) of the batch's sequence `s` (one of
    /// this rank's).
    func row(of s: Int, token: Int? = nil, in graph: TrainingGraph) -> Int {
        token.map { graph.row(sequence: s - sequences.lowerBound, token: $0) } ?? graph.lastRow(sequence: s - sequences.lowerBound)
    }

    /// The final-norm read-outs [items.count, width] of the batch's sequences `items` (items encoded in the batch,
    /// scored by every rank's users), on every rank (`TrainingGraph.sharedReadouts`).
    func gatherReadouts(of items: Range<Int>, graph: TrainingGraph, width d: Int, world: Communicator) throws -> FloatBuffer {
        try graph.sharedReadouts(count: items.count, mine: local(items), row: { row(of: items.lowerBound + $0, in: graph) },
                                 width: d, world: world)
    }

    /// Adds the gradient of those read-outs, summed over the ranks, into this rank's own rows of `graph.dHidden`.
    func scatterGradient(_ gradient: FloatBuffer, of items: Range<Int>, graph: TrainingGraph, width d: Int,
                         world: Communicator) throws {
        try graph.addSharedGradient(gradient, count: items.count, mine: local(items),
                                    row: { row(of: items.lowerBound + $0, in: graph) }, width: d, world: world)
    }

    /// The indices (0-based within `items`) of the sequences of `items` this rank runs.
    private func local(_ items: Range<Int>) -> Range<Int> {
        let held = items.clamped(to: sequences)
        return (held.lowerBound - items.lowerBound)..<(held.upperBound - items.lowerBound)
    }
}

extension TrainingGraph {
    /// Read-outs [count, width] of the `count` items of a data-parallel batch, on every rank: this rank's own items
    /// `mine` (item k's read-out at final-norm row `row(k)` of this graph), the other ranks' summed in (x + 0 is
    /// exact). One process holds them all.
    func sharedReadouts(count: Int, mine: Range<Int>, row: (Int) -> Int, width d: Int,
                        world: Communicator) throws -> FloatBuffer {
        let out = FloatBuffer(shape: [max(1, count), d])
        for k in mine { (out.data + k * d).update(from: hidden + row(k) * d, count: d) }
        if world.size > 1 { try world.allreduceSum(out.data, count: count * d) }
        return out
    }

    /// Sums the gradient [count, width] of those read-outs over the ranks (every rank's users scored every item) and
    /// adds this rank's own items' rows into `dHidden`.
    func addSharedGradient(_ gradient: FloatBuffer, count: Int, mine: Range<Int>, row: (Int) -> Int, width d: Int,
                           world: Communicator) throws {
        if world.size > 1 { try world.allreduceSum(gradient.data, count: count * d) }
        for k in mine {
            let target = dHidden + row(k) * d, source = gradient.data + k * d
            for j in 0..<d { target[j] += source[j] }
        }
    }
}
