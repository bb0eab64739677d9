// The item table: every catalogue item's unit vector, read out by the network from the item prompt + `<answer>`
// (final-norm hidden state at the last token, L2-normalised). Built in batches with progress on stderr, cached as
// item_table.safetensors beside the checkpoint (by training) with hashes of the weights and the prompts, rebuilt when
// either changes; serving keeps its own resumable copies in ItemTableCache's directory.
import Data
import Foundation
import Tensor

public final class ItemTable: @unchecked Sendable {
    public static let fileName = "item_table.safetensors"
    public static let tensorName = "item_vectors"

    /// [items, hidden], unit rows.
    public let vectors: FloatBuffer
    public let weightsHash: String
    public let promptsHash: String
    public var count: Int { vectors.rowCount }
    public var dimension: Int { vectors.rowLength }

    public init(vectors: FloatBuffer, weightsHash: String, promptsHash: String) {
        self.vectors = vectors; self.weightsHash = weightsHash; self.promptsHash = promptsHash
    }

    /// Reads out every item text (already tokenised, `<answer>` included) in batches of `batchSize`.
    public static func build(model: Qwen2Model, itemTokens: [[Int]], weightsHash: String, promptsHash: String,
                             batchSize: Int = 32, progress: Bool = true) -> ItemTable {
        let vectors = FloatBuffer(shape: [itemTokens.count, model.configuration.hiddenSize])
        readOut(model: model, itemTokens: itemTokens, into: vectors, batchSize: batchSize, progress: progress) { _ in }
        return ItemTable(vectors: vectors, weightsHash: weightsHash, promptsHash: promptsHash)
    }

    /// Reads out rows `start..<itemTokens.count` of `vectors` in batches of `batchSize` counted from row 0 (`start`
    /// is a multiple of it), so that a build resumed at `start` reads out the very batches an uninterrupted one does:
    /// the same rows, to the bit. Calls `chunk(rowsDone)` after every `chunkRows` rows (a multiple of `batchSize`)
    /// and after the last row. Progress on stderr: rows done of all, the rate of this run, where it resumed.
    public static func readOut(model: Qwen2Model, itemTokens: [[Int]], into vectors: FloatBuffer, from start: Int = 0,
                               batchSize: Int = 32, chunkRows: Int? = nil, progress: Bool = true,
                               chunk: (Int) throws -> Void) rethrows {
        let d = model.configuration.hiddenSize
        precondition(vectors.shape == [itemTokens.count, d], "one row of \(d) per item")
        precondition((start % batchSize == 0 || start == itemTokens.count) && (0...itemTokens.count).contains(start),
                     "resume at a whole batch")
        precondition(chunkRows.map { $0 > 0 && $0 % batchSize == 0 } ?? true, "chunks of whole batches")
        let resumed = start > 0 ? ", resumed at row \(start)" : ""
        var row = start
        let began = Date()
        while row < itemTokens.count {
            let end = min(itemTokens.count, row + batchSize)
            let unit = model.readout(Array(itemTokens[row..<end]))
            (vectors.data + row * d).update(from: unit.data, count: (end - row) * d)
            row = end
            if progress {
                let rate = Double(row - start) / max(Date().timeIntervalSince(began), 1e-9)
                FileHandle.standardError.write("\ritem table: \(row)/\(itemTokens.count) items (\(Int(rate))/s\(resumed))".data(using: .utf8)!)
            }
            if let chunkRows, row % chunkRows == 0 || row == itemTokens.count { try chunk(row) }
        }
        if progress && start < itemTokens.count { FileHandle.standardError.write("\n".data(using: .utf8)!) }
    }

    public func save(to path: String) throws {
        let tensor = SafetensorsWriter.Tensor(name: Self.tensorName, shape: [count, dimension],
                                              values: UnsafeBufferPointer(vectors.buffer))
        try SafetensorsWriter.write([tensor], metadata: ["weights_hash": weightsHash, "prompts_hash": promptsHash],
                                    to: path)
    }

    /// The cached table at `path` when it matches both hashes and the dimensions; nil when absent or stale.
    public static func load(path: String, weightsHash: String, promptsHash: String, count: Int, dimension: Int) throws -> ItemTable? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let file = try SafetensorsFile(path: path)
        guard file.metadata["weights_hash"] == weightsHash, file.metadata["prompts_hash"] == promptsHash,
              file.entries[tensorName]?.shape == [count, dimension] else { return nil }
        let vectors = FloatBuffer(shape: [count, dimension])
        try file.read(tensorName, into: vectors.buffer, expectedShape: [count, dimension])
        return ItemTable(vectors: vectors, weightsHash: weightsHash, promptsHash: promptsHash)
    }

    /// FNV-1a of the item texts, in order.
    public static func promptsHash(_ texts: [String]) -> String {
        var h = FNV1a()
        for t in texts {
            h.bytes(t.utf8)
            h.mix(0xFF)  // separator, so that ["ab","c"] != ["a","bc"]
        }
        return String(h.value, radix: 16)
    }
}

extension Qwen2Model {
    /// The recommendation head's input for each sequence: the final-norm hidden state at its last token,
    /// L2-normalised ([sequences, hidden]). No LM head is computed. Item prompts read out so.
    public func readout(_ tokens: [[Int]]) -> FloatBuffer {
        let output = forward(tokens, rows: .last, logits: false)
        let unit = FloatBuffer(shape: [tokens.count, configuration.hiddenSize])
        L2Normalize.forward(out: unit.data, input: output.hidden.data, rows: tokens.count, dim: configuration.hiddenSize)
        return unit
    }

    /// The user read-out of each prompt, L2-normalised ([sequences, hidden]): the final-norm hidden state after the
    /// configuration's latent steps (`latentSteps`; at 0 the prompt's last token, as `readout`). With `caches`,
    /// prompt s continues `caches[s]`, which then holds the prompt and the latent steps; without, caches are made
    /// for the latent steps and dropped.
    public func userReadout(_ tokens: [[Int]], caches: [KVCache]? = nil) -> FloatBuffer {
        let steps = configuration.latentSteps
        let caches = caches ?? (steps == 0 ? nil : tokens.map {
            KVCache(configuration: configuration, reservingCapacity: $0.count + steps)
        })
        var hidden = forward(tokens, caches: caches, rows: .last, logits: false).hidden
        if let caches { hidden = latentSteps(from: hidden, caches: caches) }
        let unit = FloatBuffer(shape: [tokens.count, configuration.hiddenSize])
        L2Normalize.forward(out: unit.data, input: hidden.data, rows: tokens.count, dim: configuration.hiddenSize)
        return unit
    }

    /// Runs the latent steps after each sequence of `caches`, whose last position's final-norm hidden state is row
    /// s of `hidden` [sequences, hidden]: step j's input is the previous state + latent_embeddings[j] (one decode
    /// step whose input is a vector, not a token). Returns the last step's final-norm states (`hidden` without steps).
    public func latentSteps(from hidden: FloatBuffer, caches: [KVCache]) -> FloatBuffer {
        let d = configuration.hiddenSize, count = caches.count
        var state = hidden
        let single = [[Int]](repeating: [0], count: count)
        for step in 0..<configuration.latentSteps {
            let input = FloatBuffer(shape: [count, d])
            let vector = weights.latentEmbeddings! + step * d
            for s in 0..<count {
                let row = input.data + s * d, previous = state.data + s * d
                for j in 0..<d { row[j] = previous[j] + vector[j] }
            }
            state = forward(single, caches: caches, rows: .last, logits: false, embedded: input.data).hidden
        }
        return state
    }
}
