// `r2ec serve --grpc-port`: the gRPC front door beside the custom protocol's server, sharing its router (handlers,
// health), tokens, limits and metrics; drained with it. Without the GRPC trait the flags are refused.
import ArgumentParser
import Foundation
import RPC
import Serving
#if GRPC
import GRPCDoor
#endif

/// The gRPC port of one `serve` run, or nothing when --grpc-port was not given.
final class ServeGRPC {
    #if GRPC
    private let door: GRPCDoor?
    #endif
    /// "gRPC on HOST:PORT (TLS)" for the listening line, or nil.
    let banner: String?

    /// Checks the flags before anything is loaded: TLS needs the gRPC port and both files.
    static func validate(grpcPort: Int?, tlsCert: String?, tlsKey: String?) throws {
        if grpcPort == nil, tlsCert != nil || tlsKey != nil {
            throw ValidationError("--tls-cert/--tls-key secure the gRPC port: give --grpc-port too")
        }
        if let grpcPort, !(0...65535).contains(grpcPort) {
            throw ValidationError("--grpc-port: \(grpcPort) is not a TCP port (0-65535)")
        }
        switch (tlsCert, tlsKey) {
        case (_?, nil): throw ValidationError("--tls-cert needs --tls-key (TLS takes both; plaintext neither)")
        case (nil, _?): throw ValidationError("--tls-key needs --tls-cert (TLS takes both; plaintext neither)")
        default: break
        }
        for (flag, path) in [("--tls-cert", tlsCert), ("--tls-key", tlsKey)] {
            if let path, !FileManager.default.isReadableFile(atPath: path) {
                throw ValidationError("\(flag): cannot read '\(path)'")
            }
        }
        #if !GRPC
        if grpcPort != nil {
            throw ValidationError("--grpc-port: this r2ec was built without the GRPC package trait")
        }
        #endif
    }

    /// Binds the gRPC port (before the custom server runs, so a bind error stops `serve` at once) and hooks its drain
    /// to the server's.
    init(server: Server, host: String, port: Int?, tlsCert: String?, tlsKey: String?, drainTimeout: Double) throws {
        guard let port else {
            #if GRPC
            door = nil
            #endif
            banner = nil
            return
        }
        #if GRPC
        var config = GRPCDoorConfig()
        config.host = host
        config.port = port
        config.tlsCertificatePath = tlsCert
        config.tlsKeyPath = tlsKey
        config.maxRequestBytes = server.config.maxFramePayload
        config.defaultTimeoutMs = server.config.defaultTimeoutMs
        config.authorizer = CallAuthorizer(tokens: server.config.tokens, adminTokens: server.config.adminTokens)
        let door = GRPCDoor(config: config, router: server.router, metrics: server.core.metrics)
        do {
            try door.start()
        } catch {
            throw ValidationError("--grpc-port: \(error)")
        }
        self.door = door
        banner = "gRPC on \(host):\(door.boundPort) \(tlsCert == nil ? "plaintext" : "TLS")"
        server.onDrain = { door.shutdown() }
        server.beforeCoreShutdown = {
            if !door.wait(seconds: drainTimeout) {
                FileHandle.standardError.write(Data("r2ec: gRPC drain timeout: \(door.callsInFlight) call(s) still open\n".utf8))
            }
        }
        #else
        throw ValidationError("--grpc-port: this r2ec was built without the GRPC package trait")
        #endif
    }
}
