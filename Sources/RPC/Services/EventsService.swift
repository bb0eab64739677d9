// r2ec.v1.Events (Protos/r2ec/v1/events.proto): the live loop of a server with a store (`serve --store`). Decode
// (a batch over the server's limit refused on its count), hand to the LiveLoop, which answers a write only after the
// store committed it; encode on the thread that answers. Without a store every method is UNIMPLEMENTED.
import Serving

public final class EventsService: RPCService {
    public let serviceName = "r2ec.v1.Events"
    let core: ServingCore

    public init(core: ServingCore) { self.core = core }

    public var methods: [RPCMethod] {
        let core = self.core
        return [
            RPCMethod("/r2ec.v1.Events/RecordEvents") { request, call, response in
                guard let live = decode(response, { try Self.live(core) }),
                      let events = decode(response, { try Self.counting(core) {
                          try ProtoCodec.decodeRecordEventsRequest(request, maxEvents: live.limits.maxEventsPerCall)
                      } }) else { return }
                live.recordEvents(events, ctx: call.context) {
                    response.complete($0, encode: ProtoCodec.encodeRecordEventsResponse)
                }
            },
            RPCMethod("/r2ec.v1.Events/UpsertItems") { request, call, response in
                guard let live = decode(response, { try Self.live(core) }),
                      let items = decode(response, { try Self.counting(core) {
                          try ProtoCodec.decodeUpsertItemsRequest(request, maxItems: live.limits.maxItemsPerCall)
                      } }) else { return }
                live.upsertItems(items, ctx: call.context) {
                    response.complete($0, encode: ProtoCodec.encodeUpsertItemsResponse)
                }
            },
            RPCMethod("/r2ec.v1.Events/GetUserHistory") { request, call, response in
                guard let live = decode(response, { try Self.live(core) }),
                      let (user, limit) = decode(response, { try ProtoCodec.decodeGetUserHistoryRequest(request) })
                else { return }
                live.userHistory(user, limit: limit, ctx: call.context) {
                    response.complete($0, encode: ProtoCodec.encodeGetUserHistoryResponse)
                }
            },
            RPCMethod("/r2ec.v1.Events/DeleteUser") { request, call, response in
                guard let live = decode(response, { try Self.live(core) }),
                      let user = decode(response, { try ProtoCodec.decodeDeleteUserRequest(request) }) else { return }
                live.deleteUser(user, ctx: call.context) {
                    response.complete($0) { ProtoCodec.encodeDeleteUserResponse(deletedEvents: $0) }
                }
            },
        ]
    }

    /// The live loop, or UNIMPLEMENTED for a server started without a store.
    static func live(_ core: ServingCore) throws -> LiveLoop {
        guard let live = core.live else {
            throw ServingError(.unimplemented, "the Events service needs a store: this server was started without --store")
        }
        return live
    }

    /// Runs a decoder, counting a refusal over a configured limit in r2ec_limit_hits_total.
    static func counting<T>(_ core: ServingCore, _ decode: () throws -> T) throws -> T {
        do {
            return try decode()
        } catch let e as ServingError {
            if let limit = e.limit { core.metrics.limitHit(limit) }
            throw e
        }
    }
}
