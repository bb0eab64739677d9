// The loaded models by name, with a default; a load over an existing name swaps atomically (calls already holding
// the old model finish on it). Versions are given here, when a load is installed, never when it starts: two loads
// of one name that overlap get distinct versions in the order they complete, and the last completed serves.
import Foundation
import Model

public final class ModelRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var models: [String: ServedModel] = [:]
    /// The last version given to each name; kept after an unload, so a name's versions never repeat.
    private var versions: [String: UInt64] = [:]
    private var defaultName: String = ""

    /// Called after every install, outside the lock (the live loop brings the model to the catalogue's version).
    public var onInstall: ((ServedModel) -> Void)?

    public init() {}

    /// Adds or replaces `model` under its name, the next version of that name (1 for a new name); the first model
    /// added becomes the default. Returns the version it serves as (also `model.version` from now on).
    @discardableResult
    public func install(_ model: ServedModel, makeDefault: Bool = false) -> UInt64 {
        lock.lock()
        let version = (versions[model.name] ?? 0) + 1
        versions[model.name] = version
        model.version = version
        let old = models[model.name]
        models[model.name] = model
        if makeDefault || defaultName.isEmpty { defaultName = model.name }
        let hook = onInstall
        lock.unlock()
        // A swap: the old network's cached prompt prefixes are of no use to the new one (calls finishing on the old
        // model may still add a few, released with it).
        if let old, old.dualHead?.prefixCache !== model.dualHead?.prefixCache { old.dualHead?.prefixCache?.removeAll() }
        hook?(model)
        return version
    }

    /// Swaps `new` in for `old` if `old` still serves under its name (a newer load is never overwritten); `new`
    /// keeps `old`'s version: a new catalogue version of the same model, not a reload.
    @discardableResult
    public func replace(_ old: ServedModel, with new: ServedModel) -> Bool {
        precondition(old.name == new.name)
        lock.lock(); defer { lock.unlock() }
        guard models[old.name] === old else { return false }
        new.version = old.version
        models[old.name] = new
        return true
    }

    public func remove(_ name: String) throws {
        lock.lock(); defer { lock.unlock() }
        guard models[name] != nil else { throw ServingError(.notFound, "model '\(name)' is not loaded", field: "name") }
        guard name != defaultName else {
            throw ServingError(.failedPrecondition, "model '\(name)' is the default model; make another the default first",
                               field: "name")
        }
        models[name] = nil
    }

    /// The model called `name`, or the default for "".
    public func model(_ name: String) throws -> ServedModel {
        lock.lock(); defer { lock.unlock() }
        let key = name.isEmpty ? defaultName : name
        guard let m = models[key] else {
            let known = models.keys.sorted().joined(separator: ", ")
            throw ServingError(.notFound, "model: '\(name)' is not loaded (loaded: \(known))", field: "model")
        }
        return m
    }

    public var defaultModelName: String { lock.lock(); defer { lock.unlock() }; return defaultName }

    public var all: [ServedModel] {
        lock.lock(); defer { lock.unlock() }
        return models.keys.sorted().compactMap { models[$0] }
    }
}
