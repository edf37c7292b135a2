/*
Package aiodio is a user-space storage engine with an asynchronous direct-I/O
data path. A volume lives on one image file or block device and holds files
and directories, served through three coherent paths: direct I/O (between
your buffer and the device, no cache), buffered I/O (through aiodio's own
page cache) and asynchronous I/O (a submission/completion Ring, io_uring
style).

# Basics

Create a volume once with Mkfs (or MkfsDevice), then Open it (or
OpenDevice). Open takes an exclusive lock: a second Open of the same image,
from this process or another, fails with an error wrapping EBUSY. Close the
Volume when done; it drains in-flight I/O, writes back cached data and
checkpoints the metadata.

	if err := aiodio.Mkfs("vol.img", aiodio.MkfsOptions{Size: 1 << 30}); err != nil { ... }
	v, err := aiodio.Open("vol.img", aiodio.Options{})
	defer v.Close()
	f, err := v.OpenFile("logs/wal.0", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
	buf := aiodio.AlignedBuffer(4096)
	n, err := f.WriteAt(buf, 0)

Names follow io/fs.ValidPath: unrooted, slash-separated ("logs/wal.0"), with
"." for the root; "..", empty elements and leading slashes are invalid
(EINVAL), an element over 255 bytes gives ENAMETOOLONG, a file in the middle
of a path ENOTDIR.

Files opened with syscall.O_DIRECT read and write straight between the
caller's buffer and the device. Use AlignedBuffer and the alignments DIOAlign
reports for the fast path; with Options.StrictAlignment false (the default)
misaligned buffers, offsets and lengths are still served correctly (bounce
buffers, read-modify-write of edge sectors). Other files go through the page
cache (Options.CacheBytes, default 256 MiB for the whole volume).

A Ring submits many ops at once and reaps their completions:

	r, _ := v.NewRing(64)
	r.Submit(aiodio.Op{Code: aiodio.OpWrite, File: f, Buf: buf, Off: 0, UserData: 1})
	cs := make([]aiodio.Completion, 1)
	n, err := r.Wait(ctx, 1, cs)

Op.Buf belongs to aiodio from a successful Submit until the op's Completion
has been delivered: do not touch it in between.

Errors match errors.Is(err, syscall.EXXX) (EINVAL, EIO, ENOSPC, EAGAIN,
ENOENT, EEXIST, ENOTEMPTY, EBADF, ...) and, for file and namespace calls,
are *fs.PathError values naming the operation and the path.

# Guarantees

These are the promises aiodio makes (DESIGN §3); each has a named test.

  - I1 No stale data: a read never returns bytes the file did not have written
    at that offset. Holes, preallocated ranges, the gap past an old end of
    file and the unwritten part of a block read as zeros. Whatever the device
    held before mkfs, or a removed file left behind, is never visible — for
    buffered, direct and async reads, during concurrent writes and truncates,
    and after a crash.
  - I2 Exactly one outcome: an op given to Submit is either rejected by
    Submit (the error is returned, no completion ever comes) or completed
    exactly once, also on device errors and on Close. A sync call returns
    once.
  - I3 Buffers come back whole: once an op has completed, or a synchronous
    call has returned, aiodio no longer reads or writes your buffer.
  - I4 Exact partial progress: a direct write that is finished through the
    page cache continues at exactly the byte where the direct part ended, and
    the result counts every byte once; a direct read across end of file
    returns exactly the bytes up to it (a 300-byte file read with 4 KiB gives
    300).
  - I5 Direct and buffered agree: dirty cached data of a range is written back
    before a direct read or write of it, and stale cached copies are dropped
    around a direct write.
  - I6 Unaligned direct writes do not corrupt each other: sub-block writes
    that must zero or read-modify-write a block are serialized per block
    range, so unrelated I/O still runs in parallel.
  - I7 Truncate, hole punching and preallocation wait for the file's in-flight
    direct I/O, and new direct I/O waits for them; a freed block is never
    written by a late request.
  - I8 The size grows behind the data: Stat and readers never see a size
    whose tail could expose stale data; once an extending write has
    completed, Stat reports at least its end.
  - I9 No deadlock and no leaked lock or goroutine; Close drains.
  - I10 Direct means on the device: a direct write that was partly served by
    the page cache completes only after that part is written back. O_DSYNC,
    O_SYNC, RWF_DSYNC and Sync also make the metadata (size, extent state)
    durable.
  - I11 Crash consistency: after a power loss at any instant the volume
    mounts, fsck is clean, everything acknowledged by Sync or O_DSYNC is
    intact and I1 still holds.
  - I12 Bad input gets a clear error, never a panic or corruption: bad
    offsets and lengths (EINVAL, EFBIG), misaligned direct I/O under
    StrictAlignment (EINVAL), foreign or corrupt images, device errors (EIO,
    reported to the op that hit it), a full volume (ENOSPC; Remove, Truncate
    and overwrites of allocated blocks still work).

# Caveats

  - Data is durable only after File.Sync, Volume.Sync, Volume.Close, or a write
    on an O_DSYNC/O_SYNC file or with RWF_DSYNC. Buffered writes are allocated
    on the device at writeback (delayed allocation) but reserve their blocks
    when written, so a full volume fails the WriteAt with ENOSPC. The
    reservation trusts a free-block count up to 50 ms old when the write fits
    it; space taken meanwhile by direct writes can still make a writeback
    fail with ENOSPC, reported by Sync or Close.
  - A writeback error (EIO) is reported once, by the next File.Sync of that
    file (like Linux's errseq), or by Close.
  - Removing (or renaming over) a file that is open frees its blocks at once:
    aiodio does not keep unlinked files alive. I/O through a File whose name
    was removed fails with ErrRemoved (ESTALE).
  - O_APPEND makes every WriteAt write at the end of file, ignoring its offset
    (Linux pwrite(2) on O_APPEND files). Direct O_APPEND writes are atomic
    only against other O_APPEND writers.
  - A direct write whose range holds a cached page that a buffered reader is
    filling at that instant cannot drop it first (I5); like Linux, aiodio then
    serves that write through the page cache and writes it back before it
    completes (I10). Under RWF_NOWAIT it fails with EAGAIN instead.
  - RWF_NOWAIT is honoured by direct ops: an op that would wait for a lock,
    the drain, a write-back of dirty cached pages, or that needs allocation
    (a write into a hole), an edge-sector read-modify-write or end-of-file
    zeroing completes with EAGAIN instead (like XFS and ext4). Buffered ring
    ops ignore it.
  - There is one user: permission bits are recorded, not enforced.

# Internals

The root package is the glue between the layers (DESIGN §1) and owns:

  - the open-inode table (inode.go): one entry per open regular file, shared
    by every File open on it, holding its pagecache.File, its dio.Inode
    (inode lock, dio drain, range locks, trusted size) and its writeback
    bound; created by the first open, written back and dropped by the last
    close;
  - the pagecache.Backing adapter (backing.go): delayed allocation at
    writeback (allocate unwritten → write → convert to written, then the
    durable size), zero-fill of holes, unwritten blocks and everything past
    end of file (I1, I11);
  - Volume and File (volume.go, file.go): namespace calls, validation (I12),
    Sync as "write back, then commit" (O2, I10), the gates that let Close
    drain every call in progress (I9);
  - Ring (ring.go): io_submit-style validation, exactly one completion per
    accepted op (I2), pooled per-op state so the direct path allocates
    nothing in the steady state.

What the root enforces itself: sizes move behind the data (I8: a buffered
extending write raises the size after its copy into the cache; meta's size
only at writeback); the end-of-file block's tail is zeroed through the
cache before the size moves over it (I1); buffered writes take the inode
lock exclusive and drain direct I/O first, and a page fill that overlaps a
direct write's invalidation re-reads (I5, seed 004); removing an open file
drains and empties it before its blocks are freed (I7).

# Lock order

Outer to inner (DESIGN §5): Volume.nsMu (namespace changes and opens) →
inode lock (dio.Inode.Lock: shared for buffered and direct reads and direct
overwrites; exclusive, with the dio drain waited for, for buffered writes,
truncate, fallocate and remove) → dio drain → block range locks → page
locks (internal/pagecache) → metadata locks (internal/meta). The space
reservation lock (reserve.go) sits just above the metadata locks (it reads
meta.Stats while held). Volume.tabMu (the open-inode table) and the Ring and
gate locks are leaves: nothing is taken while they are held, except, when
an inode is created, the metadata read lock (its size, read after any
racing last Close finished) and pagecache's Open.
*/
package aiodio
