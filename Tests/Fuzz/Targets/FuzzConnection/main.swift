// libFuzzer target: one connection's input as the server handles it, without a socket: frames from FrameDecoder go
// through the call rules of Connection.handle (stream ids, CALL then one END_STREAM MESSAGE, CANCEL) and the
// request is decoded and answered as Server.dispatch does, synchronously, by RecommendService against a popularity
// model over a 12-item catalogue; answers are encoded and decoded again. Input: the raw byte stream.
import Data
import Foundation
import FuzzSupport
@testable import RPC
import Serving

/// The served model: popularity over a tiny RecBole dataset (items i1...i12, users u1...u4).
let model: ServedModel = {
    let dir = NSTemporaryDirectory() + "r2ec-fuzz-connection-\(getpid())/tiny"
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    var inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    for u in 1...4 { for i in 1...12 where (u * i) % 3 != 0 { inter += "u\(u)\ti\(i)\t\(1 + (u + i) % 5)\t\(1000 * u + i)\n" } }
    var item = "item_id:token\tmovie_title:token\tgenre:token_seq\n"
    for i in 1...12 { item += "i\(i)\tMovie \(i) (19\(80 + i))\tDrama Comedy\n" }
    try! inter.write(toFile: dir + "/tiny.inter", atomically: true, encoding: .utf8)
    try! item.write(toFile: dir + "/tiny.item", atomically: true, encoding: .utf8)
    let dataset = try! DatasetLoader.load(dir)
    try? FileManager.default.removeItem(atPath: (dir as NSString).deletingLastPathComponent)
    return try! ModelLoader(dataset: dataset).load(spec: "popularity")
}()

/// Answers one request, mapping a model's RecommenderError to a status as ServingCore does.
func answer(_ method: Method, _ payload: [UInt8]) throws -> [UInt8] {
    do {
        return try dispatch(method, payload)
    } catch let e as RecommenderError {
        throw status(of: e)
    }
}

func status(of e: RecommenderError) -> ServingError {
    switch e {
    case .invalidQuery(let m): return ServingError(.invalidArgument, m)
    case .unsupported(let m): return ServingError(.failedPrecondition, m)
    }
}

/// Answers one request as Server.dispatch would, returning the response payload.
func dispatch(_ method: Method, _ payload: [UInt8]) throws -> [UInt8] {
    switch method {
    case .healthCheck, .healthWatch:
        let service = try ProtoCodec.decodeHealthRequest(payload)
        guard Method.healthServices.contains(service) else { throw ServingError(.notFound, "unknown service", field: "service") }
        return ProtoCodec.encodeHealthResponse(serving: true)
    case .recommend, .recommendStream:
        let q = try ProtoCodec.decodeRecommendRequest(payload)
        let prepared = try RecommendService.prepare(q, for: model)
        let r = try RecommendService.recommendDirect([prepared], model: model, probabilities: [q.returnProbabilities])[0]
        precondition(r.items.count <= max(q.topK, RecommendService.defaultTopK), "more items than top_k")
        let out = method == .recommend ? ProtoCodec.encodeRecommendResponse(r) : ProtoCodec.encodeStreamResult(r)
        if method == .recommend {
            precondition(RequestEncoding.recommendedItems(out).map(\.id) == r.items.map(\.itemId), "response round trip")
        }
        return out
    case .recommendBatch:
        let queries = try ProtoCodec.decodeRecommendBatchRequest(payload)
        guard !queries.isEmpty else { throw ServingError.invalid("requests", "empty batch") }
        let results = queries.map { q -> Result<RecommendResult, ServingError> in
            do {
                return .success(try RecommendService.recommendDirect([RecommendService.prepare(q, for: model)], model: model,
                                                                     probabilities: [q.returnProbabilities])[0])
            } catch let e as ServingError {
                return .failure(e)
            } catch let e as RecommenderError {
                return .failure(status(of: e))
            } catch {
                preconditionFailure("non-ServingError \(error)")
            }
        }
        return ProtoCodec.encodeRecommendBatchResponse(results)
    case .scoreItems:
        let q = try ProtoCodec.decodeScoreItemsRequest(payload)
        return ProtoCodec.encodeScoreItemsResponse(try RecommendService.scoreItems(q, model: model), model: model.name)
    case .similarItems:
        let q = try ProtoCodec.decodeSimilarItemsRequest(payload)
        return ProtoCodec.encodeSimilarItemsResponse(try RecommendService.similarItems(q, model: model), model: model.name)
    case .getItems:
        let (ids, _) = try ProtoCodec.decodeGetItemsRequest(payload)
        let items = try RecommendService.getItems(ids, model: model)
        let out = ProtoCodec.encodeGetItemsResponse(items)
        precondition(RequestEncoding.items(out).map(\.id) == items.map(\.itemId), "GetItems round trip")
        return out
    case .modelInfo:
        _ = try ProtoCodec.decodeModelInfoRequest(payload)
        return ProtoCodec.encodeModelInfoResponse(model: model.facts, loaded: [model.facts], defaultName: model.name)
    case .loadModel:
        // Decoded and checked only: no path from fuzz input is ever loaded.
        let (name, path, _) = try ProtoCodec.decodeLoadModelRequest(payload)
        guard !name.isEmpty else { throw ServingError.invalid("name", "empty") }
        guard !path.isEmpty else { throw ServingError.invalid("path", "empty") }
        return ProtoCodec.encodeLoadModelResponse(name: name, version: 2)
    case .unloadModel:
        _ = try ProtoCodec.decodeUnloadModelRequest(payload)
        return ProtoCodec.encodeUnloadModelResponse()
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let buffer = ByteBuffer(capacity: 256)
    if let data, size > 0 { buffer.append(UnsafeRawBufferPointer(start: data, count: size)) }
    var decoder = FrameDecoder(maxPayload: 1 << 16)
    var calls: [UInt32: (method: Method, started: Bool)] = [:]
    var highest: UInt32 = 0
    var output: [UInt8] = []
    func send(_ type: FrameType, _ id: UInt32, _ payload: [UInt8]) {
        output += Frame(header: FrameHeader(type: type, streamId: id, length: UInt32(payload.count)), payload: payload).bytes
    }
    func trailer(_ id: UInt32, _ e: ServingError) {
        calls[id] = nil
        send(.trailer, id, ProtoCodec.encodeStatus(e.code, e.message, field: e.field))
    }
    connection: while true {
        let frame: Frame
        do {
            guard let f = try decoder.next(from: buffer) else { break }
            frame = f
        } catch {
            send(.goAway, 0, ProtoCodec.encodeGoAway(lastStreamId: highest, code: error.code, message: error.description))
            break
        }
        let h = frame.header
        switch h.type {
        case .ping:
            guard h.streamId == 0, frame.payload.count == 8 else { break connection }
            send(.pong, 0, frame.payload)
        case .pong, .goAway:
            guard h.streamId == 0 else { break connection }
        case .trailer:
            break connection
        case .call:
            guard h.streamId != 0, h.streamId > highest, h.streamId <= UInt32(Int32.max) else { break connection }
            highest = h.streamId
            do {
                let header = try ProtoCodec.decodeCallHeader(frame.payload)
                guard let method = Method(rawValue: header.method) else {
                    trailer(h.streamId, ServingError(.unimplemented, "unknown method '\(header.method)'"))
                    continue
                }
                _ = CallContext(timeoutMs: header.timeoutMs)
                calls[h.streamId] = (method, false)
            } catch let e as ServingError {
                trailer(h.streamId, e)
            } catch {
                preconditionFailure("CallHeader: non-ServingError \(error)")
            }
        case .message:
            guard h.streamId != 0 else { break connection }
            guard let call = calls[h.streamId] else {
                if h.streamId > highest { break connection }
                continue
            }
            guard !call.started, h.flags.contains(.endStream) else {
                trailer(h.streamId, ServingError(.invalidArgument, "one END_STREAM request message"))
                continue
            }
            calls[h.streamId]!.started = true
            do {
                send(.message, h.streamId, try answer(call.method, frame.payload))
                calls[h.streamId] = nil
                send(.trailer, h.streamId, ProtoCodec.encodeStatus(.ok, ""))
            } catch let e as ServingError {
                trailer(h.streamId, e)
            } catch {
                preconditionFailure("\(call.method): non-ServingError \(error)")
            }
        case .cancel:
            if calls[h.streamId] != nil { trailer(h.streamId, ServingError(.cancelled, "cancelled")) }
        }
    }
    // What the server wrote must itself be valid framing.
    var check = FrameDecoder(maxPayload: Int(UInt32.max))
    let out = ByteBuffer(capacity: output.count)
    out.append(output)
    var answered = 0
    while let f = try! check.next(from: out) { answered += f.header.type == .trailer ? 1 : 0 }
    precondition(out.readable == 0, "server output ends mid-frame")
    _ = answered
    return 0
}

_ = model
fuzzMain(fuzzOne)
