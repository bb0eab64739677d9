// Rate limit for the server's log: lines of the same kind (the same text once the peer prefix is dropped and every
// word holding a digit is read as one number: stream ids, ports, sizes, hex values) get `burst` lines per `window`; the rest are
// counted and reported in one "suppressed" line when the kind's next window opens, so a client repeating a bad call
// cannot flood the log or the disk. Loop thread only.
import Foundation

struct LogLimiter {
    /// Lines of one kind let through per window.
    var burst = 10
    /// Window length in nanoseconds.
    var window: UInt64 = 10_000_000_000
    /// Kinds remembered at once; past this the oldest windows are forgotten (their suppressed counts reported).
    var maxKinds = 1024

    private struct Slot {
        var start: UInt64
        var count: Int
        var suppressed: Int
    }
    private var slots: [String: Slot] = [:]

    /// The kind of a line: its first 64 characters after an optional "peer: " prefix, every word holding a digit
    /// read as one number '#' (stream ids, ports, sizes, and hex values a client chose: the magic of a garbage frame
    /// "0x9CAB3D69" is '#' too, so random bytes cannot make every line a kind of its own).
    static func kind(_ line: String, peer: String? = nil) -> String {
        var text = Substring(line)
        if let peer, text.hasPrefix(peer + ": ") { text = text.dropFirst(peer.count + 2) }
        var out = ""
        var word = ""
        var wordHasDigit = false
        func endWord() {
            out += wordHasDigit ? "#" : word
            word = ""
            wordHasDigit = false
        }
        for ch in text.prefix(96) {
            if ch.isASCII, ch.isLetter || ch.isNumber {
                word.append(ch)
                if ch.isNumber { wordHasDigit = true }
            } else {
                endWord()
                out.append(ch)
            }
            if out.count >= 64 { break }
        }
        endWord()
        return String(out.prefix(64))
    }

    /// Decides one line of `kind` at `now`: whether to write it, and a note about lines suppressed in the kind's
    /// last window to write before it (when that window has closed).
    mutating func admit(_ kind: String, now: UInt64 = DispatchTime.now().uptimeNanoseconds) -> (write: Bool, note: String?) {
        var note: String?
        if var slot = slots[kind] {
            if now >= slot.start + window {
                if slot.suppressed > 0 {
                    note = "suppressed \(slot.suppressed) more line(s) like '\(kind)' in \(window / 1_000_000_000) s"
                }
                slot = Slot(start: now, count: 0, suppressed: 0)
            }
            if slot.count < burst {
                slot.count += 1
                slots[kind] = slot
                return (true, note)
            }
            slot.suppressed += 1
            slots[kind] = slot
            return (false, note)
        }
        if slots.count >= maxKinds {
            // Forget closed windows first; when every window is open, forget them all (counts noted once).
            let closed = slots.filter { now >= $0.value.start + window }
            let dropped = closed.isEmpty ? slots : closed
            let lost = dropped.values.reduce(0) { $0 + $1.suppressed }
            if closed.isEmpty { slots.removeAll() } else { for k in closed.keys { slots[k] = nil } }
            if lost > 0 { note = "suppressed \(lost) more line(s) of \(dropped.count) kind(s)" }
        }
        slots[kind] = Slot(start: now, count: 1, suppressed: 0)
        return (true, note)
    }

    /// Forgets every closed window, returning a note for each that suppressed lines (call about once a second).
    mutating func expire(now: UInt64 = DispatchTime.now().uptimeNanoseconds) -> [String] {
        var notes: [String] = []
        for (kind, slot) in slots where now >= slot.start + window {
            if slot.suppressed > 0 {
                notes.append("suppressed \(slot.suppressed) more line(s) like '\(kind)' in \(window / 1_000_000_000) s")
            }
            slots[kind] = nil
        }
        return notes.sorted()
    }
}
