// Package device is aiodio's lowest layer: an asynchronous block device.
//
// It owns the Device/Request contract (device.go), request validation
// (Check), and the backends: NewMemory (a RAM device), and Open, which opens an
// image file or a block device served by the io_uring engine (internal/uring)
// or by a bounded pool of goroutines doing preadv/pwritev/fdatasync. The
// simulated device for tests lives in device/sim; the conformance suite every
// backend passes in device/devicetest; the benchmark driver in device/devbench.
//
// Invariants enforced here (DESIGN I2, I3, I12):
//   - a request rejected by Submit (EINVAL with the violated alignment or
//     bound in the message, EBADF after Close) is never completed;
//   - an accepted request completes exactly once, after the last byte moved;
//     short transfers are resubmitted for the remainder, so N is the full
//     length on success;
//   - Close waits for every accepted request, then stops the engine's
//     goroutines and releases the file descriptor;
//   - the steady-state submit/complete path allocates nothing.
//
// Callers: a Done callback runs on an engine goroutine (the io_uring reaper,
// a pool worker); it may Submit but must not call Close (Close waits for it).
// Submit is variadic and called through an interface, so Submit(&req)
// allocates its one-element slice; a hot path keeps a [1]*Request next to
// its request and calls Submit(one[:]...) instead (see device/devbench).
//
// Registered buffers: the io_uring device implements BufferRegistrar; a
// request whose single buffer lies inside registered memory is issued as
// READ_FIXED/WRITE_FIXED. Measured here it gave no gain on ext4 or tmpfs
// (the device or io-wq dominates), so devbench does not use it, matching
// fio's default.
//
// tmpfs: io_uring serves no file operation there without punting it to
// io-wq, and io-wq runs non-sleeping work (memory copies) on one worker per
// submitting thread, so the doorbell design put the whole workload, flushes
// included, on one worker (aiodio demo: 7.8k-10.4k ops/s vs 22k-35k with
// the thread pool, flush p50 ~3 ms vs 0.6 ms). Hence auto picks the thread
// pool for a file on tmpfs, and an explicit io_uring engine there submits
// from the calling threads (no doorbell) with IOSQE_ASYNC.
//
// Resubmission from Done: off tmpfs the io_uring engine's reaper submits
// what a Done callback submitted before it reaps the next completion
// (internal/uring eager mode), so a caller that keeps N requests in flight
// from its callbacks feeds the device a steady stream, as fio does, not
// bursts. That closed the gap to fio on 4 KiB random I/O on the ext4 disk
// (random writes 0.73-0.77 of fio before, 1.01 after; see README).
//
// Decisions: requests larger than Info.MaxIO are rejected, not split (the
// caller splits); every buffer of a vectored request must have a length that
// is a multiple of the logical block size and an address aligned to MemAlign,
// as the kernel's direct-I/O path demands; Open falls back to a cached open
// (Info.Cached) when the filesystem refuses O_DIRECT, and logs it.
package device
