// Package sim is a deterministic simulated block device for tests.
//
// A *Device implements device.Device over an in-memory medium (sparse: 64 KiB
// chunks allocated on first write, so size costs nothing until written; up
// to MaxSize = 1 TiB) and adds the
// controls an invariant test needs to drive the exact interleavings the
// aiodio design is built to survive (DESIGN §7):
//
//   - Seeded completion order. Requests that are ready together complete in an
//     order picked by a PRNG seeded with Options.Seed (or in submission order
//     with Options.Ordered). By default all completions run on one sim
//     goroutine, so without Latency the order is a pure function of the seed and the
//     sequence of submissions and releases the device sees: a batch handed
//     to one Submit call, a ReleaseAll, or requests submitted from inside
//     Done callbacks always complete in the same order for the same seed.
//     Requests submitted, or released one by one, from other goroutines race
//     with the completer as on real hardware; to force an exact order,
//     Release one request and wait on its Completed channel before the next.
//   - Hold mode. With Options.Hold, SetHold or HoldIf, submitted requests wait
//     in Held() until the test calls Release, ReleaseAll or Fail; WaitHeld and
//     WaitFor block until chosen requests have been submitted.
//   - Late DMA. Write data is copied from the caller's buffers to the medium
//     at completion, not at submission, and read data is copied to them at
//     completion: a caller that reuses or frees a buffer before Done sees the
//     damage (and the race detector reports it).
//   - A volatile write cache. A completed write is visible to later reads but
//     durable only once a Flush submitted after its completion completes.
//     CrashImage and Crash emulate power loss: every unflushed or in-flight
//     write is lost, kept, or torn in units of PhysicalBlockSize (default: the
//     sector size), chosen by a seeded PRNG; flushed data always survives.
//     CrashAfter cuts the power after the nth completion, a replayable point.
//   - Fault injection. Inject (and FailRange, FailAfter, FailFlush) fail the
//     requests that match by kind, device byte range and count; Fail fails one
//     held request. Injected errors match both syscall.EIO (or the error
//     asked for) and ErrInjected. A failed request moves no data to the
//     medium; a failed read leaves its buffers alone, or fills them with
//     Options.Scribble.
//   - Latency, fixed or uniformly random up to a bound.
//   - Observability: InFlight, PeakInFlight, Log, Stats, Unflushed, ReadRaw,
//     Image, DurableImage, Find, and Fill/Poison/WriteRaw to prepare the
//     medium. To prove that two requests are in flight together without
//     timing, hold them: WaitHeld(ctx, 2) returns only when both were
//     submitted and neither has completed.
//
// Submit validates requests the way Linux O_DIRECT does (see Submit); a
// rejected request is never completed. Done is called exactly once per
// accepted request, never from inside Submit, never while the sim holds its
// own lock, and the request is not touched after Done returns. Close releases
// held requests, waits for every accepted request to complete and stops the
// sim goroutine; a test must Close every Device it creates (Crash creates
// one). Close must not be called from a Done callback.
//
// Because one goroutine runs every Done (unless Options.Completers asks for
// more, trading determinism for concurrent callbacks), a Done callback that
// waits for another request of the same device (which the device.Request
// contract forbids) hangs the device: the test times out instead of passing
// by luck.
//
// Invariants enforced here on behalf of the engine's callers: exactly one
// completion per accepted request (I2), no buffer access after Done (I3), and
// no durability without a flush (the ground truth for I10 and I11).
package sim
