// The program's version (`r2ec --version`), raised by hand with each change to the wire contract or the command line.

enum R2ecVersion {
    static let current = "0.9.0"
}
