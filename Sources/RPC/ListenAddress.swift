// The address a listener binds: an IPv4 or IPv6 literal, or a host name resolved once at start (getaddrinfo; an
// IPv4 address is preferred when the name has both, so `localhost` binds 127.0.0.1 like the default host).
import Foundation

public struct ListenAddress: CustomStringConvertible {
    public let host: String
    public let port: Int
    /// The resolved socket address (sockaddr_in or sockaddr_in6 inside).
    var storage: sockaddr_storage

    /// Resolves `host` for a listener on `port` (0...65535). Throws ServerError.badAddress naming the host or port.
    public init(host: String, port: Int) throws {
        guard (0...65535).contains(port) else {
            throw ServerError.badAddress(host, "port \(port) is outside 0...65535")
        }
        guard !host.isEmpty else { throw ServerError.badAddress(host, "empty host") }
        self.host = host
        self.port = port
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let literal = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let rc = getaddrinfo(literal, String(port), &hints, &list)
        guard rc == 0, let list else {
            throw ServerError.badAddress(host, rc == 0 ? "no address" : String(cString: gai_strerror(rc)))
        }
        defer { freeaddrinfo(list) }
        var chosen: UnsafeMutablePointer<addrinfo>?
        var p: UnsafeMutablePointer<addrinfo>? = list
        while let a = p {
            if a.pointee.ai_family == AF_INET { chosen = a; break }
            if a.pointee.ai_family == AF_INET6, chosen == nil { chosen = a }
            p = a.pointee.ai_next
        }
        guard let chosen, let addr = chosen.pointee.ai_addr else {
            throw ServerError.badAddress(host, "no IPv4 or IPv6 address")
        }
        var s = sockaddr_storage()
        withUnsafeMutableBytes(of: &s) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: addr, count: Int(chosen.pointee.ai_addrlen)))
        }
        storage = s
    }

    /// The same address with another port.
    func with(port: Int) throws -> ListenAddress {
        guard (0...65535).contains(port) else { throw ServerError.badAddress(host, "port \(port) is outside 0...65535") }
        var s = storage
        // sin_port and sin6_port sit at the same offset, in network byte order.
        withUnsafeMutableBytes(of: &s) { $0.storeBytes(of: UInt16(port).bigEndian, toByteOffset: 2, as: UInt16.self) }
        return ListenAddress(host: host, port: port, storage: s)
    }

    private init(host: String, port: Int, storage: sockaddr_storage) {
        self.host = host
        self.port = port
        self.storage = storage
    }

    /// The numeric address ("127.0.0.1", "::1").
    public var numeric: String {
        var s = storage
        var name = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let len = socklen_t(s.ss_family == sa_family_t(AF_INET6) ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafePointer(to: &s) {
            getnameinfo(UnsafeRawPointer($0).assumingMemoryBound(to: sockaddr.self), len, &name, socklen_t(name.count),
                        nil, 0, NI_NUMERICHOST)
        }
        return rc == 0 ? String(cString: name) : host
    }

    public var description: String { host == numeric ? "\(host):\(port)" : "\(host) (\(numeric)):\(port)" }

    /// Calls `body` with the address as a `sockaddr` pointer.
    func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>) -> T) -> T {
        var s = storage
        return withUnsafePointer(to: &s) { body(UnsafeRawPointer($0).assumingMemoryBound(to: sockaddr.self)) }
    }
}
