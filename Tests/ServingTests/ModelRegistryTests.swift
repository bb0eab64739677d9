// Versions come from the registry when a load is installed: loads of one name that overlap get distinct versions
// in the order they complete, the last completed serves, and a name's versions never repeat after an unload.
import Data
import Eval
import Foundation
@testable import Serving
import XCTest

final class ModelRegistryTests: XCTestCase {
    func popularity(_ name: String) -> ServedModel {
        let catalog = Catalog(items: (1...3).map { Item(id: "\($0)", title: "t\($0)") })
        return ServedModel(name: name, recommender: Popularity(training: [], catalog: catalog), datasetName: "t",
                           userHistories: [:], itemStats: Array(repeating: ItemStats(count: 0, meanRating: 0), count: 3))
    }

    /// Eight loads of one name complete at once on eight threads: versions 2...9, each once, and the model
    /// serving is the one that got 9.
    func testConcurrentLoadsOfOneNameGetDistinctOrderedVersions() {
        let registry = ModelRegistry()
        XCTAssertEqual(registry.install(popularity("m")), 1)
        let loads = (0..<8).map { _ in popularity("m") }
        final class Versions: @unchecked Sendable {
            let lock = NSLock()
            var values: [UInt64]
            init(_ n: Int) { values = Array(repeating: 0, count: n) }
        }
        let box = Versions(loads.count)
        let start = DispatchSemaphore(value: 0)
        let group = DispatchGroup()
        for (i, model) in loads.enumerated() {
            group.enter()
            Thread {
                start.wait()
                let v = registry.install(model)
                box.lock.lock(); box.values[i] = v; box.lock.unlock()
                group.leave()
            }.start()
        }
        for _ in loads { start.signal() }
        group.wait()
        let versions = box.values
        XCTAssertEqual(versions.sorted(), Array(2...9))
        XCTAssertEqual(loads.map(\.version), versions, "each model knows the version it serves as")
        let serving = try! registry.model("m")
        XCTAssertEqual(serving.version, 9)
        XCTAssertTrue(serving === loads[versions.firstIndex(of: 9)!], "the last installed serves")
    }

    func testVersionsNeverRepeatAfterAnUnload() throws {
        let registry = ModelRegistry()
        registry.install(popularity("default"))
        XCTAssertEqual(registry.install(popularity("x")), 1)
        XCTAssertEqual(registry.install(popularity("x")), 2)
        try registry.remove("x")
        XCTAssertEqual(registry.install(popularity("x")), 3)
        XCTAssertEqual(try registry.model("x").version, 3)
        XCTAssertEqual(try registry.model("").version, 1)
    }
}
