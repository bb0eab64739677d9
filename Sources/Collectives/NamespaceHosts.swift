// Two test "hosts" on this machine: network namespaces joined by a veth pair (scripts/netns-hosts.sh), and an
// MPIRun configured to start one rank on each over TCP (scripts/netns-rsh.sh as mpirun's remote launcher). What the
// tests of collectives and of data-parallel training use to cross a network without a second machine.
import Foundation

/// Two hosts made by scripts/netns-hosts.sh, named uniquely per test run, and torn down by `down()`.
public struct NamespaceHosts {
    public let scripts: String
    public let name: String

    /// Creates the hosts with scripts/netns-hosts.sh from `scripts` (needs root and iproute2).
    public init(scripts: String) throws {
        self.scripts = scripts
        name = "r2ec\(getpid())"
        let up = Process()
        up.executableURL = URL(fileURLWithPath: scripts + "/netns-hosts.sh")
        up.arguments = ["up", name]
        let pipe = Pipe()
        up.standardOutput = pipe
        up.standardError = pipe
        try up.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        up.waitUntilExit()
        guard up.terminationStatus == 0 else {
            down()
            throw CollectiveError.mpi(call: "netns-hosts.sh up", message: output)
        }
    }

    /// mpirun runs on the first host and starts one rank per host through the namespace launcher, TCP only.
    public func configure(_ run: inout MPIRun) {
        // The launcher reads the host map from mpirun's own environment.
        run.wrapper = ["/usr/bin/env", "R2EC_NETNS_HOSTS=10.77.0.1=\(name)-h1,10.77.0.2=\(name)-h2",
                       "ip", "netns", "exec", "\(name)-h1"]
        run.hosts = ["10.77.0.1", "10.77.0.2"]
        run.launcher = scripts + "/netns-rsh.sh"
        run.tcpSubnet = "10.77.0.0/24"
    }

    public func down() {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: scripts + "/netns-hosts.sh")
        p.arguments = ["down", name]
        try? p.run()
        p.waitUntilExit()
    }
}
