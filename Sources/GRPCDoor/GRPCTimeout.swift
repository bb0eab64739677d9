// The grpc-timeout request header (gRPC over HTTP/2, "Timeout"): 1 to 8 ASCII digits and a unit,
// H (hours), M (minutes), S (seconds), m (milliseconds), u (microseconds), n (nanoseconds).
#if GRPC

enum GRPCTimeout {
    /// The timeout in nanoseconds, or nil when `text` is not a valid grpc-timeout value.
    static func nanoseconds(_ text: String) -> UInt64? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 2, bytes.count <= 9 else { return nil }
        var value: UInt64 = 0
        for b in bytes.dropLast() {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + UInt64(b - UInt8(ascii: "0"))
        }
        let unit: UInt64
        switch bytes.last! {
        case UInt8(ascii: "H"): unit = 3_600_000_000_000
        case UInt8(ascii: "M"): unit = 60_000_000_000
        case UInt8(ascii: "S"): unit = 1_000_000_000
        case UInt8(ascii: "m"): unit = 1_000_000
        case UInt8(ascii: "u"): unit = 1_000
        case UInt8(ascii: "n"): unit = 1
        default: return nil
        }
        // 99,999,999 hours does not fit in UInt64 nanoseconds: saturate (a deadline that far is no deadline).
        let (product, overflow) = value.multipliedReportingOverflow(by: unit)
        return overflow ? UInt64.max : product
    }
}
#endif
