// Train/validation/test splits. Leave-one-out: per user, stable time order, last item test, second-last validation,
// the rest train (docs/evaluation.md). Temporal (the R2ec paper's): every position i >= 1 of a user's sequence is a
// sample (up to 20 previous items -> item i); all samples stably sorted by target time, split 80/10/10 in that order.

/// One held-out prediction: the model sees `history` and should rank `target` high among unmasked items.
public struct EvalSample: Sendable, Equatable {
    public var user: Int
    /// What the model is given, oldest first.
    public var history: UserHistory
    public var target: Int
    public var targetTime: Int64
    /// Sorted, unique item indices that cannot be recommended: every item the user interacted with before the
    /// target (leave-one-out: training items at validation, training items and the validation item at test).
    /// The target itself is never masked, even when the user saw it before. Empty for training samples.
    public var masked: [Int]

    public init(user: Int, history: UserHistory, target: Int, targetTime: Int64, masked: [Int]) {
        self.user = user
        self.history = history
        self.target = target
        self.targetTime = targetTime
        self.masked = masked
    }
}

public struct Split: Sendable {
    /// "loo" or "temporal".
    public var kind: String
    /// Interactions a model may train on, in file order.
    public var train: [Interaction]
    public var validation: [EvalSample]
    public var test: [EvalSample]
    public var numUsers: Int

    /// Every position i >= 1 of each user's training sequence as a sample with up to `historyLength` previous
    /// items (no mask): what a sequential model trains on.
    public func trainingSamples(historyLength: Int = 20) -> [EvalSample] {
        var out: [EvalSample] = []
        for (u, seq) in Dataset.sequences(of: train, numUsers: numUsers).enumerated() where seq.count > 1 {
            for i in 1..<seq.count {
                out.append(EvalSample(user: u, history: Splits.window(seq, before: i, length: historyLength),
                                      target: seq.items[i], targetTime: seq.timestamps[i], masked: []))
            }
        }
        return out
    }
}

public enum Splits {
    public enum Kind: String, Sendable, CaseIterable { case loo, temporal }

    public static func make(_ kind: Kind, _ dataset: Dataset) -> Split {
        switch kind {
        case .loo: return leaveOneOut(dataset)
        case .temporal: return temporal(dataset)
        }
    }

    /// Leave-one-out. Users with 2 interactions get a test sample only; users with 1 are training-only.
    /// Histories are the whole prior sequence.
    public static func leaveOneOut(_ dataset: Dataset) -> Split {
        let n = dataset.numUsers
        // Per user, interaction positions in stable time order.
        var rows = [[Int]](repeating: [], count: n)
        for (i, x) in dataset.interactions.enumerated() { rows[x.user].append(i) }
        var heldOut = [Bool](repeating: false, count: dataset.interactions.count)
        var validation: [EvalSample] = [], test: [EvalSample] = []
        for u in 0..<n {
            let order = stableTimeOrder(rows[u], dataset.interactions)
            let seq = history(order, dataset.interactions)
            let m = order.count
            if m >= 3 {
                validation.append(sample(u, seq, at: m - 2, historyLength: nil))
                heldOut[order[m - 2]] = true
            }
            if m >= 2 {
                test.append(sample(u, seq, at: m - 1, historyLength: nil))
                heldOut[order[m - 1]] = true
            }
        }
        let train = dataset.interactions.enumerated().filter { !heldOut[$0.offset] }.map(\.element)
        return Split(kind: Kind.loo.rawValue, train: train, validation: validation, test: test, numUsers: n)
    }

    /// The paper's chronological protocol. Samples are generated user by user, position by position, then stably
    /// sorted by target time, so ties keep user order and a user's earlier positions always come first. Train
    /// interactions: the targets of training samples, plus first interactions no later than the last training target.
    public static func temporal(_ dataset: Dataset, historyLength: Int = 20,
                                fractions: (train: Double, validation: Double) = (0.8, 0.1)) -> Split {
        let n = dataset.numUsers
        var rows = [[Int]](repeating: [], count: n)
        for (i, x) in dataset.interactions.enumerated() { rows[x.user].append(i) }
        struct Ref { var user: Int; var position: Int; var interaction: Int; var time: Int64 }
        var refs: [Ref] = []
        var orders: [[Int]] = []
        var seqs: [UserHistory] = []
        for u in 0..<n {
            let order = stableTimeOrder(rows[u], dataset.interactions)
            orders.append(order)
            seqs.append(history(order, dataset.interactions))
            for p in order.indices.dropFirst() {
                refs.append(Ref(user: u, position: p, interaction: order[p], time: dataset.interactions[order[p]].timestamp))
            }
        }
        let sorted = refs.enumerated().sorted { a, b in
            a.element.time != b.element.time ? a.element.time < b.element.time : a.offset < b.offset
        }.map(\.element)
        let nTrain = Int((Double(sorted.count) * fractions.train).rounded(.down))
        let nValid = Int((Double(sorted.count) * fractions.validation).rounded(.down))

        var inTrain = [Bool](repeating: false, count: dataset.interactions.count)
        for r in sorted[0..<nTrain] { inTrain[r.interaction] = true }
        let cutoff = nTrain > 0 ? sorted[nTrain - 1].time : Int64.min
        for order in orders where !order.isEmpty && dataset.interactions[order[0]].timestamp <= cutoff {
            inTrain[order[0]] = true
        }
        let mk = { (r: Ref) in sample(r.user, seqs[r.user], at: r.position, historyLength: historyLength) }
        return Split(kind: Kind.temporal.rawValue,
                     train: dataset.interactions.enumerated().filter { inTrain[$0.offset] }.map(\.element),
                     validation: sorted[nTrain..<(nTrain + nValid)].map(mk),
                     test: sorted[(nTrain + nValid)...].map(mk), numUsers: n)
    }

    /// Keeps only users and items with at least `k` interactions, repeating until both hold (k-core), and
    /// re-indexes users and catalogue. Throws when nothing is left.
    public static func kCore(_ dataset: Dataset, k: Int) throws -> Dataset {
        guard k > 1 else { return dataset }
        var alive = [Bool](repeating: true, count: dataset.interactions.count)
        while true {
            var userCount = [Int](repeating: 0, count: dataset.numUsers)
            var itemCount = [Int](repeating: 0, count: dataset.catalog.count)
            for (i, x) in dataset.interactions.enumerated() where alive[i] { userCount[x.user] += 1; itemCount[x.item] += 1 }
            var changed = false
            for (i, x) in dataset.interactions.enumerated() where alive[i] && (userCount[x.user] < k || itemCount[x.item] < k) {
                alive[i] = false
                changed = true
            }
            if !changed { break }
        }
        var builder = DatasetBuilder()
        for (i, x) in dataset.interactions.enumerated() where alive[i] {
            builder.interaction(user: dataset.userIds[x.user], item: dataset.catalog[x.item].id, rating: x.rating,
                                timestamp: x.timestamp)
            builder.item(dataset.catalog[x.item])
        }
        guard !builder.rows.isEmpty else { throw DataError.invalid("nothing is left of \(dataset.name) after \(k)-core filtering") }
        return builder.build(name: "\(dataset.name)-\(k)core")
    }

    // MARK: helpers

    static func stableTimeOrder(_ row: [Int], _ xs: [Interaction]) -> [Int] {
        row.sorted { a, b in xs[a].timestamp != xs[b].timestamp ? xs[a].timestamp < xs[b].timestamp : a < b }
    }

    static func history(_ order: [Int], _ xs: [Interaction]) -> UserHistory {
        UserHistory(items: order.map { xs[$0].item }, timestamps: order.map { xs[$0].timestamp },
                    ratings: order.map { xs[$0].rating })
    }

    /// Up to `length` items of `seq` before position `end`.
    static func window(_ seq: UserHistory, before end: Int, length: Int?) -> UserHistory {
        let start = length.map { max(0, end - $0) } ?? 0
        return UserHistory(items: Array(seq.items[start..<end]), timestamps: Array(seq.timestamps[start..<end]),
                           ratings: Array(seq.ratings[start..<end]))
    }

    static func sample(_ user: Int, _ seq: UserHistory, at p: Int, historyLength: Int?) -> EvalSample {
        let target = seq.items[p]
        let masked = Set(seq.items[0..<p]).subtracting([target]).sorted()
        return EvalSample(user: user, history: window(seq, before: p, length: historyLength), target: target,
                          targetTime: seq.timestamps[p], masked: masked)
    }
}
