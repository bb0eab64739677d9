// The loaded models by name, with a default; a load over an existing name swaps atomically (calls already holding
// the old model finish on it).
import Foundation

public final class ModelRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var models: [String: ServedModel] = [:]
    private var defaultName: String = ""

    /// Called after every install, outside the lock (the live loop brings the model to the catalogue's version).
    public var onInstall: ((ServedModel) -> Void)?

    public init() {}

    /// Adds or replaces `model`; the first model added becomes the default.
    public func install(_ model: ServedModel, makeDefault: Bool = false) {
        lock.lock()
        models[model.name] = model
        if makeDefault || defaultName.isEmpty { defaultName = model.name }
        let hook = onInstall
        lock.unlock()
        hook?(model)
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

    /// The version a model loaded under `name` should get (one above the current one).
    public func nextVersion(for name: String) -> UInt64 {
        lock.lock(); defer { lock.unlock() }
        return (models[name]?.version ?? 0) + 1
    }
}
