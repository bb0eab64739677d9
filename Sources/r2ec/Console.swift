// Progress and status lines for long work, on stderr (stdout stays for results).
import Foundation

enum Console {
    static func status(_ line: String) {
        FileHandle.standardError.write(Data("r2ec: \(line)\n".utf8))
    }
}
