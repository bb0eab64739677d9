// Starts a program under Open MPI's mpirun and waits for it: N ranks on this machine, or on named hosts through a
// remote launcher (ssh, or scripts/netns-rsh.sh for test hosts in network namespaces) over TCP. What tests and
// `r2ec bench` use to start data-parallel runs; people type the same command line (`commandLine` prints it).
import Foundation

public struct MPIRun {
    public var ranks: Int
    public var program: String
    public var arguments: [String]
    /// Set on every rank, remote ones included (mpirun -x NAME=VALUE).
    public var environment: [String: String] = [:]
    /// Hosts, one rank each (mpirun --host A,B); nil puts every rank on this machine.
    public var hosts: [String]?
    /// mpirun's remote launcher (plm_rsh_agent) for `hosts`.
    public var launcher: String?
    /// Ranks talk over TCP only, on the interface of this subnet (e.g. "10.77.0.0/24"), for data and control.
    public var tcpSubnet: String?
    /// A command mpirun itself runs under (e.g. `ip netns exec NAME-h1`, to start it on the first test host).
    public var wrapper: [String] = []

    public init(ranks: Int, program: String, arguments: [String]) {
        self.ranks = ranks
        self.program = program
        self.arguments = arguments
    }

    /// mpirun on PATH, or nil.
    public static var mpirun: String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(dir)/mpirun"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    public var commandLine: [String] {
        var c = wrapper + [Self.mpirun ?? "mpirun", "-np", String(ranks)]
        // Root may run ranks only when asked to (CI runs as root).
        if geteuid() == 0 { c.append("--allow-run-as-root") }
        if let hosts {
            c += ["--host", hosts.joined(separator: ",")]
        } else {
            // More ranks than cores is allowed (tests); ranks are not pinned then.
            c.append("--oversubscribe")
        }
        if let launcher { c += ["--mca", "plm_rsh_agent", launcher] }
        if let tcpSubnet {
            c += ["--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", tcpSubnet,
                  "--mca", "oob_tcp_if_include", tcpSubnet]
        }
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) { c += ["-x", "\(name)=\(value)"] }
        return c + [program] + arguments
    }

    public struct Result {
        public var status: Int32
        /// stdout and stderr of mpirun and every rank, interleaved.
        public var output: String
        public var timedOut: Bool
    }

    /// Runs the command line, killing it after `timeout` seconds.
    public func run(timeout: Double) throws -> Result {
        guard Self.mpirun != nil else {
            throw CollectiveError.mpi(call: "mpirun", message: "mpirun is not on PATH (Debian: apt-get install openmpi-bin)")
        }
        let process = Process()
        let line = commandLine
        process.executableURL = URL(fileURLWithPath: line[0].hasPrefix("/") ? line[0] : "/usr/bin/env")
        process.arguments = line[0].hasPrefix("/") ? Array(line.dropFirst()) : line
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let timer = DispatchWorkItem { if process.isRunning { process.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: timer)
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let timedOut = !timer.isCancelled && process.terminationReason == .uncaughtSignal
        timer.cancel()
        return Result(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self), timedOut: timedOut)
    }
}
