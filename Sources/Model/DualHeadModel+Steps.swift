// The pieces of the dual-head model a step-by-step scheduler needs (the serving core's iteration-level batching):
// the reasoning prompt's tokens, the stop text's tokens, and the recommendation head over read-out hidden states.
import Data
import Tensor

extension DualHeadModel {
    /// Tokens of the reasoning prompt of a history (user prompt, then the model writes), truncated from the front.
    public func reasoningPromptTokens(_ history: UserHistory, targetTime: Int64? = nil) -> [Int] {
        userTokens(DualHeadFormat.reasoningText(userPrompt: userPrompt(history, targetTime: targetTime)))
    }

    /// Tokens of `<answer>`, appended when a chain reaches its token limit.
    public var answerTokens: [Int] { tokenizer.encode(Prompts.answerTag) }

    /// Scores [readouts.count, items] of final-norm hidden states read out at the end of `<answer>`:
    /// L2-normalised, then cosine / tau against the item table in one GEMM.
    public func scores(readouts: [[Float]]) -> [Float] {
        let d = model.configuration.hiddenSize
        let unit = FloatBuffer(shape: [max(1, readouts.count), d])
        for (i, r) in readouts.enumerated() {
            precondition(r.count == d, "a readout has \(r.count) floats, the model's hidden size is \(d)")
            r.withUnsafeBufferPointer { (unit.data + i * d).update(from: $0.baseAddress!, count: d) }
        }
        L2Normalize.forward(out: unit.data, input: unit.data, rows: readouts.count, dim: d)
        var out = [Float](repeating: 0, count: readouts.count * catalog.count)
        out.withUnsafeMutableBufferPointer { score(userVectors: unit.pointer, count: readouts.count, into: $0.baseAddress!) }
        return out
    }
}
