// The gRPC door passes request and response messages through as the protobuf bytes they are: the service router
// decodes and encodes them with the same code the custom protocol uses, so no swift-protobuf types exist here.
#if GRPC
import GRPCCore

/// Copies a response payload into the transport's bytes.
struct RawSerializer: MessageSerializer {
    typealias Message = [UInt8]
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
}

/// Copies a request message out of the transport's bytes (their size is bounded by the transport's
/// maxRequestPayloadSize, which the door sets from the server's frame limit).
struct RawDeserializer: MessageDeserializer {
    typealias Message = [UInt8]
    func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> [UInt8] {
        bytes.withUnsafeBytes { Array($0) }
    }
}

/// One rpc of Protos/ (Methods.generated.swift lists them all).
struct MethodSpec: Sendable {
    let service: String
    let method: String
    let request: String
    let response: String
    let serverStreaming: Bool

    /// The path on the wire, as both doors name it: "/r2ec.v1.Recommender/Recommend".
    var path: String { "/\(service)/\(method)" }
}
#endif
