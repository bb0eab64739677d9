// `SyntheticData`: the files read back through the RecBole atomic reader, checked against what they promise:
// exact sizes, the Zipf exponent fitted back from the counts, taste clusters and their drift visible in the
// sequences, the same bytes for the same seed, and errors naming the field.
import Foundation
import XCTest
@testable import Data

final class SyntheticDataTests: XCTestCase {
    func generate(_ spec: SyntheticSpec, _ dir: TempDir, name: String = "synth") throws -> Dataset {
        try SyntheticData.write(spec, directory: dir.path, name: name)
        return try DatasetLoader.load(dir.path)
    }

    /// Least-squares slope of log(count) against log(rank) over ranks lo...hi (1-based), counts sorted descending.
    func fittedExponent(_ counts: [Int], ranks: ClosedRange<Int>) -> Double {
        let sorted = counts.sorted(by: >)
        let xs = ranks.map { log(Double($0)) }, ys = ranks.map { log(Double(max(sorted[$0 - 1], 1))) }
        let mx = xs.reduce(0, +) / Double(xs.count), my = ys.reduce(0, +) / Double(ys.count)
        var sxy = 0.0, sxx = 0.0
        for (x, y) in zip(xs, ys) { sxy += (x - mx) * (y - my); sxx += (x - mx) * (x - mx) }
        return -sxy / sxx
    }

    func testRoundTripThroughTheAtomicReader() throws {
        let dir = TempDir()
        var spec = SyntheticSpec(users: 400, items: 900, events: 12_000)
        spec.seed = 7
        let d = try generate(spec, dir)
        XCTAssertEqual(d.name, "synth")
        XCTAssertEqual(d.catalog.count, 900, "every item is in the catalogue, rated or not")
        XCTAssertEqual(d.catalog.items.map(\.id), (1...900).map(String.init))
        XCTAssertEqual(d.userIds, (1...400).map(String.init))
        XCTAssertEqual(d.interactions.count, 12_000)
        let genres = Set(SyntheticText.genreNames)
        for item in d.catalog.items {
            XCTAssertFalse(item.title.isEmpty)
            XCTAssertTrue((1930...2024).contains(item.year), "year \(item.year)")
            XCTAssertFalse(item.genres.isEmpty)
            XCTAssertTrue(item.genres.allSatisfy(genres.contains), "genres \(item.genres)")
            // Titles are words from the vocabularies: letters, spaces, ':' and "'s", no tabs or digits but sequels'.
            XCTAssertTrue(item.title.allSatisfy { $0.isLetter || $0 == " " || $0 == ":" || $0 == "'" || $0.isNumber },
                          item.title)
        }
        var perUser = [Int](repeating: 0, count: d.numUsers)
        var pairs = Set<Int>()
        var last = [Int64](repeating: 0, count: d.numUsers)
        for x in d.interactions {
            perUser[x.user] += 1
            XCTAssertTrue(pairs.insert(x.user * 1000 + x.item).inserted, "user \(x.user) rated item \(x.item) twice")
            XCTAssertTrue((1...5).contains(x.rating))
            XCTAssertGreaterThanOrEqual(x.timestamp, spec.start)
            XCTAssertGreaterThan(x.timestamp, last[x.user], "a user's events are written oldest first, one second apart at least")
            last[x.user] = x.timestamp
        }
        XCTAssertGreaterThanOrEqual(perUser.min()!, spec.minUserEvents)
        XCTAssertLessThanOrEqual(perUser.max()!, spec.maxUserEvents)
        // Log-normal activity: some users have several times the median.
        XCTAssertGreaterThan(perUser.max()!, 3 * perUser.sorted()[perUser.count / 2])
    }

    func testSameSeedSameBytesOtherSeedOtherBytes() throws {
        var spec = SyntheticSpec(users: 300, items: 500, events: 5_000)
        spec.seed = 42
        let a = TempDir(), b = TempDir(), c = TempDir()
        try SyntheticData.write(spec, directory: a.path, name: "x")
        try SyntheticData.write(spec, directory: b.path, name: "x")
        spec.seed = 43
        try SyntheticData.write(spec, directory: c.path, name: "x")
        for ext in ["inter", "item"] {
            let fa = try Data(contentsOf: URL(fileURLWithPath: a.path + "/x." + ext))
            XCTAssertEqual(fa, try Data(contentsOf: URL(fileURLWithPath: b.path + "/x." + ext)), ext)
            XCTAssertNotEqual(fa, try Data(contentsOf: URL(fileURLWithPath: c.path + "/x." + ext)), ext)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: a.path + "/x.inter.partial"))
    }

    /// The exponent given is the exponent fitted back from events per item below the head (where each user's
    /// one-rating-per-item limit flattens the curve, as in real catalogues).
    func testZipfExponentFitsBack() throws {
        var fits: [Double] = []
        for s in [0.8, 1.2] {
            let dir = TempDir()
            var spec = SyntheticSpec(users: 20_000, items: 5_000, events: 200_000)
            spec.zipfExponent = s
            let d = try generate(spec, dir)
            var counts = [Int](repeating: 0, count: d.catalog.count)
            for x in d.interactions { counts[x.item] += 1 }
            let fit = fittedExponent(counts, ranks: 100...1000)
            print(String(format: "zipf %.2f: fitted %.3f over ranks 100-1000", s, fit))
            XCTAssertEqual(fit, s, accuracy: 0.1)
            fits.append(fit)
        }
        XCTAssertGreaterThan(fits[1] - fits[0], 0.3)
    }

    /// Items of a cluster share its genres, so genre sets show the clusters: consecutive events of a user fall in
    /// the same cluster far more often than chance, and drifting users' first and last events less often than
    /// their consecutive ones.
    func testTasteClustersAndDriftShowInTheSequences() throws {
        let dir = TempDir()
        var spec = SyntheticSpec(users: 2_000, items: 3_000, events: 80_000)
        spec.clusters = 12
        spec.drift = 1
        let d = try generate(spec, dir)
        let label = d.catalog.items.map { $0.genres.joined(separator: " ") }
        XCTAssertEqual(Set(label).count, 12)
        var share: [String: Double] = [:]
        for x in d.interactions { share[label[x.item], default: 0] += 1 / Double(d.interactions.count) }
        let chance = share.values.reduce(0) { $0 + $1 * $1 }
        var adjacent = 0, adjacentSame = 0, endsSame = 0, users = 0
        for seq in d.sequences() where seq.count >= 10 {
            for k in 1..<seq.count {
                adjacent += 1
                if label[seq.items[k]] == label[seq.items[k - 1]] { adjacentSame += 1 }
            }
            users += 1
            if label[seq.items[0]] == label[seq.items[seq.count - 1]] { endsSame += 1 }
        }
        let adjacentRate = Double(adjacentSame) / Double(adjacent), endsRate = Double(endsSame) / Double(users)
        print(String(format: "same cluster: adjacent %.3f, first vs last %.3f, chance %.3f", adjacentRate, endsRate, chance))
        XCTAssertGreaterThan(adjacentRate, 3 * chance)
        XCTAssertLessThan(endsRate, adjacentRate - 0.2)
    }

    func testEventTotalsAreExactWhenCapsBind() throws {
        // 20 items: at most 10 events per user, so 10 users x 10 events leaves no freedom at all.
        let dir = TempDir()
        let d = try generate(SyntheticSpec(users: 10, items: 20, events: 100), dir)
        XCTAssertEqual(d.interactions.count, 100)
        XCTAssertEqual(Set(d.sequences().map(\.count)), [10])
        let low = TempDir()
        var spec = SyntheticSpec(users: 50, items: 40, events: 150)
        spec.minUserEvents = 3
        XCTAssertEqual(Set(try generate(spec, low).sequences().map(\.count)), [3])
    }

    func testInvalidSpecsNameTheField() {
        func message(_ spec: SyntheticSpec) -> String {
            do { _ = try spec.validated(); return "accepted" } catch { return "\(error)" }
        }
        var s = SyntheticSpec(users: 10, items: 100, events: 20)
        XCTAssertTrue(message(s).hasPrefix("events (20) must be at least users x min_user_events"), message(s))
        s.events = 10_000
        XCTAssertTrue(message(s).hasPrefix("events (10000) must be at most users x items / 2"), message(s))
        s.events = 100
        XCTAssertEqual(message(s), "accepted")
        s.zipfExponent = -1
        XCTAssertTrue(message(s).hasPrefix("zipf exponent"), message(s))
        s.zipfExponent = .nan
        XCTAssertTrue(message(s).hasPrefix("zipf exponent"), message(s))
        s.zipfExponent = 1
        s.clusters = 5000
        XCTAssertTrue(message(s).hasPrefix("clusters"), message(s))
        s.clusters = 0
        s.items = 1
        XCTAssertTrue(message(s).hasPrefix("items"), message(s))
        s.items = 100
        s.users = 0
        XCTAssertTrue(message(s).hasPrefix("users"), message(s))
        s.users = Int.max / 2
        XCTAssertTrue(message(s).hasPrefix("events"), message(s))
        s.users = 10
        s.exploration = 2
        XCTAssertTrue(message(s).hasPrefix("exploration"), message(s))
        s.exploration = 0.1
        s.minUserEvents = 60
        XCTAssertTrue(message(s).hasPrefix("min_user_events"), message(s))
        XCTAssertThrowsError(try SyntheticData.write(SyntheticSpec(users: 2, items: 10, events: 10),
                                                     directory: TempDir().path, name: "a/b"))
    }
}
