// libFuzzer target: the call-header decoder and every request-message decoder (ProtoCodec.decode*, which walks a
// refused payload with WireDiagnosis), plus WireDiagnosis on its own over every input. Input: byte 0 picks the
// message, the rest is its payload. A decoder may only return a value or throw INVALID_ARGUMENT.
import CProtobufC
import FuzzSupport
import R2ecProtoC
@testable import RPC
import Serving

/// A message's descriptor, read from the empty message (the generated descriptors are C constants).
func descriptor<M>(_ unpack: (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) -> UnsafeMutablePointer<M>?,
                   _ free: (UnsafeMutablePointer<M>?, UnsafeMutablePointer<ProtobufCAllocator>?) -> Void)
    -> UnsafePointer<ProtobufCMessageDescriptor> {
    var zero: UInt8 = 0
    let m = unpack(nil, 0, &zero)!
    defer { free(m, nil) }
    return UnsafeMutableRawPointer(m).assumingMemoryBound(to: ProtobufCMessage.self).pointee.descriptor
}

let decoders: [(name: String, descriptor: UnsafePointer<ProtobufCMessageDescriptor>, decode: ([UInt8]) throws -> Void)] = [
    ("CallHeader", descriptor(r2ec__v1__call_header__unpack, r2ec__v1__call_header__free_unpacked), { _ = try ProtoCodec.decodeCallHeader($0) }),
    ("HealthCheckRequest", descriptor(r2ec__v1__health_check_request__unpack, r2ec__v1__health_check_request__free_unpacked),
     { _ = try ProtoCodec.decodeHealthRequest($0) }),
    ("RecommendRequest", descriptor(r2ec__v1__recommend_request__unpack, r2ec__v1__recommend_request__free_unpacked),
     { _ = try ProtoCodec.decodeRecommendRequest($0) }),
    ("RecommendBatchRequest", descriptor(r2ec__v1__recommend_batch_request__unpack, r2ec__v1__recommend_batch_request__free_unpacked),
     { _ = try ProtoCodec.decodeRecommendBatchRequest($0) }),
    ("ScoreItemsRequest", descriptor(r2ec__v1__score_items_request__unpack, r2ec__v1__score_items_request__free_unpacked),
     { _ = try ProtoCodec.decodeScoreItemsRequest($0) }),
    ("SimilarItemsRequest", descriptor(r2ec__v1__similar_items_request__unpack, r2ec__v1__similar_items_request__free_unpacked),
     { _ = try ProtoCodec.decodeSimilarItemsRequest($0) }),
    ("GetItemsRequest", descriptor(r2ec__v1__get_items_request__unpack, r2ec__v1__get_items_request__free_unpacked),
     { _ = try ProtoCodec.decodeGetItemsRequest($0) }),
    ("ModelInfoRequest", descriptor(r2ec__v1__model_info_request__unpack, r2ec__v1__model_info_request__free_unpacked),
     { _ = try ProtoCodec.decodeModelInfoRequest($0) }),
    ("LoadModelRequest", descriptor(r2ec__v1__load_model_request__unpack, r2ec__v1__load_model_request__free_unpacked),
     { _ = try ProtoCodec.decodeLoadModelRequest($0) }),
    ("UnloadModelRequest", descriptor(r2ec__v1__unload_model_request__unpack, r2ec__v1__unload_model_request__free_unpacked),
     { _ = try ProtoCodec.decodeUnloadModelRequest($0) }),
    // The client side decodes the server's Status trailers and responses with the same machinery.
    ("Status", descriptor(r2ec__v1__status__unpack, r2ec__v1__status__free_unpacked), { payload in
        _ = try ProtoCodec.decode(payload, "Status", unpack: r2ec__v1__status__unpack,
                                  free: r2ec__v1__status__free_unpacked) { $0.pointee.code }
    }),
    ("RecommendResponse", descriptor(r2ec__v1__recommend_response__unpack, r2ec__v1__recommend_response__free_unpacked), { payload in
        _ = RequestEncoding.recommendedItems(payload)
        _ = RequestEncoding.reasoningTokens(payload)
    }),
    ("GetItemsResponse", descriptor(r2ec__v1__get_items_response__unpack, r2ec__v1__get_items_response__free_unpacked),
     { _ = RequestEncoding.items($0) }),
    // The Events service (appended: earlier selectors keep their message).
    ("RecordEventsRequest", descriptor(r2ec__v1__record_events_request__unpack, r2ec__v1__record_events_request__free_unpacked),
     { _ = try ProtoCodec.decodeRecordEventsRequest($0, maxEvents: .max) }),
    ("UpsertItemsRequest", descriptor(r2ec__v1__upsert_items_request__unpack, r2ec__v1__upsert_items_request__free_unpacked),
     { _ = try ProtoCodec.decodeUpsertItemsRequest($0, maxItems: .max) }),
    ("GetUserHistoryRequest", descriptor(r2ec__v1__get_user_history_request__unpack, r2ec__v1__get_user_history_request__free_unpacked),
     { _ = try ProtoCodec.decodeGetUserHistoryRequest($0) }),
    ("DeleteUserRequest", descriptor(r2ec__v1__delete_user_request__unpack, r2ec__v1__delete_user_request__free_unpacked),
     { _ = try ProtoCodec.decodeDeleteUserRequest($0) }),
    // SearchItems and the responses the agent tools decode (appended likewise).
    ("SearchItemsRequest", descriptor(r2ec__v1__search_items_request__unpack, r2ec__v1__search_items_request__free_unpacked),
     { _ = try ProtoCodec.decodeSearchItemsRequest($0) }),
    ("SearchItemsResponse", descriptor(r2ec__v1__search_items_response__unpack, r2ec__v1__search_items_response__free_unpacked),
     { _ = try ResponseDecoding.searchItems($0) }),
    ("SimilarItemsResponse", descriptor(r2ec__v1__similar_items_response__unpack, r2ec__v1__similar_items_response__free_unpacked),
     { _ = try ResponseDecoding.similarItems($0) }),
    ("RecordEventsResponse", descriptor(r2ec__v1__record_events_response__unpack, r2ec__v1__record_events_response__free_unpacked),
     { _ = try ResponseDecoding.recordEvents($0) }),
]

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = bytes(data, size)
    guard let selector = input.first else { return 0 }
    let d = decoders[Int(selector) % decoders.count]
    let payload = Array(input.dropFirst())
    do {
        try d.decode(payload)
    } catch let e as ServingError {
        precondition(e.code == .invalidArgument, "\(d.name): \(e.code) for a malformed payload")
        precondition(e.message.hasPrefix(d.name), "\(d.name): message '\(e.message)' does not name the message")
    } catch {
        preconditionFailure("\(d.name): unexpected error \(error)")
    }
    _ = payload.withUnsafeBytes { WireDiagnosis.diagnose($0, descriptor: d.descriptor) }
    return 0
}

fuzzMain(fuzzOne)
