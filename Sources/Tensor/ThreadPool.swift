// ThreadPool: persistent worker threads that run `body(i)` for i in 0..<n together with the calling thread.
// Sized to the machine's cores; nested or concurrent calls run inline, so the cores are never oversubscribed.
import Foundation
import Synchronization

/// Splits loops over the machine's cores. Workers are created once. Between jobs they spin for a few tens of
/// microseconds (kernels of one forward pass arrive back to back, and a futex wake-up costs as much as a small
/// kernel), then sleep on a condition variable; the caller likewise spins, then sleeps, waiting for completion.
/// A call from inside a job, or while another thread's job runs, executes serially on the caller: the pool never
/// stacks threads on threads, and OpenBLAS is kept single-threaded (see `BLAS`) so it does not either.
public final class ThreadPool: @unchecked Sendable {
    /// One pool for the process, with one thread per online core (the caller counts as one), or
    /// R2EC_THREADS threads when that is set (1 makes every kernel run on its caller alone).
    public static let shared = ThreadPool(threadCount: defaultThreadCount)

    public static var defaultThreadCount: Int {
        if let text = ProcessInfo.processInfo.environment["R2EC_THREADS"], let n = Int(text), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }

    /// Threads that run a job, the caller included.
    public let threadCount: Int

    /// Busy-wait iterations (one atomic load each, ~10-50 us in all) before a waiting thread sleeps.
    private let spinLimit = 50_000

    // The current job: written by the caller before `ticket` publishes it, read by workers after they claim an
    // index of it. `ticket` packs (generation << 32 | next index), so a claim names its job: a worker that arrives
    // after the job ended finds a different generation or no index left, and never touches a stale closure. When a
    // job ends the caller sets its index field to `exhausted`, so that a late worker pairing the old generation
    // with the next job's count (read while the caller sets up that job) cannot claim an index either.
    private var job: ((Int) -> Void)?
    private let jobCount = Atomic<Int>(0)
    private static let exhausted = 0xFFFF_FFFF
    private let ticket = Atomic<Int>(0)
    private let completed = Atomic<Int>(0)       // items of the current job finished by workers

    private let sleep = NSCondition()            // guards the two fields below; wakes sleeping threads
    private var sleepingWorkers = 0
    private var callerSleeping = false
    private let busy = Atomic<Bool>(false)       // a job is running: other callers run inline

    private static let insideKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()
    /// Whether the current thread is a pool worker or a caller inside `parallelFor` (nested calls run inline).
    private static var isInside: Bool {
        get { pthread_getspecific(insideKey) != nil }
        set { pthread_setspecific(insideKey, newValue ? UnsafeRawPointer(bitPattern: 1) : nil) }
    }

    public init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
        BLAS.configure()   // OpenBLAS's own threads would compete with these workers
        for w in 1..<self.threadCount {
            let thread = Thread { [unowned self] in self.workerLoop() }
            thread.name = "r2ec-tensor-\(w)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Runs `body(i)` for every i in 0..<n, spread over the pool; returns when all are done.
    /// Indices are handed out one at a time from a shared counter, so uneven items balance themselves.
    public func parallelFor(_ n: Int, _ body: (Int) -> Void) {
        if n <= 0 { return }
        if n == 1 || threadCount == 1 || ThreadPool.isInside || !tryAcquire() {
            for i in 0..<n { body(i) }
            return
        }
        ThreadPool.isInside = true
        withoutActuallyEscaping(body) { escapable in
            job = escapable
            jobCount.store(n, ordering: .relaxed)
            completed.store(0, ordering: .relaxed)
            let generation = ((ticket.load(ordering: .relaxed) >> 32) + 1) & 0x7FFF_FFFF  // wraps, never repeats the last
            sleep.lock()
            ticket.store(generation << 32, ordering: .releasing)
            if sleepingWorkers > 0 { sleep.broadcast() }
            sleep.unlock()
            // The caller claims items like a worker; if a worker is descheduled it simply does them all.
            var doneHere = 0
            while let i = claim(generation: generation, count: n) { escapable(i); doneHere += 1 }
            waitUntilCompleted(n - doneHere)
            ticket.store(generation << 32 | ThreadPool.exhausted, ordering: .releasing)
            job = nil
        }
        ThreadPool.isInside = false
        busy.store(false, ordering: .releasing)
    }

    /// Runs `body(range)` over `threadCount` contiguous, nearly equal slices of 0..<n (fewer when n is small
    /// relative to `minimumPerSlice`), for kernels whose per-index work is too small to hand out one at a time.
    public func parallelSlices(_ n: Int, minimumPerSlice: Int = 1, _ body: (Range<Int>) -> Void) {
        if n <= 0 { return }
        let slices = max(1, min(threadCount, n / max(1, minimumPerSlice)))
        if slices == 1 { body(0..<n); return }
        parallelFor(slices) { s in body((n * s / slices)..<(n * (s + 1) / slices)) }
    }

    private func tryAcquire() -> Bool {
        busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
    }

    /// The next unclaimed index of job `generation`, or nil when that job has none left (or has ended).
    @inline(__always) private func claim(generation: Int, count n: Int) -> Int? {
        var current = ticket.load(ordering: .acquiring)
        while true {
            let index = current & 0xFFFF_FFFF
            if current >> 32 != generation || index >= n { return nil }
            let (exchanged, original) = ticket.compareExchange(expected: current, desired: current + 1,
                                                               ordering: .acquiringAndReleasing)
            if exchanged { return index }
            current = original
        }
    }

    private func waitUntilCompleted(_ itemsOfWorkers: Int) {
        if itemsOfWorkers == 0 { return }
        var spins = 0
        while completed.load(ordering: .acquiring) < itemsOfWorkers && spins < spinLimit { spins += 1 }
        if completed.load(ordering: .acquiring) >= itemsOfWorkers { return }
        sleep.lock()
        callerSleeping = true
        while completed.load(ordering: .acquiring) < itemsOfWorkers { sleep.wait() }
        callerSleeping = false
        sleep.unlock()
    }

    /// Runs item `index` of the current job. A separate function so the worker's reference to the job's closure
    /// is released on return, before the item is reported complete (withoutActuallyEscaping checks nothing kept it).
    @inline(never) private func runItem(_ index: Int) {
        job!(index)
    }

    private func workerLoop() {
        ThreadPool.isInside = true
        var seenGeneration = 0
        while true {
            var spins = 0
            while ticket.load(ordering: .acquiring) >> 32 == seenGeneration && spins < spinLimit { spins += 1 }
            if ticket.load(ordering: .acquiring) >> 32 == seenGeneration {
                sleep.lock()
                sleepingWorkers += 1
                while ticket.load(ordering: .acquiring) >> 32 == seenGeneration { sleep.wait() }
                sleepingWorkers -= 1
                sleep.unlock()
            }
            let current = ticket.load(ordering: .acquiring)
            seenGeneration = current >> 32
            // jobCount belongs to this generation as long as the job has an unclaimed index (see `ticket`).
            let n = jobCount.load(ordering: .relaxed)
            while let i = claim(generation: seenGeneration, count: n) {
                runItem(i)
                completed.wrappingAdd(1, ordering: .releasing)
            }
            sleep.lock()
            if callerSleeping { sleep.broadcast() }
            sleep.unlock()
        }
    }
}
