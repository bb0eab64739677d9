// The process's own metrics in the names every Prometheus client library uses (process_cpu_seconds_total,
// process_resident_memory_bytes, process_open_fds, ...), read from the kernel at each scrape: getrusage for CPU time,
// /proc/self/statm for memory, /proc/self/fd for descriptors, getrlimit for their limit, /proc/self/stat and
// /proc/stat for the start time.
import Foundation

public struct ProcessMetrics: Equatable {
    public var cpuSeconds: Double
    public var residentBytes: Double
    public var virtualBytes: Double
    public var openFds: Int
    public var maxFds: Double
    /// Unix time the process started, or nil when /proc does not say.
    public var startTimeSeconds: Double?

    public static func read() -> ProcessMetrics {
        var usage = rusage()
        #if os(Linux)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        let cpu = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        let page = Double(sysconf(Int32(_SC_PAGESIZE)))
        let statm = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8))?
            .split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? []
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return ProcessMetrics(cpuSeconds: cpu, residentBytes: statm.count > 1 ? statm[1] * page : 0,
                              virtualBytes: statm.first.map { $0 * page } ?? 0,
                              // the listing's own descriptor is open while it is read
                              openFds: max(0, fds - 1), maxFds: Double(limit.rlim_cur), startTimeSeconds: startTime())
    }

    /// Field 22 of /proc/self/stat (clock ticks after boot) plus /proc/stat's btime.
    static func startTime() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // After "pid (comm) ": state is field 3, so starttime (22) is the 20th field after the parenthesis.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]),
              let system = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = system.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
              let boot = Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) else { return nil }
        return boot + ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Prometheus text exposition of these values.
    public func exposition() -> [UInt8] {
        var text = ""
        func metric(_ name: String, _ type: String, _ help: String, _ value: Double) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(Self.format(value))\n"
        }
        metric("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", cpuSeconds)
        metric("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", residentBytes)
        metric("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", virtualBytes)
        metric("process_open_fds", "gauge", "Number of open file descriptors.", Double(openFds))
        metric("process_max_fds", "gauge", "Maximum number of open file descriptors.", maxFds)
        if let startTimeSeconds {
            metric("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
                   startTimeSeconds)
        }
        return Array(text.utf8)
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
