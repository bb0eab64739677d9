// Top-K selection over a score row with masked items and deterministic tie-breaking.
// Rank of an item = #(items scoring higher) + #(items scoring equal with a smaller index) + 1 (docs/evaluation.md).

public struct RankedItem: Sendable, Equatable {
    public var index: Int
    public var score: Float
    public init(index: Int, score: Float) { self.index = index; self.score = score }
}

public enum Ranking {
    /// The `k` best unmasked items of `scores`, best first; ties go to the smaller index.
    /// `allowed`, when given, restricts the answer to those indices. NaN scores are never returned.
    /// Runs in O(n log k) with a bounded heap, so a top-10 over a large catalogue does not sort it. Once the heap is
    /// full, items scoring at most its worst kept item are dropped before the mask is looked up (a Set lookup per
    /// item cost more than the scan), 16 at a time by one vector compare.
    public static func topK(_ scores: UnsafeBufferPointer<Float>, k: Int, masked: Set<Int> = [],
                            allowed: [Int]? = nil) -> [RankedItem] {
        guard k > 0 else { return [] }
        var heap = BoundedHeap(k: k)
        if let allowed {
            for i in Set(allowed) where i >= 0 && i < scores.count {
                let s = scores[i]
                if !s.isNaN && heap.admits(score: s, index: i) && !masked.contains(i) { heap.insert(RankedItem(index: i, score: s)) }
            }
        } else {
            // Indices rise, so an item scoring exactly the floor loses its tie to every kept item: `>` suffices, and
            // a NaN fails it too. Once the heap is full, 16 scores at a time are compared with the floor in one vector
            // compare and a block with none above it is skipped whole: over a large catalogue almost every block.
            var floor = -Float.infinity
            let n = scores.count
            var i = 0
            while i < n {
                let end: Int
                if heap.isFull && i + 16 <= n {
                    if !anyAbove(scores.baseAddress! + i, floor) { i += 16; continue }
                    end = i + 16
                } else {
                    end = i + 1
                }
                while i < end {
                    let s = scores[i]
                    if s > floor || (!heap.isFull && !s.isNaN), masked.isEmpty || !masked.contains(i) {
                        heap.insert(RankedItem(index: i, score: s))
                        if heap.isFull { floor = heap.worst.score }
                    }
                    i += 1
                }
            }
        }
        return heap.bestFirst()
    }

    /// Whether any of the 16 scores at `p` is above `f` (NaN never is). Spelt out as an or of the 16 comparisons, which
    /// the compiler turns into four 4-wide vector compares even where inlined (SIMD16's `.>`, and a loop over the 16,
    /// stayed scalar).
    @inline(__always) static func anyAbove(_ p: UnsafePointer<Float>, _ f: Float) -> Bool {
        let a0 = (p[0] > f ? 1 : 0) | (p[1] > f ? 1 : 0) | (p[2] > f ? 1 : 0) | (p[3] > f ? 1 : 0) as UInt32
        let a1 = (p[4] > f ? 1 : 0) | (p[5] > f ? 1 : 0) | (p[6] > f ? 1 : 0) | (p[7] > f ? 1 : 0) as UInt32
        let a2 = (p[8] > f ? 1 : 0) | (p[9] > f ? 1 : 0) | (p[10] > f ? 1 : 0) | (p[11] > f ? 1 : 0) as UInt32
        let a3 = (p[12] > f ? 1 : 0) | (p[13] > f ? 1 : 0) | (p[14] > f ? 1 : 0) | (p[15] > f ? 1 : 0) as UInt32
        return (a0 | a1 | a2 | a3) != 0
    }

    /// The `k` best items offered so far, as a min-heap whose root is the worst kept item (lower score, or equal score
    /// and larger index).
    struct BoundedHeap {
        let k: Int
        private var items: [RankedItem] = []
        init(k: Int) { self.k = k; items.reserveCapacity(k) }
        var isFull: Bool { items.count == k }
        var worst: RankedItem { items[0] }

        @inline(__always) static func worse(_ a: RankedItem, _ b: RankedItem) -> Bool {
            a.score < b.score || (a.score == b.score && a.index > b.index)
        }
        /// Whether an item would be kept: room left, or better than the worst kept.
        func admits(score: Float, index: Int) -> Bool {
            !isFull || Self.worse(items[0], RankedItem(index: index, score: score))
        }
        /// Keeps `c` (the caller checked `admits`), dropping the worst kept item when full.
        mutating func insert(_ c: RankedItem) {
            if items.count < k {
                items.append(c)
                var i = items.count - 1
                while i > 0 {
                    let p = (i - 1) / 2
                    if Self.worse(items[i], items[p]) { items.swapAt(i, p); i = p } else { break }
                }
                return
            }
            items[0] = c
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && Self.worse(items[l], items[m]) { m = l }
                if r < items.count && Self.worse(items[r], items[m]) { m = r }
                if m == i { return }
                items.swapAt(i, m); i = m
            }
        }
        func bestFirst() -> [RankedItem] { items.sorted { Self.worse($1, $0) } }
    }

    /// Display ranks of a best-first list in which tied scores share a rank ("1, 2, 2, 4"): what a client is shown
    /// (RELATED.md: tied scores share a rank). Evaluation keeps the index rule of `rank(of:in:masked:)`.
    public static func sharedRanks(_ list: [RankedItem]) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(list.count)
        for (i, item) in list.enumerated() {
            out.append(i > 0 && item.score == list[i - 1].score ? out[i - 1] : i + 1)
        }
        return out
    }

    /// The 1-based rank of `target` among unmasked items under the tie rule above.
    public static func rank(of target: Int, in scores: UnsafeBufferPointer<Float>, masked: Set<Int> = []) -> Int {
        let t = scores[target]
        var rank = 1
        for i in 0..<scores.count where i != target && !masked.contains(i) {
            let s = scores[i]
            if s > t || (s == t && i < target) { rank += 1 }
        }
        return rank
    }
}
