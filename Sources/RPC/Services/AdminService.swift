// r2ec.v1.Admin (Protos/r2ec/v1/admin.proto): model management. Its methods need an admin token when the server runs
// with authentication (CallAuthorizer). A model loads on a thread of its own; the registry swaps it in when ready.
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

    public init(core: ServingCore) { self.core = core }

    /// Loads a model (name, path) on a background thread; nil: LoadModel answers UNIMPLEMENTED.
    public var loader: (@Sendable (String, String) throws -> ServedModel)? {
        get { lock.lock(); defer { lock.unlock() }; return _loader }
        set { lock.lock(); _loader = newValue; lock.unlock() }
    }

    public var methods: [RPCMethod] {
        let core = self.core
        return [
            RPCMethod("/r2ec.v1.Admin/LoadModel", requiresAdmin: true) { [self] request, _, response in
                guard let (name, path, makeDefault) = decode(response, { () throws -> (String, String, Bool) in
                    let (name, path, makeDefault) = try ProtoCodec.decodeLoadModelRequest(request)
                    guard !name.isEmpty else { throw ServingError.invalid("name", "empty") }
                    guard !path.isEmpty else { throw ServingError.invalid("path", "empty") }
                    return (name, path, makeDefault)
                }) else { return }
                guard let loader else {
                    return response.fail(ServingError(.unimplemented, "this server was started without a model loader"))
                }
                let logger = self.logger
                Thread {
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
                }.start()
            },
            RPCMethod("/r2ec.v1.Admin/UnloadModel", requiresAdmin: true) { request, _, response in
                guard decode(response, { try core.registry.remove(try ProtoCodec.decodeUnloadModelRequest(request)) }) != nil
                else { return }
                response.respond(ProtoCodec.encodeUnloadModelResponse())
            },
        ]
    }
}
