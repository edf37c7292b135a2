// Package meta is aiodio's metadata engine: inodes, per-file extent maps
// (hole / unwritten / written), the hierarchical namespace, the block
// allocator, and their durability through a journal and checkpoints, plus
// recovery (Mount) and consistency checking (Fsck, Check). It sits on
// device.Device and internal/format and never reaches up: the data path
// (internal/dio, internal/pagecache) and the public Volume call it.
//
// # Model
//
// All metadata lives in memory while mounted, guarded by one RWMutex (FS.mu,
// never held across device I/O):
//   - inodes: map[Ino]*inode with mode, size, nlink, mtime, ctime; inode
//     numbers are never reused (nextIno only grows);
//   - files: an extent map of file block → device block runs, each
//     Unwritten or Written; unmapped blocks are holes. Neighbouring runs that
//     continue each other are merged. The runs are sorted and cut into
//     leaves of at most 256 (extTree): lookups are binary searches, an
//     update rewrites only the leaves around its range, so a file with
//     hundreds of thousands of extents converts a block in microseconds;
//   - directories: map[name]Ino, plus the parent inode (for ".." semantics:
//     rename refuses to move a directory into its own subtree, EINVAL);
//   - free space: a treap of free device spans ordered by start (by offset)
//     whose nodes carry their subtree's largest span (by size); allocation
//     prefers the goal — the block continuing the file's previous extent, or
//     a rotor for a file's first block — then the first span at or after the
//     goal that fits the whole request, then the first anywhere, then the
//     largest (the request is then split); O(log n) per operation;
//   - pending free: blocks freed by truncate/punch/unlink/rename, tagged with
//     the LSN of the freeing record; they join free space only once that
//     record is durable (O3).
//
// # Durability (DESIGN §4)
//
// Every update applies to memory at once and queues one redo record (see
// format.Record); the records that allocate carry the device blocks chosen,
// so replay never runs the allocator, and replay applies records through the
// very function live updates use (FS.apply). Commit is a group commit: the
// committer takes the queued records, flushes the device (O2: data whose
// write completed before ConvertWritten was called becomes durable before
// the record exposing it), writes the records as one journal chunk, flushes,
// and wakes every caller whose records were included. When the chunk does
// not fit in the journal the round writes a checkpoint instead: the whole
// metadata goes to the inactive checkpoint slot, flush, superblock copy 0,
// flush, copy 1, flush; the new epoch invalidates the old journal. Close
// writes a checkpoint so the next mount replays nothing.
//
// After a crash (I11) an extent is free (its allocation record was not
// durable), unwritten (reads zero), or written — and then its data was
// flushed before the record. A freed block is never handed out before the
// freeing record is durable, so data written into a reallocated block can
// never appear in the file that freed it (I1). mkfs does not zero the data
// area; stale data there is unreachable because only blocks converted to
// written after their data write are ever read.
//
// Free space is not journaled: mount derives it as the data area minus the
// blocks owned by files. Mount refuses a volume where a block is owned twice
// or lies outside the data area.
//
// # Metadata budget
//
// A checkpoint slot holds extentCost bytes per volume block (an upper bound
// on the encoding of the extents, as there is at most one extent per owned
// block) plus an inode/name budget (max(256 KiB, 8 bytes per block)).
// Creating an inode that would not fit returns ENOSPC, so a checkpoint
// always fits. The journal is total/256 blocks (64..8192); the updates
// queued between commits are bounded (an update commits on its own when
// the queue passes a quarter of the journal).
//
// # API
//
//	Mkfs(dev, MkfsOptions) error; Mount(dev, MountOptions) (*FS, error); Fsck(dev) ([]string, error)
//	(*FS) Close, Commit, Check, Stats, BlockSize, DataStart, DataBlocks, Device, UUID
//	namespace: Lookup, Create, Mkdir, Unlink, Rmdir, Remove, Rename, ReadDir, Attr, Stat, SetAttr
//	extents:   Map, Extents, AllocUnwritten, ConvertWritten, SetSize, Truncate, Punch, ZeroRange
//
// Device block b is at byte offset b*BlockSize(); Map never returns a block
// outside the data area, and a Hole has DevBlock -1.
//
// # Decisions
//
//   - Names follow io/fs.ValidPath ("." is the root); an element longer than
//     255 bytes gives ENAMETOOLONG, NUL or an invalid path EINVAL, a file in
//     the middle of a path ENOTDIR. Errors are *fs.PathError (rename:
//     *os.LinkError) wrapping the syscall.Errno; inode-based calls wrap it
//     with the operation and inode number.
//   - Unlink frees the inode and its blocks at once; keeping an unlinked open
//     file alive is the caller's business (not supported yet).
//   - Map reports extents past EOF; unwritten blocks past EOF are legal
//     (fallocate KEEP_SIZE), written blocks wholly past EOF are an fsck
//     finding. Truncate frees from ceil(size/BlockSize) on and leaves the
//     partial last block alone: the caller zeroes its tail.
//   - A failed journal or checkpoint write makes the volume refuse updates
//     (sticky error, EIO); the device still holds the last committed state.
//
// # Lock order
//
//	caller locks (namespace, inode, dio, range: DESIGN §5)
//	  FS.mu (metadata, allocator, journal queue, commit-round state)
//
// The committer drops FS.mu around device I/O and is unique (FS.running);
// sb, jpos and jseq are written only by it, under FS.mu.
package meta
