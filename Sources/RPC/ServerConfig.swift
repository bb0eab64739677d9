// Settings of the RPC server, every limit with its documented default (docs/protocol.md, README).
import Logging

public struct ServerConfig: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port (printed on stdout when listening).
    public var port = 7878
    /// Largest frame payload accepted; a longer frame closes the connection (GOAWAY RESOURCE_EXHAUSTED).
    public var maxFramePayload = FrameHeader.defaultMaxPayload
    /// Open connections at once; one more is answered GOAWAY RESOURCE_EXHAUSTED and closed.
    public var maxConnections = 4096
    /// Calls in flight on one connection; one more is answered RESOURCE_EXHAUSTED.
    public var maxCallsPerConnection = 1024
    /// Stop reading a connection whose unsent output passes this many bytes; resume below the low mark.
    public var writeHighWater = 8 << 20
    public var writeLowWater = 1 << 20
    /// Unsent answers one connection may hold (bytes): an answer that would take it past this is shed with
    /// RESOURCE_EXHAUSTED, unless nothing else is pending (one answer alone may be larger). A connection holds at
    /// most this plus one answer.
    public var connectionOutputBudget = 32 << 20
    /// Requests at least this large are decoded off the loop thread.
    public var offloadRequestBytes = 64 << 10
    /// After SIGTERM/SIGINT: how long accepted calls may take to finish before connections are closed anyway.
    public var drainTimeoutSeconds = 30.0
    /// After SIGTERM/SIGINT and before the drain: how long health answers NOT_SERVING (/healthz 503) while the
    /// listener and connections keep serving, so load balancers and orchestrators stop routing here first.
    public var drainGraceSeconds = 0.0
    /// Port of the HTTP endpoint with /metrics and /healthz (on `host`); nil = none, 0 = a free port.
    public var metricsPort: Int?
    /// Open connections to the metrics endpoint at once; one more is answered 503 and closed.
    public var metricsMaxConnections = 64
    /// Seconds a metrics connection may take to send its whole request (else 408 and close; closed at twice this).
    public var metricsRequestTimeoutSeconds = 10.0
    /// A connection with no call in flight and no bytes in or out for this long gets GOAWAY and is closed.
    public var idleTimeoutSeconds = 300.0
    /// A connection older than this (each connection's own age drawn within +-10% of it, so a client's pool does
    /// not reconnect all at once) gets GOAWAY: calls in flight finish, new ones go to a new connection, which a
    /// balancer in front of several replicas may send elsewhere. 0: no limit.
    public var maxConnectionAgeSeconds = 0.0
    /// A frame whose first bytes arrived must be complete within this time (slowloris); else GOAWAY and close.
    public var frameReadTimeoutSeconds = 10.0
    /// Deadline given to calls that carry none, in milliseconds; 0 = none.
    public var defaultTimeoutMs: Int64 = 0
    /// Bearer tokens accepted for calls; empty means authentication is off.
    public var tokens: Set<String> = []
    /// Bearer tokens that may also call the Admin service (always required for it when authentication is on).
    public var adminTokens: Set<String> = []
    /// The server's log level: failed and refused calls are logged at warning, every call at debug.
    public var logLevel: Logger.Level = .info

    public init() {}
}
