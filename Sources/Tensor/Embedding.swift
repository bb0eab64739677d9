// Embedding: out[rows, dim] = table[ids[r], :], the token-embedding gather; ids outside 0..<vocab are a
// programmer error (the tokenizer never produces them) and stop the process with the offending id.
// Backward (issue 5) scatter-adds dOut rows into dTable[ids[r]] (rows sharing an id accumulate).

public enum Embedding {
    /// out[rows, dim] = table[vocab, dim] row ids[r] for each r.
    public static func forward(out: UnsafeMutablePointer<Float>, table: UnsafePointer<Float>,
                               ids: UnsafePointer<Int32>, rows: Int, dim: Int, vocab: Int) {
        for r in 0..<rows {
            let id = Int(ids[r])
            precondition(id >= 0 && id < vocab, "Embedding: token id \(id) outside 0..<\(vocab) at row \(r)")
            (out + r * dim).update(from: table + id * dim, count: dim)
        }
    }

    /// The naive twin: element by element.
    public static func forwardNaive(out: UnsafeMutablePointer<Float>, table: UnsafePointer<Float>,
                                    ids: UnsafePointer<Int32>, rows: Int, dim: Int, vocab: Int) {
        for r in 0..<rows {
            for j in 0..<dim { out[r * dim + j] = table[Int(ids[r]) * dim + j] }
        }
    }
}
