// Progress and status lines for long work, on stderr (stdout stays for results).
import Foundation

enum Console {
    static func status(_ line: String) {
        FileHandle.standardError.write(Data("r2ec: \(line)\n".utf8))
    }

    /// Peak resident memory of this process so far (getrusage's maxrss), in MiB.
    static var peakMemoryMiB: Double {
        var usage = rusage()
        #if os(Linux)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        return Double(usage.ru_maxrss) / 1024
    }
}

/// A progress bar on stderr: `label [#####-----] 45.0% 4.5M/10.0M events 1.2M/s ETA 4s`, redrawn in place at most
/// five times a second on a terminal; elsewhere (logs, CI) one line every 10% of the work.
final class ProgressBar {
    let label: String
    let unit: String
    private(set) var total: Int
    private let started = Date()
    private let terminal = isatty(2) != 0
    private var lastDraw = -1.0
    private var lastDecile = -1
    private var done = 0
    /// Work done before this process (a resumed job): excluded from the rate.
    private let resumedFrom: Int

    init(label: String, total: Int, unit: String, resumedFrom: Int = 0) {
        self.label = label
        self.total = max(0, total)
        self.unit = unit
        self.resumedFrom = resumedFrom
    }

    func update(_ done: Int) {
        self.done = done
        let now = Date().timeIntervalSince(started)
        if terminal {
            if now - lastDraw < 0.2 && done < total { return }
            lastDraw = now
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line(now)).utf8))
        } else {
            let decile = total > 0 ? done * 10 / total : 10
            if decile == lastDecile { return }
            lastDecile = decile
            FileHandle.standardError.write(Data((line(now) + "\n").utf8))
        }
    }

    /// Draws the final state and ends the line.
    func finish() {
        let now = Date().timeIntervalSince(started)
        if terminal {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line(now) + "\n").utf8))
        } else if lastDecile != 10 || done != total {
            lastDecile = 10
            FileHandle.standardError.write(Data((line(now) + "\n").utf8))
        }
    }

    private func line(_ seconds: Double) -> String {
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        let width = 24
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let rate = seconds > 0 ? Double(done - resumedFrom) / seconds : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        return String(format: "%@ [%@] %5.1f%% %@/%@ %@ %@/s ETA %@", label, bar, 100 * fraction, Self.count(Double(done)),
                      Self.count(Double(total)), unit, Self.count(rate), Self.clock(eta))
    }

    static func count(_ v: Double) -> String {
        if v >= 1e9 { return String(format: "%.2fG", v / 1e9) }
        if v >= 1e6 { return String(format: "%.2fM", v / 1e6) }
        if v >= 1e4 { return String(format: "%.1fk", v / 1e3) }
        return String(format: "%.0f", v)
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(max(0, seconds.isFinite ? seconds.rounded() : 0))
        if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m" }
        return s >= 60 ? "\(s / 60)m\(String(format: "%02d", s % 60))s" : "\(s)s"
    }
}
