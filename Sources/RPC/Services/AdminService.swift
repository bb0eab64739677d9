// r2ec.v1.Admin (Protos/r2ec/v1/admin.proto): model management. Its methods need an admin token when the server runs
// with authentication (CallAuthorizer). Model loads (LoadModel and SIGHUP reloads) run one at a time on one thread of
// their own, so each is checked against the memory budget alone (N loads at once would each see the same free
// memory and together take N budgets); the registry swaps a model in when it is ready.
import Data
import Foundation
import Logging
import Serving

public final class AdminService: RPCService, @unchecked Sendable {
    public let serviceName = "r2ec.v1.Admin"
    let core: ServingCore
    private let lock = NSLock()
    private var _loader: (@Sendable (String, String) throws -> ServedModel)?
    private let logger = Logger(label: "r2ec.rpc")
    /// The one thread model loads run on, in arrival order: one per process (the memory budget is the process's),
    /// started by the first load.
    private static let loads = WorkerPool(threads: 1, name: "r2ec-model-load")
    /// LoadModel calls queued or loading; one more than `maxPendingLoads` is refused RESOURCE_EXHAUSTED.
    private var pendingLoads = 0
    /// A SIGHUP reload is queued and not started: a later SIGHUP joins it.
    private var reloadQueued = false
    /// LoadModel calls that may be queued or loading at once.
    public static let maxPendingLoads = 4

    public init(core: ServingCore) { self.core = core }

    /// Loads a model (name, path) on a background thread; nil: LoadModel answers UNIMPLEMENTED.
    public var loader: (@Sendable (String, String) throws -> ServedModel)? {
        get { lock.lock(); defer { lock.unlock() }; return _loader }
        set { lock.lock(); _loader = newValue; lock.unlock() }
    }

    /// Queues a reload of every loaded model from its spec, in the loads' order (SIGHUP); each reloaded model is
    /// installed as it is ready (calls holding the old one finish on it) and `report` told how each went. False when a
    /// reload is already queued and not started: it will read every model as this one would, so this one joins it.
    public func queueReload(report: @escaping @Sendable (_ old: ServedModel, _ result: Result<ServedModel, Error>) -> Void) -> Bool {
        guard let loader else { return false }
        lock.lock()
        defer { lock.unlock() }
        guard !reloadQueued else { return false }
        reloadQueued = true
        Self.loads.submit { [self] in
            lock.lock(); reloadQueued = false; lock.unlock()
            let registry = core.registry
            for old in registry.all {
                do {
                    let fresh = try loader(old.name, old.spec)
                    // A model unloaded while it was read again stays unloaded.
                    guard registry.all.contains(where: { $0.name == old.name }) else { continue }
                    registry.install(fresh, makeDefault: registry.defaultModelName == old.name)
                    report(old, .success(fresh))
                } catch {
                    report(old, .failure(error))
                }
            }
        }
        return true
    }

    public var methods: [RPCMethod] {
        let core = self.core
        return [
            RPCMethod("/r2ec.v1.Admin/LoadModel", requiresAdmin: true) { [self] request, call, response in
                guard let (name, path, makeDefault) = decode(response, { () throws -> (String, String, Bool) in
                    let (name, path, makeDefault) = try ProtoCodec.decodeLoadModelRequest(request)
                    guard !name.isEmpty else { throw ServingError.invalid("name", "empty") }
                    guard !path.isEmpty else { throw ServingError.invalid("path", "empty") }
                    return (name, path, makeDefault)
                }) else { return }
                guard let loader else {
                    return response.fail(ServingError(.unimplemented, "this server was started without a model loader"))
                }
                lock.lock()
                guard pendingLoads < Self.maxPendingLoads else {
                    lock.unlock()
                    core.metrics.limitHit("model_loads")
                    return response.fail(ServingError(.resourceExhausted,
                        "model loads: \(Self.maxPendingLoads) already queued or loading; retry later"))
                }
                pendingLoads += 1
                lock.unlock()
                let logger = self.logger
                Self.loads.submit { [self] in
                    defer { lock.lock(); pendingLoads -= 1; lock.unlock() }
                    // A call cancelled or past its deadline while it waited is not loaded.
                    if let stop = call.context.stopReason { return response.fail(stop) }
                    do {
                        let model = try loader(name, path)
                        core.registry.install(model, makeDefault: makeDefault)
                        logger.info("loaded model \(ClientText.quote(name)) version \(model.version) from \(ClientText.quote(path, limit: 512))")
                        response.respond(ProtoCodec.encodeLoadModelResponse(name: name, version: model.version))
                    } catch let e as ServingError {
                        response.fail(e)
                    } catch {
                        response.fail(ServingError(.invalidArgument, "path: \(error)", field: "path"))
                    }
                }
            },
            RPCMethod("/r2ec.v1.Admin/UnloadModel", requiresAdmin: true) { request, _, response in
                guard decode(response, { try core.registry.remove(try ProtoCodec.decodeUnloadModelRequest(request)) }) != nil
                else { return }
                response.respond(ProtoCodec.encodeUnloadModelResponse())
            },
        ]
    }
}
