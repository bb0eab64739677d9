// Synthetic interaction data at any size, for cost, memory and scaling curves (quality is measured on real data).
// Items have Zipf popularity (weight (rank+1)^-s, ranks shuffled over ids) and belong to taste clusters; each user
// starts in one cluster (drawn by cluster mass, so the marginal item distribution stays exactly Zipf) and drifts
// towards a second one along their own time line, with a share of events explored from global popularity. Users'
// activity is log-normal; each user rates an item at most once; timestamps come in sessions. Everything is a
// function of the seed (per-user and per-item streams), and the events are written user by user as they are drawn:
// memory is O(items + users), never O(events).
import Foundation

/// What to generate. `validated()` checks every field and resolves the automatic cluster count.
public struct SyntheticSpec: Sendable, Equatable {
    public var users: Int
    public var items: Int
    public var events: Int
    public var seed: UInt64 = 1
    /// Zipf exponent s of item popularity: the item of rank r (0-based) has weight (r + 1)^-s.
    public var zipfExponent: Double = 1.0
    /// Taste clusters; 0 picks sqrt(items) / 4 clamped to 4...64 (and never more than the items). Few, large clusters
    /// keep a user's favourite cluster from running dry (each user rates an item once), which would flatten the
    /// popularity curve below the Zipf law.
    public var clusters: Int = 0
    /// Every user gets at least this many events (5: the usual 5-core, enough for a leave-one-out split).
    public var minUserEvents: Int = 5
    /// Share of events drawn from global popularity instead of the user's current cluster.
    public var exploration: Double = 0.1
    /// Share of users whose taste moves to a second cluster over their time line (the rest keep one).
    public var drift: Double = 0.5
    /// Spread of user activity: log-normal sigma of events per user.
    public var activitySigma: Double = 1.0
    /// First possible timestamp (Unix seconds; 2015-01-01) and the span of days events fall in.
    public var start: Int64 = 1_420_070_400
    public var days: Int = 1095

    public init(users: Int, items: Int, events: Int) {
        self.users = users
        self.items = items
        self.events = events
    }

    /// At most this many events per user: half the catalogue (each user rates an item at most once).
    public var maxUserEvents: Int { items / 2 }

    /// The spec with `clusters` resolved, or `DataError.invalid` naming the first bad field.
    public func validated() throws -> SyntheticSpec {
        func bad(_ message: String) -> DataError { .invalid(message) }
        guard users >= 1 else { throw bad("users must be at least 1 (got \(users))") }
        guard items >= 2 else { throw bad("items must be at least 2 (got \(items))") }
        guard minUserEvents >= 1 else { throw bad("min_user_events must be at least 1 (got \(minUserEvents))") }
        guard minUserEvents <= maxUserEvents else {
            throw bad("min_user_events (\(minUserEvents)) is more than half the items (\(items)): users rate an item at most once")
        }
        let (low, lowOverflow) = users.multipliedReportingOverflow(by: minUserEvents)
        guard !lowOverflow, events >= low else {
            throw bad("events (\(events)) must be at least users x min_user_events (\(users) x \(minUserEvents))")
        }
        let (high, highOverflow) = users.multipliedReportingOverflow(by: maxUserEvents)
        guard highOverflow || events <= high else {
            throw bad("events (\(events)) must be at most users x items / 2 (\(high)): a user rates an item at most once")
        }
        guard items <= Int(Int32.max), users <= Int(Int32.max) else { throw bad("users and items must fit in 32 bits") }
        guard zipfExponent.isFinite, zipfExponent >= 0, zipfExponent <= 4 else {
            throw bad("zipf exponent must be in 0...4 (got \(zipfExponent))")
        }
        guard clusters >= 0, clusters <= SyntheticText.maxClusters else {
            throw bad("clusters must be in 0...\(SyntheticText.maxClusters) (0: automatic; got \(clusters))")
        }
        guard exploration.isFinite, (0...1).contains(exploration) else { throw bad("exploration must be in 0...1 (got \(exploration))") }
        guard drift.isFinite, (0...1).contains(drift) else { throw bad("drift must be in 0...1 (got \(drift))") }
        guard activitySigma.isFinite, (0...4).contains(activitySigma) else {
            throw bad("activity sigma must be in 0...4 (got \(activitySigma))")
        }
        guard days >= 1, days <= 36_500 else { throw bad("days must be in 1...36500 (got \(days))") }
        guard start >= 0, start <= 4_000_000_000 else { throw bad("start must be a Unix time in 0...4e9 (got \(start))") }
        var s = self
        if s.clusters == 0 { s.clusters = max(4, min(64, Int(Double(items).squareRoot() / 4))) }
        s.clusters = min(s.clusters, items)
        return s
    }
}

/// What `SyntheticData.write` produced.
public struct SyntheticSummary: Sendable {
    public var interFile: String
    public var itemFile: String
    public var users: Int
    public var items: Int
    public var events: Int
    public var clusters: Int
    /// Users with the most and the fewest events.
    public var maxUserEvents: Int
    public var minUserEvents: Int
}

public enum SyntheticData {
    /// Writes DIRECTORY/NAME.item and DIRECTORY/NAME.inter (RecBole atomic files) for `spec`. Each file is written
    /// to NAME.ext.partial and renamed when complete. `progress(done, total)` counts rows (items, then events).
    @discardableResult
    public static func write(_ spec: SyntheticSpec, directory: String, name: String,
                             progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> SyntheticSummary {
        let spec = try spec.validated()
        guard !name.isEmpty, !name.contains("/") else { throw DataError.invalid("name '\(name)' must be a non-empty file name") }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let world = SyntheticWorld(spec)
        let total = spec.items + spec.events
        let itemPath = (directory as NSString).appendingPathComponent(name + ".item")
        let interPath = (directory as NSString).appendingPathComponent(name + ".inter")

        let itemFile = try AtomicWriter(path: itemPath)
        itemFile.header(["item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq"])
        for item in 0..<spec.items {
            let text = world.text(of: item)
            itemFile.int(item + 1); itemFile.tab()
            itemFile.text(text.title); itemFile.tab()
            itemFile.int(text.year); itemFile.tab()
            itemFile.text(world.genres(of: item)); itemFile.newline()
            if item % 65_536 == 0 { progress(item, total) }
        }
        try itemFile.commit()

        let interFile = try AtomicWriter(path: interPath)
        interFile.header(["user_id:token", "item_id:token", "rating:float", "timestamp:float"])
        var written = 0
        var stream = SyntheticEvents(world: world)
        var minEvents = Int.max, maxEvents = 0
        for user in 0..<spec.users {
            let events = stream.user(user)
            minEvents = min(minEvents, events.count)
            maxEvents = max(maxEvents, events.count)
            for e in events {
                interFile.int(user + 1); interFile.tab()
                interFile.int(Int(e.item) + 1); interFile.tab()
                interFile.int(Int(e.rating)); interFile.tab()
                interFile.int(Int(e.timestamp)); interFile.newline()
            }
            let before = written
            written += events.count
            if before / 65_536 != written / 65_536 { progress(spec.items + written, total) }
        }
        precondition(written == spec.events, "synthetic events: wrote \(written), planned \(spec.events)")
        try interFile.commit()
        progress(total, total)
        return SyntheticSummary(interFile: interPath, itemFile: itemPath, users: spec.users, items: spec.items,
                                events: written, clusters: spec.clusters, maxUserEvents: maxEvents,
                                minUserEvents: minEvents)
    }

    /// A seed for stream `stream` of entity `index` (a user, an item): independent of every other stream.
    static func streamSeed(_ seed: UInt64, _ stream: UInt64, _ index: Int) -> UInt64 {
        var g = SplitMix64(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
        var h = SplitMix64(seed: g.next() ^ (UInt64(index) &* 0x9E37_79B9_7F4A_7C15))
        return h.next()
    }
}

/// Uniform doubles in [0, 1) with 53 bits.
extension SplitMix64 {
    mutating func nextDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// The item side: popularity ranks, clusters and the tables events are sampled from (O(items) memory).
final class SyntheticWorld {
    let spec: SyntheticSpec
    /// Item index by popularity rank.
    let itemOfRank: [Int32]
    let clusterOfItem: [Int32]
    /// Cumulative Zipf weight by rank.
    let globalCumulative: [Double]
    /// Per cluster, its members (most popular first) in one array: cluster c holds memberStart[c]..<memberStart[c+1].
    let members: [Int32]
    let memberStart: [Int]
    /// Cumulative weight within each member run (restarting at each cluster).
    let memberCumulative: [Double]
    /// Cumulative cluster mass, for drawing a user's clusters by mass.
    let clusterCumulative: [Double]
    let vocabulary: SyntheticText

    init(_ spec: SyntheticSpec) {
        self.spec = spec
        let n = spec.items, c = spec.clusters
        var rng = SplitMix64(seed: SyntheticData.streamSeed(spec.seed, 1, 0))
        // Ranks shuffled over ids (Fisher-Yates), so popular items are spread over the id range as in real data.
        var order = (0..<n).map { Int32($0) }
        for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, rng.below(i + 1)) }
        itemOfRank = order
        var cumulative = [Double](repeating: 0, count: n)
        var sum = 0.0
        for r in 0..<n { sum += pow(Double(r + 1), -spec.zipfExponent); cumulative[r] = sum }
        globalCumulative = cumulative

        // Cluster sizes vary (gamma(2)-distributed shares); every cluster gets at least one item.
        var share = (0..<c).map { _ in -log(max(1e-12, rng.nextDouble())) - log(max(1e-12, rng.nextDouble())) }
        let shareTotal = share.reduce(0, +)
        var running = 0.0
        for i in 0..<c { running += share[i] / shareTotal; share[i] = running }
        var cluster = [Int32](repeating: 0, count: n)
        var sizes = [Int](repeating: 0, count: c)
        for item in 0..<n {
            let x = rng.nextDouble() * running
            var k = Self.firstAbove(share, x, 0, c)
            k = min(k, c - 1)
            cluster[item] = Int32(k)
            sizes[k] += 1
        }
        for k in 0..<c where sizes[k] == 0 {
            // Take an item from the largest cluster.
            let from = sizes.indices.max { sizes[$0] < sizes[$1] }!
            var item = rng.below(n)
            while cluster[item] != Int32(from) { item = (item + 1) % n }
            cluster[item] = Int32(k); sizes[from] -= 1; sizes[k] += 1
        }
        clusterOfItem = cluster

        var start = [Int](repeating: 0, count: c + 1)
        for k in 0..<c { start[k + 1] = start[k] + sizes[k] }
        var fill = Array(start[0..<c])
        var flat = [Int32](repeating: 0, count: n)
        var flatCumulative = [Double](repeating: 0, count: n)
        var mass = [Double](repeating: 0, count: c)
        for r in 0..<n {  // rank order: each cluster's members come out most popular first
            let item = Int(order[r]), k = Int(cluster[item])
            let w = cumulative[r] - (r > 0 ? cumulative[r - 1] : 0)
            mass[k] += w
            flat[fill[k]] = Int32(item)
            flatCumulative[fill[k]] = mass[k]
            fill[k] += 1
        }
        members = flat
        memberStart = start
        memberCumulative = flatCumulative
        var clusterRunning = [Double](repeating: 0, count: c)
        var m = 0.0
        for k in 0..<c { m += mass[k]; clusterRunning[k] = m }
        clusterCumulative = clusterRunning
        vocabulary = SyntheticText(clusters: c, seed: SyntheticData.streamSeed(spec.seed, 2, 0))
    }

    /// The first index in lo..<hi whose cumulative value exceeds x (hi - 1 when none does: rounding at the top).
    @inline(__always)
    static func firstAbove(_ cumulative: [Double], _ x: Double, _ lo: Int, _ hi: Int) -> Int {
        var lo = lo, hi = hi
        let last = hi - 1
        while lo < hi {
            let mid = (lo + hi) >> 1
            if cumulative[mid] > x { hi = mid } else { lo = mid + 1 }
        }
        return min(lo, last)
    }

    func sampleGlobal(_ rng: inout SplitMix64) -> Int32 {
        let x = rng.nextDouble() * globalCumulative[spec.items - 1]
        return itemOfRank[Self.firstAbove(globalCumulative, x, 0, spec.items)]
    }

    func sampleCluster(_ rng: inout SplitMix64) -> Int {
        let x = rng.nextDouble() * clusterCumulative[spec.clusters - 1]
        return Self.firstAbove(clusterCumulative, x, 0, spec.clusters)
    }

    func sample(inCluster k: Int, _ rng: inout SplitMix64) -> Int32 {
        let lo = memberStart[k], hi = memberStart[k + 1]
        let x = rng.nextDouble() * memberCumulative[hi - 1]
        return members[Self.firstAbove(memberCumulative, x, lo, hi)]
    }

    /// An item's intrinsic quality (its mean rating's offset), a function of the seed and the item.
    func quality(of item: Int32) -> Double {
        var g = SplitMix64(seed: SyntheticData.streamSeed(spec.seed, 3, Int(item)))
        return 0.5 * Double(g.nextGaussian())
    }

    func text(of item: Int) -> (title: String, year: Int) {
        var g = SplitMix64(seed: SyntheticData.streamSeed(spec.seed, 4, item))
        return vocabulary.title(cluster: Int(clusterOfItem[item]), &g)
    }

    func genres(of item: Int) -> String { vocabulary.genres[Int(clusterOfItem[item])] }
}

/// The event stream, user by user: per-user event counts are fixed up front (exactly `spec.events` in total),
/// then each user's events are drawn from their own seeded stream.
struct SyntheticEvents {
    struct Event { var item: Int32; var rating: Int8; var timestamp: Int64 }

    let world: SyntheticWorld
    /// Events per user.
    let counts: [Int32]
    /// The user who last took each item (the no-repeat check without a set per user).
    private var takenBy: [Int32]
    private var buffer: [Event] = []

    init(world: SyntheticWorld) {
        self.world = world
        counts = Self.allocate(world.spec)
        takenBy = [Int32](repeating: -1, count: world.spec.items)
    }

    /// Events per user: min_user_events each, and the rest shared in proportion to log-normal activity, capped at
    /// max_user_events (water-filling on the share, then rounding that keeps the exact total).
    static func allocate(_ spec: SyntheticSpec) -> [Int32] {
        let u = spec.users
        let activity = (0..<u).map { user -> Double in
            var g = SplitMix64(seed: SyntheticData.streamSeed(spec.seed, 5, user))
            return exp(spec.activitySigma * Double(g.nextGaussian()))
        }
        let extra = spec.events - u * spec.minUserEvents
        if extra == 0 { return [Int32](repeating: Int32(spec.minUserEvents), count: u) }
        let cap = Double(spec.maxUserEvents - spec.minUserEvents)
        // The scale lambda with sum(min(cap, lambda * a)) = extra, by bisection.
        func assigned(_ lambda: Double) -> Double { activity.reduce(0) { $0 + min(cap, lambda * $1) } }
        var lo = 0.0, hi = 1.0
        while assigned(hi) < Double(extra) && hi < 1e300 { hi *= 2 }
        for _ in 0..<100 {
            let mid = (lo + hi) / 2
            if assigned(mid) < Double(extra) { lo = mid } else { hi = mid }
        }
        let share = activity.map { min(cap, hi * $0) }
        var counts = share.map { Int32(spec.minUserEvents + Int($0.rounded(.down))) }
        var left = spec.events - counts.reduce(0) { $0 + Int($1) }
        // Hand out the rounding remainder: first to users with a fractional share, then to anyone below the cap.
        for pass in 0..<2 where left != 0 {
            for user in 0..<u where left != 0 {
                let below = Int(counts[user]) < spec.maxUserEvents
                let fractional = share[user] > share[user].rounded(.down)
                if left > 0 && below && (pass == 1 || fractional) { counts[user] += 1; left -= 1 }
                if left < 0 && Int(counts[user]) > spec.minUserEvents { counts[user] -= 1; left += 1 }
            }
        }
        return counts
    }

    /// The events of `user`, oldest first (valid until the next call).
    mutating func user(_ user: Int) -> [Event] {
        let spec = world.spec
        var g = SplitMix64(seed: SyntheticData.streamSeed(spec.seed, 6, user))
        let n = Int(counts[user])
        let first = world.sampleCluster(&g)
        let last = g.nextDouble() < spec.drift ? world.sampleCluster(&g) : first
        let bias = 0.4 * Double(g.nextGaussian())

        // Time line: joins somewhere in the first 90% of the span (more users later), active for a share of the
        // rest; sessions of a few events minutes apart, separated by gaps that fill the active time.
        let span = Double(spec.days) * 86_400
        let joined = span * 0.9 * g.nextDouble().squareRoot()
        let active = (span - joined) * max(0.02, g.nextDouble() * g.nextDouble())
        let withinSession = 240.0
        let sessionStart = 0.25
        let perGap = n > 1 ? active / Double(n - 1) : 0
        let sessionGap = max(3600, (perGap - (1 - sessionStart) * withinSession) / sessionStart)
        var t = Double(spec.start) + joined

        buffer.removeAll(keepingCapacity: true)
        let mark = Int32(truncatingIfNeeded: user)
        for k in 0..<n {
            if k > 0 {
                let mean = g.nextDouble() < sessionStart ? sessionGap : withinSession
                t += max(1, (-log(max(1e-12, g.nextDouble())) * mean).rounded())
            }
            let towardsLast = n > 1 ? Double(k) / Double(n - 1) : 0
            let cluster = g.nextDouble() < towardsLast ? last : first
            var item: Int32 = -1
            for _ in 0..<24 {
                let candidate = g.nextDouble() < spec.exploration
                    ? world.sampleGlobal(&g) : world.sample(inCluster: cluster, &g)
                if takenBy[Int(candidate)] != mark { item = candidate; break }
            }
            if item < 0 {
                // A heavy user who took most of their clusters' mass: any item not taken yet (at most half are).
                repeat { item = Int32(g.below(spec.items)) } while takenBy[Int(item)] == mark
            }
            takenBy[Int(item)] = mark
            let affinity = world.clusterOfItem[Int(item)] == Int32(cluster) ? 0.4 : -0.2
            let score = 3.6 + world.quality(of: item) + bias + affinity + 0.8 * Double(g.nextGaussian())
            let rating = Int8(min(5, max(1, score.rounded())))
            buffer.append(Event(item: item, rating: rating, timestamp: Int64(t)))
        }
        return buffer
    }
}
