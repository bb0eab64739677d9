// The serving side's item table cache (ItemTableCache, `--item-table-cache DIR`): a table read from it is the
// in-memory build's to the bit; an interrupted build resumes from its partial file, reads out only the rows after
// it and ends with the uninterrupted table; another weights, prompts or precision hash misses; a truncated, garbage,
// foreign or corrupted file is ignored with a warning naming it.
import Data
import Foundation
import XCTest
@testable import Model
import Tensor

final class ItemTableCacheTests: XCTestCase {
    let catalog = Catalog(items: (1...40).map { Item(id: "\($0)", title: "Movie \($0)", year: 1950 + $0, genres: ["Drama"]) })

    final class Warnings: @unchecked Sendable {
        var lines: [String] = []
    }

    func tokens(_ tokenizer: Tokenizer) -> [[Int]] {
        catalog.items.map { tokenizer.encode(DualHeadFormat.itemText(itemPrompt: Prompts.item($0, stats: ItemStats(count: 3, meanRating: 4)))) }
    }

    /// A cache of chunks of 8 rows read out in batches of 4 (40 items: 5 chunks), its warnings collected.
    func cache(_ directory: String, stopAfter: Int? = nil) -> (ItemTableCache, Warnings) {
        var cache = ItemTableCache(directory: directory, chunkRows: 8, batchSize: 4)
        let warnings = Warnings()
        cache.warn = { warnings.lines.append($0) }
        cache.stopAfterChunks = stopAfter
        return (cache, warnings)
    }

    func key(_ model: Qwen2Model, prompts: String = "p1", precision: String = "float32") -> ItemTableCache.Key {
        ItemTableCache.Key(weightsHash: Checkpoint.weightsHash(model), promptsHash: prompts, precision: precision,
                           count: catalog.count, dimension: model.configuration.hiddenSize)
    }

    func bits(_ table: ItemTable) -> [UInt32] { table.vectors.toArray().map(\.bitPattern) }

    /// The in-memory read-out of `tokens` in batches of 4, as `cache` builds: the reference a cached table must equal.
    func build(_ model: Qwen2Model, _ tokens: [[Int]]) -> ItemTable {
        ItemTable.build(model: model, itemTokens: tokens, weightsHash: "", promptsHash: "", batchSize: 4, progress: false)
    }

    /// A seeded tiny model, the catalogue's item tokens, their in-memory table, a fresh directory and the model's key.
    func setup(seed: UInt64, directory: String) throws
        -> (model: Qwen2Model, tokenizer: Tokenizer, all: [[Int]], reference: ItemTable, directory: String, key: ItemTableCache.Key) {
        let model = try Fixtures.randomModel(Fixtures.tinyTied, seed: seed)
        let tokenizer = try Fixtures.tokenizer()
        let all = tokens(tokenizer)
        return (model, tokenizer, all, build(model, all), Fixtures.temporaryDirectory(directory), key(model))
    }

    func files(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    func testTableReadFromTheCacheEqualsAFreshBuildBitwise() throws {
        let model = try Fixtures.randomModel(Fixtures.tinyTied, seed: 4)
        let tokenizer = try Fixtures.tokenizer()
        let directory = Fixtures.temporaryDirectory("itemtablecache-read") + "/cache"   // made by the first build
        let prompts = catalog.items.map { Prompts.item($0, stats: ItemStats(count: 3, meanRating: 4)) }
        // Through DualHeadModel, with the production chunk and batch sizes: the uncached load is the reference.
        let fresh = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: catalog, itemPrompts: prompts, progress: false, promptFormat: .targetRelative)
        let first = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: catalog, itemPrompts: prompts,
                                      itemTableCache: ItemTableCache(directory: directory), progress: false, promptFormat: .targetRelative)
        let name = "item-table-\(fresh.itemTable.weightsHash)-\(fresh.itemTable.promptsHash)-float32.safetensors"
        XCTAssertEqual(files(directory), [name], "one finished file, named by the hashes, no partial left")
        let second = try DualHeadModel(model: model, tokenizer: tokenizer, catalog: catalog, itemPrompts: prompts,
                                       itemTableCache: ItemTableCache(directory: directory), progress: false, promptFormat: .targetRelative)
        XCTAssertEqual(bits(first.itemTable), bits(fresh.itemTable))
        XCTAssertEqual(bits(second.itemTable), bits(fresh.itemTable))
        // The file is a plain safetensors file of the table (its own reader agrees).
        let file = try SafetensorsFile(path: directory + "/" + name)
        XCTAssertEqual(try file.array(ItemTable.tensorName, expectedShape: [catalog.count, 32]).map(\.bitPattern),
                       bits(fresh.itemTable))
        // And it was read, not read out: the cache says so, and never asks for the tokens.
        var production = ItemTableCache(directory: directory)
        let warnings = Warnings()
        production.warn = { warnings.lines.append($0) }
        let k = ItemTableCache.Key(weightsHash: fresh.itemTable.weightsHash, promptsHash: fresh.itemTable.promptsHash,
                                   precision: "float32", count: catalog.count, dimension: 32)
        let (read, outcome) = try production.table(k, model: model, itemTokens: { XCTFail("read out"); return [] },
                                                   progress: false)
        XCTAssertEqual(outcome, .read)
        XCTAssertEqual(bits(read), bits(fresh.itemTable))
        XCTAssertEqual(warnings.lines, [])
    }

    func testInterruptedBuildResumesWithTheRemainingRowsOnly() throws {
        let (model, tokenizer, all, reference, directory, k) = try setup(seed: 5, directory: "itemtablecache-resume")
        // Stopped once 2 chunks (16 rows) are saved, as a killed server: a partial file, no finished one.
        let (stopped, _) = cache(directory, stopAfter: 2)
        XCTAssertThrowsError(try stopped.table(k, model: model, itemTokens: { all }, progress: false)) {
            XCTAssertTrue($0 is ItemTableCache.Interrupted, "\($0)")
        }
        XCTAssertEqual(files(directory), [k.fileName + ".partial"])
        // Resumed with the first 16 items' tokens replaced by other text: had those rows been read out again, they
        // would differ from the reference; the rows after them must be read out (the file has none of them).
        let other = tokenizer.encode("Summarise the item.\nTitle: something else entirely\n<answer>")
        let tampered = (0..<all.count).map { $0 < 16 ? other : all[$0] }
        let (resumer, warnings) = cache(directory)
        let (table, outcome) = try resumer.table(k, model: model, itemTokens: { tampered }, progress: false)
        XCTAssertEqual(outcome, .built(resumedAt: 16, saved: true))
        XCTAssertEqual(bits(table), reference.vectors.toArray().map(\.bitPattern), "bitwise the uninterrupted table")
        XCTAssertEqual(files(directory), [k.fileName])
        XCTAssertEqual(warnings.lines, [])
        // A control: without the partial file, the tampered tokens do change the first rows.
        let control = build(model, tampered)
        XCTAssertNotEqual(control.vectors.toArray()[0..<32], reference.vectors.toArray()[0..<32])
        // The finished file is read back whole.
        let (again, second) = try resumer.table(k, model: model, itemTokens: { tampered }, progress: false)
        XCTAssertEqual(second, .read)
        XCTAssertEqual(bits(again), bits(table))
    }

    func testAnotherWeightsPromptsOrPrecisionHashMissesTheCache() throws {
        let (model, _, all, _, directory, k) = try setup(seed: 6, directory: "itemtablecache-miss")
        let (c, warnings) = cache(directory)
        XCTAssertEqual(try c.table(k, model: model, itemTokens: { all }, progress: false).outcome, .built(resumedAt: 0, saved: true))
        XCTAssertEqual(try c.table(k, model: model, itemTokens: { all }, progress: false).outcome, .read)
        var prompts = k; prompts.promptsHash = "p2"
        var precision = k; precision.precision = "bfloat16"
        for other in [prompts, precision] {
            XCTAssertEqual(try c.table(other, model: model, itemTokens: { all }, progress: false).outcome,
                           .built(resumedAt: 0, saved: true), "\(other)")
        }
        // A weights change: its own file, and the table of the new weights (not the stale one).
        model.parameters.tensor("model.norm.weight")[0] += 0.5
        let changed = key(model)
        XCTAssertNotEqual(changed.weightsHash, k.weightsHash)
        let (table, outcome) = try c.table(changed, model: model, itemTokens: { all }, progress: false)
        XCTAssertEqual(outcome, .built(resumedAt: 0, saved: true))
        XCTAssertEqual(bits(table), bits(build(model, all)))
        XCTAssertEqual(Set(files(directory)), Set([k, prompts, precision, changed].map(\.fileName)))
        XCTAssertEqual(warnings.lines, [])
        // A file renamed to another key's name is read by nobody: its header names the hashes it was built for.
        try FileManager.default.removeItem(atPath: c.path(prompts))
        try FileManager.default.copyItem(atPath: c.path(k), toPath: c.path(prompts))
        XCTAssertEqual(try c.table(prompts, model: model, itemTokens: { all }, progress: false).outcome, .built(resumedAt: 0, saved: true))
        XCTAssertEqual(warnings.lines.count, 1)
        XCTAssertTrue(warnings.lines[0].contains(c.path(prompts)) && warnings.lines[0].contains("prompts_hash"), warnings.lines[0])
    }

    func testTruncatedGarbageForeignOrCorruptFilesAreIgnoredWithAWarning() throws {
        let (model, _, all, reference, directory, k) = try setup(seed: 7, directory: "itemtablecache-bad")
        let (c, warnings) = cache(directory)
        _ = try c.table(k, model: model, itemTokens: { all }, progress: false)
        let good = try Foundation.Data(contentsOf: URL(fileURLWithPath: c.path(k)))
        var flipped = good
        flipped[good.count - 100] ^= 0x01
        // A header length claiming 2^62 bytes, and one whose shape claims 10^12 rows in a short file: refused
        // before anything of that size is allocated.
        var huge = Foundation.Data(count: 64)
        huge[7] = 0x40
        let foreignTable = ItemTable(vectors: reference.vectors, weightsHash: k.weightsHash, promptsHash: k.promptsHash)
        let foreignPath = directory + "/foreign"
        try foreignTable.save(to: foreignPath)   // the checkpoint's format: no format tag, no row count
        let foreign = try Foundation.Data(contentsOf: URL(fileURLWithPath: foreignPath))
        let giant = SafetensorsWriter.header([(ItemTable.tensorName, [1_000_000_000_000, 32])], metadata: [:]) + Foundation.Data(count: 64)
        let cases: [(String, Foundation.Data, String)] = [
            ("truncated", good.prefix(good.count / 2), "truncated"),
            ("empty", Foundation.Data(), "truncated"),
            ("garbage", Foundation.Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7919) }), "header"),
            ("huge header", huge, "header"),
            ("giant shape", giant, "ends at byte"),
            ("foreign", foreign, "not an r2ec item table cache file"),
            ("one bit flipped", flipped, "rows_hash"),
        ]
        for (what, bytes, reason) in cases {
            warnings.lines = []
            try bytes.write(to: URL(fileURLWithPath: c.path(k)))
            let (table, outcome) = try c.table(k, model: model, itemTokens: { all }, progress: false)
            XCTAssertEqual(outcome, .built(resumedAt: 0, saved: true), what)
            XCTAssertEqual(bits(table), bits(reference), what)
            XCTAssertEqual(warnings.lines.count, 1, "\(what): \(warnings.lines)")
            XCTAssertTrue(warnings.lines.first?.contains(c.path(k)) == true, "\(what): \(warnings.lines)")
            XCTAssertTrue(warnings.lines.first?.contains(reason) == true, "\(what): \(warnings.lines)")
            XCTAssertEqual(try Foundation.Data(contentsOf: URL(fileURLWithPath: c.path(k))), good, "\(what): rebuilt in place")
        }
        // A partial file cut short (its end lost) is not resumed: a warning naming it, and the build starts over.
        let (stopped, _) = cache(directory, stopAfter: 3)
        try FileManager.default.removeItem(atPath: c.path(k))
        XCTAssertThrowsError(try stopped.table(k, model: model, itemTokens: { all }, progress: false))
        let partial = c.path(k) + ".partial"
        let header = ItemTableCache.header(k, batchSize: 4, rows: 0, hash: FNV1a()).count
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: partial))
        try handle.truncate(atOffset: UInt64(header + 20 * 32 * 4))
        try handle.close()
        warnings.lines = []
        XCTAssertEqual(try c.table(k, model: model, itemTokens: { all }, progress: false).outcome,
                       .built(resumedAt: 0, saved: true), "rows past the end: the data section is short")
        XCTAssertEqual(warnings.lines.count, 1)
        XCTAssertTrue(warnings.lines.first?.contains(partial) == true && warnings.lines.first?.contains("truncated") == true,
                      "\(warnings.lines)")
        XCTAssertEqual(bits(try c.table(k, model: model, itemTokens: { all }, progress: false).table), bits(reference))
    }
}
