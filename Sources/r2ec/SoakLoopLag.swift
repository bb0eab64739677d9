// The server's own view of its event loop during a soak: `r2ec_event_loop_lag_seconds` read from /metrics every
// 10 s. Beside the bystander's latency it tells a loop that was busy or not scheduled (the server's fault) from a
// client that was slow to run (the machine's 2 cores shared with the soak's own threads).
import Foundation
import RPC

struct LoopLagSample {
    /// Timer ticks observed so far, and those at least 25 ms and at least 50 ms late.
    var ticks = 0.0, late25 = 0.0, late50 = 0.0

    /// Reads the histogram from the server's metrics port; nil when the page cannot be read.
    static func read(metricsPort: Int) -> LoopLagSample? {
        guard let client = try? Client(port: metricsPort),
              (try? client.sendRaw(Array("GET /metrics HTTP/1.1\r\nHost: soak\r\n\r\n".utf8))) != nil else { return nil }
        defer { client.close() }
        var page: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var pfd = pollfd(fd: client.rawDescriptor, events: Int16(POLLIN), revents: 0)
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, page.count < 8 << 20 {
            guard poll(&pfd, 1, 500) > 0 else { continue }
            let n = recv(client.rawDescriptor, &chunk, chunk.count, 0)
            if n <= 0 { break }  // the endpoint closes after each answer
            page += chunk[0..<n]
        }
        let text = String(decoding: page, as: UTF8.self)
        var sample = LoopLagSample()
        var found = false
        for line in text.split(separator: "\n") where line.hasPrefix("r2ec_event_loop_lag_seconds_") {
            guard let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
            if line.hasPrefix("r2ec_event_loop_lag_seconds_count") { sample.ticks = value; found = true }
            if line.contains("le=\"0.025\"") { sample.late25 = value }
            if line.contains("le=\"0.05\"") { sample.late50 = value }
        }
        guard found else { return nil }
        // The buckets are cumulative (ticks at most `le` late): late = all - within.
        sample.late25 = sample.ticks - sample.late25
        sample.late50 = sample.ticks - sample.late50
        return sample
    }

    static func - (a: LoopLagSample, b: LoopLagSample) -> LoopLagSample {
        LoopLagSample(ticks: a.ticks - b.ticks, late25: a.late25 - b.late25, late50: a.late50 - b.late50)
    }
}
