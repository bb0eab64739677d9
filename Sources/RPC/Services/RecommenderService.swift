// r2ec.v1.Recommender (Protos/r2ec/v1/recommender.proto): decode, hand to the serving core, encode the answer on
// the worker that produced it (never on an event loop), answer through the sink.
import Serving

public final class RecommenderService: RPCService {
    public let serviceName = "r2ec.v1.Recommender"
    let core: ServingCore

    public init(core: ServingCore) { self.core = core }

    /// GetItems of at most this many ids answers inside the handler; longer lists go to a worker.
    static let inlineGetItems = 256

    public var methods: [RPCMethod] {
        let core = self.core
        return [
            RPCMethod("/r2ec.v1.Recommender/Recommend") { request, call, response in
                guard let q = decode(response, counting: core, { try ProtoCodec.decodeRecommendRequest(request, limits: core.limits) }) else { return }
                core.recommend(q, ctx: call.context) {
                    call.label($0)
                    response.complete($0, encode: ProtoCodec.encodeRecommendResponse)
                }
            },
            RPCMethod("/r2ec.v1.Recommender/RecommendStream", .serverStreaming) { request, call, response in
                guard let q = decode(response, counting: core, { try ProtoCodec.decodeRecommendRequest(request, limits: core.limits) }) else { return }
                core.recommendStream(q, ctx: call.context, onDelta: { text in
                    response.message(ProtoCodec.encodeStreamDelta(text))
                }, done: {
                    call.label($0)
                    response.complete($0, encode: ProtoCodec.encodeStreamResult)
                })
            },
            // Up to --max-batch-requests histories resolved before the batch is queued: never on the loop thread.
            RPCMethod("/r2ec.v1.Recommender/RecommendBatch", offLoop: true) { request, call, response in
                guard let qs = decode(response, counting: core, { try ProtoCodec.decodeRecommendBatchRequest(request, limits: core.limits) }) else { return }
                core.recommendBatch(qs, ctx: call.context) {
                    if case .success(let results) = $0 { call.label(batch: results) }
                    response.complete($0, encode: ProtoCodec.encodeRecommendBatchResponse)
                }
            },
            RPCMethod("/r2ec.v1.Recommender/ScoreItems") { request, call, response in
                guard let q = decode(response, counting: core, { try ProtoCodec.decodeScoreItemsRequest(request, limits: core.limits) }),
                      let model = decode(response, { try core.registry.model(q.model) }) else { return }
                call.servedModel = ServedModelLabel(name: model.name, version: model.version)
                core.scoreItems(q, ctx: call.context) {
                    response.complete($0) { ProtoCodec.encodeScoreItemsResponse($0, model: model.name, version: model.version) }
                }
            },
            RPCMethod("/r2ec.v1.Recommender/SimilarItems") { request, call, response in
                guard let q = decode(response, { try ProtoCodec.decodeSimilarItemsRequest(request) }),
                      let model = decode(response, { try core.registry.model(q.model) }) else { return }
                call.servedModel = ServedModelLabel(name: model.name, version: model.version)
                core.similarItems(q, ctx: call.context) {
                    response.complete($0) { ProtoCodec.encodeSimilarItemsResponse($0, model: model.name, version: model.version) }
                }
            },
            RPCMethod("/r2ec.v1.Recommender/GetItems") { request, call, response in
                guard let (ids, model) = decode(response, counting: core, { try ProtoCodec.decodeGetItemsRequest(request, limits: core.limits) }) else { return }
                guard ids.count > RecommenderService.inlineGetItems else {
                    guard let items = decode(response, { try core.getItems(ids, model: model) }) else { return }
                    return response.respond(ProtoCodec.encodeGetItemsResponse(items))
                }
                // A long list is looked up and its (large) answer encoded on a worker, not where the request arrived.
                core.submit(call.context, { try core.getItems(ids, model: model) }) {
                    response.complete($0, encode: ProtoCodec.encodeGetItemsResponse)
                }
            },
            RPCMethod("/r2ec.v1.Recommender/SearchItems") { request, call, response in
                guard let q = decode(response, { try ProtoCodec.decodeSearchItemsRequest(request) }),
                      let model = decode(response, { try core.registry.model(q.model) }) else { return }
                call.servedModel = ServedModelLabel(name: model.name, version: model.version)
                core.searchItems(q, ctx: call.context) {
                    response.complete($0, encode: ProtoCodec.encodeSearchItemsResponse)
                }
            },
            RPCMethod("/r2ec.v1.Recommender/ModelInfo") { request, _, response in
                guard let info = decode(response, { try core.modelInfo(try ProtoCodec.decodeModelInfoRequest(request)) })
                else { return }
                response.respond(ProtoCodec.encodeModelInfoResponse(model: info.model, loaded: info.loaded,
                                                                    defaultName: info.defaultName))
            },
        ]
    }
}

extension RPCCall {
    /// Labels the call's metrics with the model that answered a recommendation.
    func label(_ result: Result<RecommendResult, ServingError>) {
        if case .success(let r) = result { servedModel = ServedModelLabel(name: r.model, version: r.modelVersion) }
    }

    /// A batch's model when every answered request used the same one.
    func label<E>(batch results: [Result<RecommendResult, E>]) {
        let models = Set(results.compactMap { try? $0.get() }.map { ServedModelLabel(name: $0.model, version: $0.modelVersion) })
        if models.count == 1 { servedModel = models.first }
    }
}

/// Runs `body`; a thrown error fails the call (ServingError as it is, anything else INTERNAL) and gives nil. With
/// `core`, a refusal over a configured limit is counted in r2ec_limit_hits_total.
func decode<T>(_ response: ResponseSink, counting core: ServingCore? = nil, _ body: () throws -> T) -> T? {
    do {
        return try body()
    } catch let e as ServingError {
        if let limit = e.limit { core?.metrics.limitHit(limit) }
        response.fail(e)
    } catch {
        response.fail(ServingError(.internal, "\(error)"))
    }
    return nil
}
