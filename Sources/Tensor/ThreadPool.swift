// ThreadPool: persistent worker threads that run `body(i)` for i in 0..<n together with the calling thread.
// Sized to the machine's cores; nested or concurrent calls run inline, so the cores are never oversubscribed.
import Foundation
import Synchronization

/// Splits loops over the machine's cores. Workers are created once and sleep on a condition variable between
/// jobs (after a short spin, so back-to-back kernels in one forward pass do not pay a wake-up each).
/// A call from inside a job, or while another thread's job runs, executes serially on the caller: the pool never
/// stacks threads on threads, and OpenBLAS is kept single-threaded (see `BLAS`) so it does not either.
public final class ThreadPool: @unchecked Sendable {
    /// One pool for the process, with one thread per online core (the caller counts as one).
    public static let shared = ThreadPool(threadCount: ProcessInfo.processInfo.activeProcessorCount)

    /// Threads that run a job, the caller included.
    public let threadCount: Int

    private let lock = NSCondition()          // guards generation/job/pending; signals workers and the caller
    private var generation = 0                // bumped per job; workers run each generation once
    private var job: ((Int) -> Void)?
    private var jobCount = 0
    private var pending = 0                   // workers still inside the current job
    private let nextIndex = Atomic<Int>(0)
    private let publishedGeneration = Atomic<Int>(0)  // lets spinning workers see a new job without the lock
    private let busy = Mutex<Bool>(false)     // a job is running: other callers run inline

    /// Whether the current thread is a pool worker or a caller inside `parallelFor` (nested calls run inline).
    private static let insideKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()
    private static var isInside: Bool {
        get { pthread_getspecific(insideKey) != nil }
        set { pthread_setspecific(insideKey, newValue ? UnsafeRawPointer(bitPattern: 1) : nil) }
    }

    public init(threadCount: Int) {
        self.threadCount = max(1, threadCount)
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
            lock.lock()
            job = escapable
            jobCount = n
            nextIndex.store(0, ordering: .relaxed)
            pending = threadCount - 1
            generation += 1
            publishedGeneration.store(generation, ordering: .releasing)
            lock.broadcast()
            lock.unlock()
            runItems(escapable, n)
            lock.lock()
            while pending > 0 { lock.wait() }
            job = nil
            lock.unlock()
        }
        ThreadPool.isInside = false
        busy.withLock { $0 = false }
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
        busy.withLock { running in
            if running { return false }
            running = true
            return true
        }
    }

    private func runItems(_ body: (Int) -> Void, _ n: Int) {
        while true {
            let i = nextIndex.wrappingAdd(1, ordering: .relaxed).oldValue
            if i >= n { return }
            body(i)
        }
    }

    /// Runs the published job's items. A separate function so the worker's reference to the job's closure is
    /// released on return, before the worker reports done (withoutActuallyEscaping checks nothing kept it).
    @inline(never) private func runCurrentJob() {
        lock.lock()
        let body = job!
        let n = jobCount
        lock.unlock()
        runItems(body, n)
    }

    private func workerLoop() {
        ThreadPool.isInside = true
        var seen = 0
        while true {
            // Spin briefly for the next job: kernels of one forward pass arrive microseconds apart.
            var spins = 0
            while publishedGeneration.load(ordering: .acquiring) == seen && spins < 20_000 {
                spins += 1
            }
            lock.lock()
            while generation == seen { lock.wait() }
            seen = generation
            lock.unlock()
            runCurrentJob()
            lock.lock()
            pending -= 1
            if pending == 0 { lock.broadcast() }
            lock.unlock()
        }
    }
}
