// Softmax cross-entropy over rows of logits with the gradient written in place (CKernels' cross_entropy.c, on the
// instruction set Tensor.CPU chooses), split over the pool: the LM head's loss in training.
import CKernels

public enum CrossEntropy {
    /// For each row r < rows of logits [rows, cols]: loss[r] = weights[r] · (logsumexp(x_r) − x_r[targets[r]]), and
    /// x_r becomes weights[r] · (softmax(x_r) − onehot(targets[r])). Targets must lie in 0..<cols (checked).
    public static func forwardBackward(logits: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                                       targets: UnsafePointer<Int32>, weights: UnsafePointer<Float>,
                                       loss: UnsafeMutablePointer<Double>) {
        for r in 0..<rows {
            precondition(targets[r] >= 0 && Int(targets[r]) < cols, "target token \(targets[r]) outside the vocabulary")
        }
        let isa = CPU.isa.c
        ThreadPool.shared.parallelSlices(rows, minimumPerSlice: max(1, 16_384 / max(cols, 1))) { slice in
            r2ec_softmax_cross_entropy(isa, logits + slice.lowerBound * cols, Int32(slice.count), Int32(cols), cols,
                                       targets + slice.lowerBound, weights + slice.lowerBound, loss + slice.lowerBound)
        }
    }
}
