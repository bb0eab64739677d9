// Open connections against the process's open-file limit (RLIMIT_NOFILE): every connection holds a descriptor, and
// a server allowed more connections than it has descriptors fails to accept (EMFILE) on every port at once. At
// start the soft limit is raised as far as the hard limit allows; when even that is too low, the connection limit
// is lowered to fit. Either is said in one log line.
import Foundation

public enum DescriptorLimit {
    /// Descriptors kept for everything but client connections: listeners, the loop's own, signal pipes, the
    /// dataset and checkpoint files, a store's database, model loads, threads' event descriptors.
    public static let reserve = 64
    /// RLIM_INFINITY (all ones; the C macro does not import).
    private static let unlimited = rlim_t.max

    /// The connection limit that fits `RLIMIT_NOFILE` (after raising its soft value towards the hard one when
    /// `maxConnections + metricsConnections + reserve` needs it), and a note for the log when anything changed.
    public static func fit(maxConnections: Int, metricsConnections: Int) -> (maxConnections: Int, note: String?) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (maxConnections, nil) }
        let needed = rlim_t(maxConnections + metricsConnections + reserve)
        let soft = limit.rlim_cur, hard = limit.rlim_max
        if soft == unlimited || soft >= needed { return (maxConnections, nil) }
        let target = hard == unlimited ? needed : min(hard, needed)
        var raised = soft
        if target > soft {
            var wanted = limit
            wanted.rlim_cur = target
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &wanted) == 0 { raised = target }
        }
        if raised >= needed {
            return (maxConnections, "raised the open-file limit (RLIMIT_NOFILE) from \(soft) to \(raised) for "
                + "--max-connections \(maxConnections) (+\(metricsConnections) metrics, +\(reserve) reserved)")
        }
        let fitted = max(1, Int(raised) - metricsConnections - reserve)
        return (fitted, "the open-file limit (RLIMIT_NOFILE soft \(raised), hard \(hard == unlimited ? "unlimited" : "\(hard)")) "
            + "leaves room for \(fitted) connections: serving at most \(fitted), not the --max-connections "
            + "\(maxConnections) asked for (raise the limit with ulimit -n)")
    }
}
