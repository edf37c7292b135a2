// Package dio is aiodio's direct-I/O engine: it moves data between the
// caller's buffer and the device with no page cache in between,
// asynchronously, following DESIGN §6 step by step. It sits on
// device.Device, on the extent maps of internal/meta (through Extents) and
// on the page cache of the inode (through Cache, for coherence and for the
// buffered fallback). It owns the per-inode direct-path state (Inode: the
// inode lock, the dio drain, the block range locks and the trusted size)
// and the per-volume Engine (end-I/O workers, pooled op state and bounce
// buffers). The root package keeps one Inode per open inode and one Engine
// per volume, and maps Op completions to File and Ring results.
//
// # The write, as built here
//
//  1. Validate; with StrictAlignment, EINVAL for an offset or length that is
//     not a multiple of the logical sector size or a buffer not aligned to
//     the device's MemAlign (Linux O_DIRECT). RWF_NOWAIT turns every wait
//     before submission into EAGAIN (see RWF_NOWAIT below).
//  2. Inode lock shared, or exclusive (then drain) when the write starts
//     past a size that ends inside a block (the tail of that block is
//     zeroed first; meta.Truncate leaves it to us; I1) or has a partial
//     sector (see Known limits).
//  3. Write back and invalidate the cached pages of the range (I5). A
//     failure rejects the op: nothing was submitted (seed 004). Skipped
//     when the Cache implements CachePresence and has no page there.
//  4. Drain.Begin; map; under BufferedFallback end the direct part at the
//     first hole inside the size; take one block range lock over every
//     block that is not written (allocation, zero padding of partial
//     blocks, conversion) and, without StrictAlignment, over edge blocks
//     whose partial sectors need read-modify-write (I6, seed 002); map
//     again under it; allocate holes unwritten.
//  5. Build requests (one buffer, coalesced across contiguous extents,
//     split at MaxIO; misaligned memory and padding go through a pooled
//     bounce buffer), submit. The op holds one reference for the submitter
//     and one per request (seed 003's bio_count, without its race).
//  6. Release the inode lock (partial-sector writes: at end-I/O, see
//     Known limits); drop the submitter's reference. The last
//     reference runs end-I/O: convert unwritten→written and raise the size
//     (ConvertWritten, then Inode.size: I8), Commit for DSYNC (I10),
//     invalidate again (its error ignored, I5), release the range lock,
//     Drain.End, deliver the completion once (I2). End-I/O that may block
//     (conversion may group-commit, DSYNC commits) runs on the Engine's
//     end-I/O workers, never on a device callback; the rest runs inline.
//  7. Fallback: the submitter waits for every submitted request (I3, seed
//     000), converts and invalidates the direct part (so no page cached
//     while it was in flight carries its old bytes into the remainder's
//     write-back when blocks are smaller than pages), writes the remainder
//     from the exact byte the direct part ended through the cache, writes
//     it back and waits (I10), and completes once with the total (I4, seed
//     003). Such a write completes before Write returns (the 2003 design
//     made extending AIO synchronous the same way).
//
// Reads hold the inode lock shared until submission, write back dirty
// cached pages first (I5), read the size under the lock and clip to it
// (I4, I8), fill holes and unwritten blocks with zeros without I/O (I1),
// and zero the bytes past EOF of the last sector read.
//
// # Errors and completion (I2)
//
// Read and Write either return an error — the op is rejected, nothing was
// submitted, Done is never called — or return nil, and Done is called
// exactly once. A device error on any request of an op completes the op
// once with that error (N = 0), after every request finished, with its
// range lock released and the drain ended (I9); blocks of a failed write
// stay unwritten and the size is not raised.
//
// # RWF_NOWAIT
//
// A NoWait op never waits before submission; where it would, Read/Write
// reject it with an error matching syscall.EAGAIN (lock.ErrWouldBlock) and
// nothing was submitted, allocated or changed (Linux: IOCB_NOWAIT →
// -EAGAIN). It would wait for: the inode lock, the dio drain, a block
// range lock (Try variants); dirty or under-writeback cached pages of the
// range (write-back; probed with CacheProber when the Cache has it, else
// with Invalidate, which never waits and fails with EBUSY on such pages);
// block allocation (AllocUnwritten may commit to reuse freed blocks, as
// IOMAP_NOWAIT refuses to allocate); the synchronous edge-sector reads of
// a read-modify-write; the zeroing of the EOF block's tail; the buffered
// fallback. Writes into written or unwritten (preallocated) blocks, and
// reads, go ahead. End-I/O work (conversion, DSYNC commit) runs after
// submission on the end-I/O workers and is not a wait of the submitter.
//
// # A failure before submission leaves nothing behind
//
// The edge-sector reads of a read-modify-write run before any allocation,
// so their failure rejects the op with nothing allocated
// (TestRMWReadFailureAllocatesNothing); ENOSPC from AllocUnwritten leaves
// nothing changed. A data request that fails after submission leaves the
// blocks the op allocated unwritten: they read as zeros (I1), fsck accepts
// them, truncate, punch or unlink free them (XFS likewise keeps the
// unwritten extents of a failed direct write); the size is not raised.
//
// # Short device transfers (I4)
//
// The device layer already guarantees there are none: device.Request says
// "On success N equals the request's length", and every backend resubmits short
// transfers for the remainder itself (device/doc.go; device/uring.go and
// device/threads.go loop until the length is moved or an error occurs).
// The engine does not rely on it alone: a request that completes without
// error but short is resubmitted for the rest from the exact byte it
// stopped at (requestDone, syncIO), so nothing is moved twice and the op's
// count stays exact; one that moved nothing, or a partial sector, fails the
// op with EIO (TestShortTransferResubmitsRemainder).
//
// # The whole-file baseline (Options.SerializeUnaligned)
//
// For the I6 benchmark only: the 2011 ocfs2 fix of seed 002 — a direct
// write whose offset or end is not block-aligned first waits until no other
// such write is in flight on the inode (a one-token slot per Inode, taken
// before the inode lock, so outermost in the lock order, and released at
// completion; NoWait → EAGAIN). Range locks are still taken.
// BenchmarkUnaligned8Writers compares it with range locks alone.
//
// # Known limits
//
//   - A write with a partial sector (StrictAlignment false; Linux refuses
//     it) holds the inode lock exclusive from before its drain until its
//     end-I/O (released by whoever runs end-I/O), so its read-modify-write
//     of the edge sectors races with no overwrite of the same sector,
//     neither one in flight before it nor one submitted after it
//     (overwrites of written blocks take no range lock;
//     TestSubSectorRMWExcludesOverwrites, TestSubSectorRMWHoldsUntilEndIO).
//     Such writes are serialized per file, and other direct I/O of the file
//     waits for them, like XFS's unaligned path (IOLOCK_EXCL +
//     IOMAP_DIO_FORCE_WAIT); sector-aligned sub-block writes are not (they
//     use range locks only).
package dio
