// Dedicated model-work threads (not libuv's shared pool): a FIFO of jobs served by N threads.
import Foundation

public final class WorkerPool: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var head = 0
    private var stopping = false
    private var threads: [Thread] = []
    private var running = 0

    public init(threads count: Int, name: String = "r2ec-worker") {
        precondition(count >= 1)
        for i in 0..<count {
            let t = Thread { [unowned self] in self.loop() }
            t.name = "\(name)-\(i)"
            t.stackSize = 8 << 20
            threads.append(t)
        }
        running = count
        threads.forEach { $0.start() }
    }

    public func submit(_ job: @escaping () -> Void) {
        condition.lock()
        precondition(!stopping, "submit after shutdown")
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Jobs waiting to start.
    public var queued: Int {
        condition.lock(); defer { condition.unlock() }
        return jobs.count - head
    }

    /// Runs every queued job, then stops the threads and waits for them.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while head == jobs.count && !stopping { condition.wait() }
            if head == jobs.count {
                running -= 1
                condition.broadcast()
                condition.unlock()
                return
            }
            let job = jobs[head]
            head += 1
            if head > 1024 && head * 2 > jobs.count { jobs.removeFirst(head); head = 0 }
            condition.unlock()
            job()
        }
    }
}
