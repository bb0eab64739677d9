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
    /// Runs in O(n log k) with a bounded heap, so a top-10 over a large catalogue does not sort it.
    public static func topK(_ scores: UnsafeBufferPointer<Float>, k: Int, masked: Set<Int> = [],
                            allowed: [Int]? = nil) -> [RankedItem] {
        guard k > 0 else { return [] }
        // Min-heap on (score, -index): its root is the worst item kept so far.
        var heap: [RankedItem] = []
        heap.reserveCapacity(k + 1)
        @inline(__always) func worse(_ a: RankedItem, _ b: RankedItem) -> Bool {
            a.score < b.score || (a.score == b.score && a.index > b.index)
        }
        func siftUp(_ i0: Int) {
            var i = i0
            while i > 0 {
                let p = (i - 1) / 2
                if worse(heap[i], heap[p]) { heap.swapAt(i, p); i = p } else { break }
            }
        }
        func siftDown(_ i0: Int) {
            var i = i0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && worse(heap[l], heap[m]) { m = l }
                if r < heap.count && worse(heap[r], heap[m]) { m = r }
                if m == i { return }
                heap.swapAt(i, m); i = m
            }
        }
        func offer(_ i: Int) {
            let s = scores[i]
            if s.isNaN || masked.contains(i) { return }
            let c = RankedItem(index: i, score: s)
            if heap.count < k { heap.append(c); siftUp(heap.count - 1) }
            else if worse(heap[0], c) { heap[0] = c; siftDown(0) }
        }
        if let allowed {
            for i in Set(allowed) where i >= 0 && i < scores.count { offer(i) }
        } else {
            for i in 0..<scores.count { offer(i) }
        }
        return heap.sorted { worse($1, $0) }
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
