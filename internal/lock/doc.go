// Package lock holds the three per-inode locks of aiodio's data path: the
// inode lock (an RW lock, the i_rwsem analogue), the dio drain (the count of
// in-flight direct operations, the i_dio_count / inode_dio_wait analogue) and
// the block range lock (per block range, not per file: the I6 serializer that
// replaces the whole-inode ip_unaligned_aio wait of seed 002).
//
// # Lock order
//
// DESIGN §5, as held by the data path (outer to inner; a lock may be taken
// while holding the ones above it, never the reverse):
//
//	namespace lock (directory changes; root package)
//	  Inode (the inode lock; RW)
//	    Drain (dio drain: Begin under Inode held shared or exclusive;
//	           Wait only under Inode held exclusive)
//	      RangeLock (block range locks; see "Several range locks" below)
//	        page locks (internal/pagecache)
//	          extent-map, allocator and journal locks (internal/meta;
//	          short, never held across device I/O)
//
// Direct reads and non-extending overwrites hold the Inode lock shared and
// only until their device requests are submitted. Truncate, punch-hole,
// fallocate and direct writes that must zero past end of file hold it
// exclusive and call Drain.Wait before changing allocation (I7). Direct
// writes with a partial sector (read-modify-write of that sector) hold it
// exclusive, drain, and keep it until their end-I/O releases it (Inode may
// be released by another goroutine), so no overwrite of that sector runs
// concurrently with their I/O in either order.
//
// Why new direct I/O cannot start during truncate: Drain has no lock of its
// own against Begin. The exclusion comes from the order above: every direct
// op calls Drain.Begin only while holding the Inode lock (shared), and an
// allocation-changing op holds the Inode lock exclusive from before its
// Drain.Wait until it has finished changing the allocation. So while it runs,
// no Begin can happen, and the ops that began earlier are exactly the ones
// Wait waits for. (Linux: i_rwsem held exclusive + inode_dio_wait.) Drain.End
// runs at end-I/O with no lock held, so the drain empties without anyone
// needing the Inode lock.
//
// Range locks are held from mapping until end-I/O (not only until submission)
// because the data they protect is in flight until then (I6, seed 002). They
// are released by whoever runs end-I/O, possibly a device goroutine.
//
// # Several range locks
//
// A RangeLock is fair: a new request waits behind every older, overlapping,
// conflicting request, held or still waiting. Fairness makes piecemeal
// acquisition deadlock-prone even in ascending order (A holds [0,10) and
// queues for [20,30); B holds [15,25) and queues for [26,40) behind A's
// queued [20,30): each waits for the other). Therefore:
//
//   - One owner (one I/O operation) that needs several ranges of the same
//     RangeLock takes them with one LockAll call. LockAll sorts them
//     ascending, rejects overlapping ones, and enqueues all of them in one
//     critical section, so every owner is entirely older or entirely newer
//     than any other; a request only ever waits for older ones, the wait-for
//     graph is acyclic and there is no deadlock.
//   - An owner never calls Lock or LockAll on a RangeLock while already
//     holding a range of it (TryLock is allowed: it never waits).
//   - Range locks of different inodes are never held together.
//
// The dio engine needs at most one range per operation: it locks the single
// span from the first to the last block that needs zeroing or
// read-modify-write.
//
// # NOWAIT
//
// RWF_NOWAIT callers use TryLock / TryRLock and report ErrWouldBlock (which
// matches syscall.EAGAIN) instead of waiting. Every blocking acquisition takes
// a context; a cancelled wait returns the context's error and holds nothing.
package lock
