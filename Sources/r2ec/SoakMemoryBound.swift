// What the soak's server may hold, from the limits the code enforces (docs/reliability.md, "What one connection can
// hold"): the resident set once the models, the catalogue and the store are loaded (measured before the load
// starts), plus the user-history cache when full, plus per open RPC connection its read buffer (the largest frame and
// 64 KiB of read slack), its unsent answers (the output budget, plus one answer: an answer is always sent when
// nothing else is pending), plus per metrics connection its fixed request buffer and one /metrics page, plus per
// request being decoded the decoded form of a frame of empty entries: protobuf-c unpacks every entry (a 64-byte
// allocation and an 8-byte pointer each, then a 32-byte Swift value), 104 bytes per 2 bytes on the wire, about 218 MB
// for a 4 MiB frame. Top-level lists are counted on the wire first (WireCounts: a frame of two million events is
// refused without decoding), but the entries nested in RecommendBatch's 1,024 requests are not, so a batch within
// every limit can still reach this. Nothing in the server bounds how many requests decode at once (the
// decode queue is a concurrent dispatch queue); in the soak each client thread has at most one call decoding.
struct SoakMemoryBound {
    struct Limits {
        /// `serve --max-frame-bytes` (its default).
        var maxFrameBytes = 4 << 20
        /// `serve --connection-output-budget` (its default).
        var outputBudget = 32 << 20
        /// `serve --user-cache-bytes` (its default).
        var userCacheBytes = 256 << 20
        /// Read slack beyond one frame (Connection's 64 KiB read size).
        var readSlack = 64 << 10
        /// A metrics connection: HTTPConnection's 8 KiB request buffer and one /metrics page (under 1 MiB).
        var metricsConnection = (8 << 10) + (1 << 20)
        /// Decoded bytes per wire byte of a request of empty repeated entries (2 wire bytes -> 104 bytes).
        var decodedPerWireByte = 52
    }
    let limits: Limits
    let baselineKiB: Int
    let rpcConnections: Int
    let metricsConnections: Int
    /// Requests that may be decoding at once.
    let decodingRequests: Int
    /// The largest answer the soak asks for, measured.
    let largestAnswer: Int

    var decodedFrame: Int { limits.maxFrameBytes * limits.decodedPerWireByte }

    var perConnection: Int { limits.maxFrameBytes + limits.readSlack + limits.outputBudget + largestAnswer }

    var kib: Int {
        baselineKiB + (limits.userCacheBytes + rpcConnections * perConnection + metricsConnections * limits.metricsConnection
                       + decodingRequests * decodedFrame) / 1024
    }

    var formula: String {
        "start \(baselineKiB) KiB + user cache \(limits.userCacheBytes >> 20) MiB + \(rpcConnections) RPC connections x "
            + "(frame \(limits.maxFrameBytes >> 10) KiB + read slack \(limits.readSlack >> 10) KiB + output budget "
            + "\(limits.outputBudget >> 10) KiB + largest answer \(largestAnswer >> 10) KiB) + \(metricsConnections) metrics "
            + "connections x \(limits.metricsConnection >> 10) KiB + \(decodingRequests) requests decoding x "
            + "\(decodedFrame >> 10) KiB (a frame of empty entries, decoded)"
    }
}
