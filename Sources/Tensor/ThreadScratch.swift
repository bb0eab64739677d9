// Per-thread scratch memory for kernels that need a temporary per call (a GEMM packing its B operand, bf16 rounding
// of activations): grown on demand and kept for the thread's life, so a hot loop never maps fresh pages (an 8 MB
// malloc per call cost ~1 ms of page faults here). One buffer per thread: a kernel must not call another kernel that
// uses it while its own is live.
import Foundation

enum ThreadScratch {
    private final class Box {
        var pointer: UnsafeMutableRawPointer?
        var bytes = 0
        deinit { pointer?.deallocate() }
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { raw in if let raw { Unmanaged<AnyObject>.fromOpaque(raw).release() } }
        return key
    }()

    /// At least `bytes` bytes, 64-byte aligned, owned by the calling thread (contents undefined).
    static func bytes(_ bytes: Int) -> UnsafeMutableRawPointer {
        let box: Box
        if let raw = pthread_getspecific(key) {
            box = Unmanaged<AnyObject>.fromOpaque(raw).takeUnretainedValue() as! Box
        } else {
            box = Box()
            pthread_setspecific(key, Unmanaged<AnyObject>.passRetained(box).toOpaque())
        }
        if box.bytes < bytes {
            box.pointer?.deallocate()
            let size = max(bytes, box.bytes + box.bytes / 2)
            box.pointer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
            box.bytes = size
        }
        return box.pointer!
    }
}
