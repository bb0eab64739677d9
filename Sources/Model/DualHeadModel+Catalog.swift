// New items, recommendable at once: the dual-head network reads an item from its item prompt, so an item no training
// run ever saw gets a vector the moment it is added. A catalogue version is a new DualHeadModel sharing the network
// and tokenizer, with a new item table (old rows copied, added and changed rows encoded); the old model and its table
// are untouched, so a batch scoring on the old version never sees a half-written table.
import Data
import Foundation
import Tensor

extension DualHeadModel {
    /// Item texts as the item head reads them: the item prompt + `<answer>`, cut to the item token limit with the
    /// answer tag kept.
    public func itemTokens(_ itemPrompts: [String]) -> [[Int]] {
        let tail = tokenizer.encode(Prompts.answerTag).count
        let limit = min(DualHeadFormat.maxItemTokens, model.configuration.maxPositionEmbeddings)
        return itemPrompts.map {
            DualHeadFormat.keepingHead(tokenizer.encode(DualHeadFormat.itemText(itemPrompt: $0)), tail: tail, limit: limit)
        }
    }

    public func updatingCatalog(_ catalog: Catalog, added: [Int], changed: [Int], itemStats: [ItemStats]) throws -> Recommender {
        precondition(catalog.count >= self.catalog.count && itemStats.count == catalog.count)
        let rows = added + changed
        let d = itemTable.dimension
        let vectors = FloatBuffer(shape: [catalog.count, d])
        vectors.data.update(from: itemTable.vectors.data, count: itemTable.count * d)
        let tokens = itemTokens(rows.map { Prompts.item(catalog[$0], stats: itemStats[$0]) })
        for start in stride(from: 0, to: rows.count, by: 32) {
            let end = min(rows.count, start + 32)
            let unit = model.readout(Array(tokens[start..<end]))
            for (k, row) in rows[start..<end].enumerated() {
                (vectors.data + row * d).update(from: unit.data + k * d, count: d)
            }
        }
        // Items without a training interaction (every added one) move toward their genres' trained items.
        contentPrior?.apply(to: vectors, rows: rows.filter { itemStats[$0].count == 0 }, catalog: catalog)
        let table = ItemTable(vectors: vectors, weightsHash: itemTable.weightsHash,
                              promptsHash: itemTable.promptsHash + "+\(rows.count)")
        let next = DualHeadModel(model: model, tokenizer: tokenizer, catalog: catalog, itemTable: table, tau: tau,
                                 itemTablePrecision: itemTablePrecision, promptFormat: promptFormat,
                                 int4Screen: int8Table?.screen != nil)
        next.directBatchSize = directBatchSize
        next.contentPrior = contentPrior
        // Same weights and tokenizer: the cached prefixes (keyed by their tokens) stay right.
        next.prefixCache = prefixCache
        return next
    }
}
