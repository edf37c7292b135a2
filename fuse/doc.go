/*
Package fuse serves an aiodio Volume through a FUSE mount, so that any
program, in any language, reads and writes its files with ordinary system
calls. It is built on github.com/hanwen/go-fuse/v2 (the fs API).

	v, err := aiodio.Open("vol.img", aiodio.Options{})
	srv, err := fuse.Mount("/mnt/vol", v, fuse.Options{})
	// ... serve until done (srv.Wait returns on an external umount) ...
	err = srv.Unmount()   // unmounts, waits for the serving loop, closes every open handle
	err = v.Close()       // the caller's: writes back, checkpoints

# Who owns what

The caller owns the Volume: it opens it before Mount and closes it (or Syncs
it) after Unmount or Wait has returned, never while the mount is served.
The Server owns the FUSE connection and every aiodio.File it opened for a
kernel file handle: Release closes each one, and when the serving loop ends
(Unmount, or an external umount/fusermount3 -u, also lazy) Wait closes the
handles the kernel never released and returns their errors. After Wait the
Volume holds no File of this package, so Volume.Close writes everything back
and leaves the volume consistent (fsck clean).

# Invariants

  - One cache. Every open, buffered or O_DIRECT, returns FOPEN_DIRECT_IO:
    the kernel keeps no page cache for the mount, and reads and writes reach
    the daemon at the caller's offsets and lengths. Buffered opens open the
    volume file without O_DIRECT, so they use aiodio's page cache (with its
    readahead and writeback); O_DIRECT opens open it with O_DIRECT and go to
    the device. Keeping the kernel's cache as well (FOPEN_KEEP_CACHE) would
    make two caches of one file: an O_DIRECT write through one descriptor
    would leave the kernel's copy stale for buffered readers of another, and
    only aiodio's cache is kept coherent with direct I/O (DESIGN I5).
    TestNoStaleKernelCache shows it on Linux 6.18: a buffered read that
    runs while an async (io_uring) direct write is in the daemon caches the
    old bytes in the kernel, and nothing drops them when the write
    completes, so later buffered reads stay stale under FOPEN_KEEP_CACHE.
    The price is one FUSE round trip per buffered read(2) and no kernel
    readahead; aiodio's own readahead still applies. Shared writable mmap is
    refused by the kernel (ENODEV) on such files; private mappings work.
  - Concurrent I/O reaches the volume. The mount asks for CAP_ASYNC_DIO (the
    kernel sends the requests of one async direct I/O concurrently instead
    of one at a time) and returns FOPEN_PARALLEL_DIRECT_WRITES (writes that
    do not extend the file are not serialized by the kernel's inode lock);
    aiodio's own locks (inode lock, dio drain, block range locks) order them.
  - Alignment. FUSE enforces none, and statx reports none on a FUSE file: an
    unaligned O_DIRECT read or write reaches the volume as asked. With
    aiodio.Options.StrictAlignment false (the default) it is served
    correctly (bounce buffer, read-modify-write of the edge sectors); with it
    true it fails with EINVAL, as on a kernel filesystem. Write payloads
    arrive 4 KiB-aligned from go-fuse; direct reads land in a page-aligned
    buffer, so aligned I/O takes aiodio's zero-copy path to the device.
  - Opens never see a stale size. The kernel sends RELEASE asynchronously,
    so "write, close, open, read" from one process reaches the volume as a
    close and an open of the same file at once; the volume's OpenFile waits
    for that last Close to write the cache back and reads the size after it
    (this adapter found the volume reading it before the wait: fixed there,
    TestReopenWhileLastCloseWritesBack).
  - Offsets are the kernel's. O_APPEND is not passed to the volume: the
    kernel computes the end-of-file offset of an append under its inode
    lock and sends it, which keeps appends through the mount atomic.
  - Stable identity. Inode numbers are aiodio's (FileStat.Ino), so st_ino and
    d_ino are stable across lookups, renames and remounts. The volume never
    reuses an inode number, so the generation is always 0 and a number never
    aliases a removed file the kernel still holds.
  - Paths are consistent. The volume is addressed by path; each node keeps
    its parent and name. namespaceMu is held exclusive by the calls that
    change existing paths (unlink, rmdir, rename) from the volume call to the
    update of the nodes, and shared by every call that resolves a path, so
    no call ever uses a path that a concurrent rename made stale.
  - Every error is an errno. Volume errors keep theirs (ENOENT, EEXIST,
    ENOTEMPTY, EINVAL, ENOSPC, EIO, ESTALE, ...); an error without one is
    EIO and is logged. A panic in a handler is recovered by go-fuse and
    answered EIO (and logged), never taken down the daemon.

# Semantics that differ from a kernel filesystem

  - Removing a file that is open frees its blocks at once (aiodio does not
    keep unlinked files alive, like libfuse's hard_remove): I/O through a
    descriptor still open on it fails with ESTALE.
  - setattr: a size truncates (zeros when growing). The volume keeps no
    settable mode, owner or timestamps: a mode or owner equal to the current
    one succeeds, any other change fails with EOPNOTSUPP; times set to "now"
    (touch, and what the kernel sends with a truncate) are accepted and
    leave the volume's own mtime, which it sets on every data change;
    explicit times (utimensat with a value, cp -p) fail with EOPNOTSUPP.
  - Permission bits are enforced by the kernel (default_permissions)
    against the mode aiodio records; the owner shown is the serving
    process's (Options.UID/GID to change).
  - close(2) (FUSE flush) does not write back: like a local filesystem,
    data is durable after fsync, fdatasync or an O_DSYNC/O_SYNC write (a
    failed sync fails that write); a background writeback error is
    reported by the next fsync. syncfs(2) and sync(1) do not reach the
    daemon (Linux sends FUSE_SYNCFS only to virtiofs): they make nothing
    durable here. fsync of a
    directory commits the volume's metadata.
  - Changing O_DIRECT with fcntl(F_SETFL) after open is not seen by the
    daemon (FUSE does not forward it): the open's mode stays.
  - statfs reports the volume's data area and free blocks (Volume.StatFS;
    blocks freed but not yet durable count as free); data still in aiodio's
    page cache owns no blocks yet. The inode counts are an estimate from the
    volume's metadata budget.
  - Options.ReadOnly mounts with "ro" and refuses every change with EROFS;
    the Volume itself is still open read-write (Close checkpoints it).
  - RWF_NOWAIT (preadv2/pwritev2, io_uring) fails with EOPNOTSUPP: Linux
    refuses it on FUSE files before the daemon sees the request.
  - Do not use io_uring on the mount from the process that serves it. In
    testing, with io_uring ops on the mount in flight from the serving
    process, the Go runtime's stop-the-world (GC mark termination) never
    completed, so the daemon could not answer them: a deadlock (our reading:
    the kernel ran a FUSE request on a submitter's thread outside any
    system call, where the runtime cannot stop it). Serve from its own
    process (aiodio mount), or keep io_uring users out of the serving
    process; ordinary system calls from it worked in every run.

# Locks

namespaceMu (RW; see above) → the volume's locks (aiodio's order). ptrMu
protects every node's parent, name and removed fields; it is a leaf. handlesMu protects the set of open handles; it is a leaf. go-fuse's
own locks are never held by this package when it calls the volume.
*/
package fuse
