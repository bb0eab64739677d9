// Progress and status lines for long work, on stderr (stdout stays for results).
import Foundation
import Serving

enum Console {
    /// `serve --log-format json`: status lines as JSON log lines too.
    nonisolated(unsafe) static var json = false

    static func status(_ line: String) {
        if json {
            JSONLogHandler.standardError(JSONLogHandler.line(time: Date(), level: .info, label: "r2ec", message: line,
                                                             metadata: [:]))
        } else {
            FileHandle.standardError.write(Data("r2ec: \(line)\n".utf8))
        }
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

/// A progress bar on stderr: `label [#####-------] 45% DETAIL, 12.3 s, ETA 15 s`, redrawn in place at most ten times a
/// second on a terminal; elsewhere (logs, CI) one line per 10% of the work.
final class ProgressBar {
    let label: String
    private let started = Date()
    private let terminal = isatty(2) != 0
    private var lastDraw = -1.0
    private var lastDecile = -1
    private var lastLine = ""

    init(label: String) { self.label = label }

    /// `done` of `total` (any unit); `detail` says what in the caller's words ("4.5M/10M events").
    func show(done: Double, total: Double, detail: String) {
        let elapsed = Date().timeIntervalSince(started)
        let fraction = total > 0 ? min(1, max(0, done / total)) : 1
        if terminal {
            if elapsed - lastDraw < 0.1 && fraction < 1 { return }
            lastDraw = elapsed
        } else {
            let decile = Int(fraction * 10)
            if decile == lastDecile { return }
            lastDecile = decile
        }
        let width = 30, filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0
        lastLine = String(format: "%@ [%@] %3.0f%% %@, %@, ETA %@", label, bar, 100 * fraction, detail,
                          Self.clock(elapsed), Self.clock(eta))
        FileHandle.standardError.write(Data(((terminal ? "\r\u{1B}[K" : "") + lastLine + (terminal ? "" : "\n")).utf8))
    }

    /// Ends the bar's line (on a terminal the last drawing stays).
    func finish() {
        if terminal && !lastLine.isEmpty { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    /// 12,345 -> "12.3k", 4,500,000 -> "4.50M".
    static func count(_ v: Int) -> String {
        let x = Double(v)
        if x >= 1e9 { return String(format: "%.2fG", x / 1e9) }
        if x >= 1e6 { return String(format: "%.2fM", x / 1e6) }
        if x >= 1e4 { return String(format: "%.1fk", x / 1e3) }
        return String(v)
    }

    static func clock(_ seconds: Double) -> String {
        let s = max(0, seconds.isFinite ? seconds : 0)
        if s < 60 { return String(format: "%.1f s", s) }
        let whole = Int(s.rounded())
        if whole >= 3600 { return "\(whole / 3600) h \(whole % 3600 / 60) min" }
        return "\(whole / 60) min \(whole % 60) s"
    }
}
