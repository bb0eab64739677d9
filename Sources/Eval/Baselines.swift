// The factory `r2ec eval` calls: a baseline kind ("pop", "wals", "bpr", "random") and string options
// (factors, alpha, reg, iterations, epochs, lr, seed, threads, fold_in, fold_in_alpha, fold_in_reg) -> a trained Recommender.
import Data
import Foundation

public enum Baselines {
    public static let kinds = ["pop", "wals", "bpr", "random"]

    /// Options each kind accepts; anything else is an error, so typos do not pass silently.
    public static let knownOptions: [String: Set<String>] = [
        "pop": [],
        "wals": ["factors", "alpha", "reg", "iterations", "seed", "threads"],
        "bpr": ["factors", "lr", "reg", "epochs", "seed", "fold_in", "fold_in_alpha", "fold_in_reg"],
        "random": ["seed"],
    ]

    public static func train(kind: String, on training: [Interaction], catalog: Catalog, numUsers: Int,
                             options: [String: String] = [:]) throws -> Recommender {
        let kind = kind == "popularity" ? "pop" : kind
        guard let known = knownOptions[kind] else {
            throw EvalError.unknownBaseline("unknown baseline '\(kind)' (known: \(kinds.joined(separator: ", ")))")
        }
        for key in options.keys.sorted() where !known.contains(key) {
            throw EvalError.invalidOption("option '\(key)' is not known to \(kind) (known: \(known.sorted().joined(separator: ", ")))")
        }
        switch kind {
        case "pop":
            return Popularity(training: training, catalog: catalog)
        case "wals":
            return try WALS.train(training, catalog: catalog, numUsers: numUsers, config: walsConfig(options))
        case "random":
            return RandomScores(catalog: catalog, seed: UInt64(try int(options, "seed", 0, min: 0)))
        default:
            return try BPR.train(training, catalog: catalog, numUsers: numUsers, config: bprConfig(options))
        }
    }

    public static func walsConfig(_ o: [String: String]) throws -> WALSConfig {
        var c = WALSConfig()
        c.factors = try int(o, "factors", c.factors, min: 1)
        c.alpha = try float(o, "alpha", c.alpha, min: 0)
        c.reg = try float(o, "reg", c.reg, min: 0)
        c.iterations = try int(o, "iterations", c.iterations, min: 0)
        c.seed = UInt64(try int(o, "seed", Int(c.seed), min: 0))
        c.threads = try int(o, "threads", c.threads, min: 1)
        if c.reg == 0 { throw EvalError.invalidOption("wals needs reg > 0 for a positive-definite solve") }
        return c
    }

    public static func bprConfig(_ o: [String: String]) throws -> BPRConfig {
        var c = BPRConfig()
        c.factors = try int(o, "factors", c.factors, min: 1)
        c.learningRate = try float(o, "lr", c.learningRate, min: 0)
        c.reg = try float(o, "reg", c.reg, min: 0)
        c.epochs = try int(o, "epochs", c.epochs, min: 0)
        c.seed = UInt64(try int(o, "seed", Int(c.seed), min: 0))
        c.foldIn = o["fold_in"] ?? c.foldIn
        guard c.foldIn == "sgd" || c.foldIn == "ls" else { throw EvalError.invalidOption("option fold_in=\(c.foldIn) is not sgd or ls") }
        c.foldInAlpha = try float(o, "fold_in_alpha", c.foldInAlpha, min: 0)
        c.foldInReg = try float(o, "fold_in_reg", c.foldInReg, min: 0)
        if c.foldInReg == 0 { throw EvalError.invalidOption("bpr needs fold_in_reg > 0 for a positive-definite solve") }
        return c
    }

    static func int(_ o: [String: String], _ key: String, _ fallback: Int, min: Int) throws -> Int {
        guard let s = o[key] else { return fallback }
        guard let v = Int(s), v >= min else { throw EvalError.invalidOption("option \(key)=\(s) is not an integer >= \(min)") }
        return v
    }

    static func float(_ o: [String: String], _ key: String, _ fallback: Float, min: Float) throws -> Float {
        guard let s = o[key] else { return fallback }
        guard let v = Float(s), v.isFinite, v >= min else {
            throw EvalError.invalidOption("option \(key)=\(s) is not a number >= \(min)")
        }
        return v
    }

    /// Parses "key=value,key=value" (the command line's --options).
    public static func parseOptions(_ text: String) throws -> [String: String] {
        var o: [String: String] = [:]
        for part in text.split(separator: ",") where !part.isEmpty {
            let kv = part.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { throw EvalError.invalidOption("option '\(part)' is not key=value") }
            o[String(kv[0]).trimmingCharacters(in: .whitespaces)] = String(kv[1]).trimmingCharacters(in: .whitespaces)
        }
        return o
    }
}
