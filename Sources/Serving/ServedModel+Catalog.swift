// A served model's next catalogue version: the same model (name, version, calibrator) over the catalogue with items
// added and re-described, built beside the old one; the registry swaps it in (ModelRegistry.replace).
import Data

extension ServedModel {
    /// This model with `items` (created or changed in the store) applied, at catalogue version `catalogVersion`.
    /// New items have no ratings yet (their prompt says so); the dual-head network encodes them, the others give
    /// them no score until a refit.
    public func updating(with items: [CatalogItem], catalogVersion: UInt64) throws -> ServedModel {
        let (catalog, added, changed) = self.catalog.updating(with: items.map(\.item))
        let stats = itemStats + added.map { _ in ItemStats(count: 0, meanRating: 0) }
        let next = added.isEmpty && changed.isEmpty
            ? recommender
            : try recommender.updatingCatalog(catalog, added: added, changed: changed, itemStats: stats)
        return ServedModel(name: name, spec: spec, recommender: next, datasetName: datasetName,
                           userHistories: userHistories, itemStats: stats, calibrator: calibrator, version: version,
                           catalogVersion: catalogVersion,
                           coldStart: coldStart.map { $0 + [Float](repeating: .nan, count: added.count) })
    }

    /// Whether the model can score the item (false for an unknown id, and for an item added after a model that
    /// cannot encode it was fitted).
    public func canRecommend(_ itemId: String) -> Bool {
        guard let i = catalog.index(of: itemId) else { return false }
        return i < recommender.recommendableItems
    }

    /// GetItems' and SearchItems' facts of the catalogue item at `index`, with its stored facts (metadata, creation
    /// time) when a store backs the server.
    func itemInfo(at index: Int, stored: CatalogItem?) -> ItemInfo {
        let item = catalog[index]
        return ItemInfo(itemId: item.id, title: item.title, year: item.year, genres: item.genres,
                        description: item.description, numRatings: itemStats[index].count,
                        meanRating: itemStats[index].meanRating, metadataJSON: stored?.metadataJSON ?? "{}",
                        created: stored?.created ?? 0)
    }
}
