package aiodio

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/alignbuf"
	"github.com/aiodio/aiodio/internal/dio"
	"github.com/aiodio/aiodio/internal/meta"
	"github.com/aiodio/aiodio/internal/pagecache"
)

// inode is the in-memory state of one open regular file, shared by every
// File open on it (the open-inode table entry, Linux's struct inode): its
// page cache, its direct-path state (inode lock, dio drain, range locks and
// the trusted size, in d) and its writeback bound. It is created by the first
// open and released by the last close.
//
// Sizes. meta holds the durable size, which buffered writes raise only at
// writeback (delayed allocation) and direct writes at end-I/O. Two more live
// here:
//   - d.Size() is the logical size readers and Stat see (i_size). It is
//     raised behind the data (I8): by buffered writes after the copy into
//     the cache (inode lock exclusive) and by direct end-I/O after the
//     conversion; it is lowered only with the lock exclusive and the drain
//     empty (truncate).
//   - wsize is an upper bound of the bytes that may be cached or in flight
//     through the cache: a buffered extending write raises it before copying
//     into the cache. Writeback clips allocation and size updates to
//     max(wsize, d.Size()), and reads zero-fill past max(wsize, meta size).
//
// Bytes past the logical size inside the end-of-file block may hold old
// data on the device (a truncated tail whose zeroing was lost in a crash, a
// block larger than a page): they are never read (ReadPages and the direct
// read zero-fill past the end) and are zeroed before the size moves over
// them (zeroTail here, dio's zeroEOFTail for direct writes), so they can
// never reappear (I1).
type inode struct {
	v     *Volume
	ino   meta.Ino
	cache *pagecache.File
	d     *dio.Inode

	// refs, closing and released are protected by v.tabMu. refs counts the
	// Files open on the inode plus transient references (Sync, Remove).
	// closing is set when the last reference went away and the cache is
	// being written back; released is closed once that is done and the
	// entry has left the table, so a new open waits for it rather than
	// creating a second cache for the same inode.
	refs     int
	closing  bool
	released chan struct{}

	wsize atomic.Int64

	// invalSeq counts invalidations by the direct engine (see dioCache).
	invalSeq atomic.Uint64

	// removed is set (under the inode lock exclusive, drain empty) when the
	// name was removed: the blocks are freed, later I/O fails with
	// ErrRemoved.
	removed atomic.Bool

	// wbMu serializes writeback of this inode when the block size exceeds
	// the page size, because WritePages then pads partial new blocks with
	// zeros and two runs over one block must not race.
	wbMu sync.Mutex

	// appendMu serializes O_APPEND direct writes (offset = size, then write).
	appendMu sync.Mutex

	mapBuf sync.Pool // of *[]meta.Mapping, for ReadPages/WritePages
}

// dioCache is the page cache as the direct engine sees it: the buffered
// fallback's writes raise wsize first, like every cached write.
type dioCache struct{ in *inode }

// WriteAndWait writes back the dirty pages of the range — of the whole
// blocks it touches, when blocks are larger than pages: writeback pads a
// partially dirty new block with zeros (WritePages), which must not run
// while a direct write fills another part of that block, so the engine's
// step-3 writeback leaves no dirty page in any block it then writes (and
// buffered writes drain direct I/O, so none appears while it is in flight).
func (c dioCache) WriteAndWait(off, n int64) error {
	if bs := c.in.v.bs; bs > pagecache.PageSize {
		end := (off + n + bs - 1) / bs * bs
		off = off / bs * bs
		n = end - off
	}
	return c.in.cache.WriteAndWait(off, n)
}
func (c dioCache) Invalidate(off, n int64) error {
	// Tell ReadPages calls in flight that data under them may have changed
	// (seed 004): a fill that started before a direct write's data landed
	// and could not be dropped because it was still busy re-reads instead
	// of caching the old bytes.
	c.in.invalSeq.Add(1)
	return c.in.cache.Invalidate(off, n)
}
func (c dioCache) Sync() error { return c.in.cache.Sync() }
func (c dioCache) WriteAt(p []byte, off int64) (int, error) {
	c.in.raiseWsize(off + int64(len(p)))
	return c.in.cache.WriteAt(p, off)
}

// writebackProber is pagecache.File's NeedsWriteback (Linux's
// filemap_range_needs_writeback), when the cache has it.
type writebackProber interface{ NeedsWriteback(off, n int64) bool }

// dioCacheProber is a dioCache that also implements dio.CacheProber, so
// RWF_NOWAIT direct reads test for dirty pages without waiting; used when
// the page cache has NeedsWriteback.
type dioCacheProber struct{ dioCache }

func (c dioCacheProber) NeedsWriteback(off, n int64) bool {
	return any(c.in.cache).(writebackProber).NeedsWriteback(off, n)
}

// newDioCache returns the engine's view of in's cache.
func newDioCache(in *inode) dio.Cache {
	if _, ok := any((*pagecache.File)(nil)).(writebackProber); ok {
		return dioCacheProber{dioCache{in}}
	}
	return dioCache{in}
}

// bg is the context of waits that only end when the awaited thing happens.
var bg = context.Background()

// getInodeLocked returns the open inode ino with one more reference,
// creating it if needed, with the size meta has once no earlier instance of
// it is still closing: the last Close of a file raises the durable size
// only after its cache is written back, so a size read before that wait
// would be stale (a reopen racing the close saw an empty file).
//
// Preconditions: v.nsMu held (so ino cannot be removed meanwhile).
func (v *Volume) getInodeLocked(ino meta.Ino) (*inode, error) {
	for {
		v.tabMu.Lock()
		in := v.inodes[ino]
		if in != nil && in.closing {
			ch := in.released
			v.tabMu.Unlock()
			<-ch
			continue
		}
		if in == nil {
			a, err := v.meta.Attr(ino)
			if err != nil {
				v.tabMu.Unlock()
				return nil, err
			}
			size := a.Size
			in = &inode{v: v, ino: ino, released: make(chan struct{})}
			in.d = dio.NewInode(ino, size, newDioCache(in))
			in.wsize.Store(size)
			in.cache = v.cache.Open(in)
			v.inodes[ino] = in
		}
		in.refs++
		v.tabMu.Unlock()
		return in, nil
	}
}

// putInode drops a reference; the last one writes the cache back and
// removes the inode from the table, returning the writeback errors.
func (v *Volume) putInode(in *inode) error {
	v.tabMu.Lock()
	in.refs--
	last := in.refs == 0 && !in.closing
	if last {
		in.closing = true
	}
	v.tabMu.Unlock()
	if !last {
		return nil
	}
	return in.release()
}

// release writes back and closes the inode's cache, raises the durable size
// to the logical one, and removes the inode from the table.
//
// Preconditions: in.closing is set or the volume is closing, and no direct
// op is in flight (the Files' gates are closed).
func (in *inode) release() error {
	err := in.cache.Close()
	in.unreserveAll()
	if !in.removed.Load() {
		if e := in.reconcile(); err == nil {
			err = e
		}
	}
	in.v.tabMu.Lock()
	delete(in.v.inodes, in.ino)
	close(in.released)
	in.v.tabMu.Unlock()
	return err
}

// reconcile raises the durable size to the logical size after writeback
// (a grow by truncate or fallocate, or a size raised after its data was
// written back).
//
// Preconditions: the inode lock is not held by the caller.
func (in *inode) reconcile() error {
	if err := in.d.Lock.RLock(bg); err != nil {
		return err
	}
	defer in.d.Lock.RUnlock()
	return in.reconcileLocked()
}

// reconcileLocked is reconcile with the inode lock held (either mode).
func (in *inode) reconcileLocked() error {
	if in.removed.Load() {
		return nil
	}
	a, err := in.v.meta.Attr(in.ino)
	if err != nil {
		return err
	}
	if s := in.d.Size(); s > a.Size {
		return in.v.meta.SetSize(in.ino, s)
	}
	return nil
}

// raiseWsize raises wsize to at least end.
func (in *inode) raiseWsize(end int64) {
	for {
		w := in.wsize.Load()
		if w >= end || in.wsize.CompareAndSwap(w, end) {
			return
		}
	}
}

// dirtyBound is the end of the bytes the cache may hold for the file.
func (in *inode) dirtyBound() int64 { return max(in.wsize.Load(), in.d.Size()) }

// readAt is the buffered read: inode lock shared, clip to the size.
func (in *inode) readAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := in.d.Lock.RLock(bg); err != nil {
		return 0, err
	}
	defer in.d.Lock.RUnlock()
	if in.removed.Load() {
		return 0, ErrRemoved
	}
	size := in.d.Size()
	if off >= size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > size-off {
		n = int(size - off)
	}
	if _, err := in.cache.ReadAt(p[:n], off); err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// writeAt is the buffered write, under the inode lock exclusive (as Linux
// and the direct engine expect). With appendMode the offset is the end of
// file; it returns the offset used.
func (in *inode) writeAt(p []byte, off int64, appendMode bool) (int, int64, error) {
	if len(p) == 0 && !appendMode {
		return 0, off, nil
	}
	if err := in.d.Lock.Lock(bg); err != nil {
		return 0, off, err
	}
	defer in.d.Lock.Unlock()
	if in.removed.Load() {
		return 0, off, ErrRemoved
	}
	// Wait for in-flight direct I/O before touching the cache: no new
	// direct op can begin while the inode lock is held exclusive, so the
	// page fills, tail zeroing and dirtying below never race a direct write
	// into the same pages (a page filled from the device before that write
	// landed would otherwise be written back over it), and the size read
	// below includes every completed extending write (seeds 000, 004).
	if err := in.d.DIO.Wait(bg); err != nil {
		return 0, off, err
	}
	size := in.d.Size()
	if appendMode {
		off = size
		if err := checkRange(off, len(p)); err != nil {
			return 0, off, err
		}
	}
	end := off + int64(len(p))
	// Reserve the blocks the write brings into use, and the old end-of-file
	// block that zeroTail below dirties when the write leaves a gap.
	tail := span{}
	if bs := in.v.bs; off > size && size%bs != 0 {
		tail = span{size, min(off, (size/bs+1)*bs)}
	}
	if err := in.reserve(span{off, end}, tail); err != nil {
		return 0, off, err
	}
	if end <= size {
		n, err := in.cache.WriteAt(p, off)
		return n, off, err
	}
	in.raiseWsize(end)
	if off > size && size%in.v.bs != 0 {
		// The write brings the old end-of-file block's tail inside the
		// file: zero it (direct I/O was drained above).
		if err := in.zeroTail(size, off); err != nil {
			return 0, off, err
		}
	}
	n, err := in.cache.WriteAt(p, off)
	in.d.GrowSize(off + int64(n)) // behind the data (I8)
	return n, off, err
}

// zeroTail zeroes the bytes from the old size to the end of its block (or to
// limit), before the size moves over them, and writes the zeroed pages back
// and waits.
//
// The write-back makes the zeroing part of the data that any later record
// raising the size over it covers (O2): the device may still hold bytes a
// truncate cut off (a truncate leaves its partial block's tail alone, and a
// power cut can lose a zeroing that only reached the cache). Without it, a
// size raised by the writeback of pages further on could be committed while
// the old end-of-file block still held those bytes on the device, and a
// crash would expose them (I1, I11; BUG-5 of the stress suite).
//
// Preconditions: inode lock exclusive, drain empty; wsize >= limit.
func (in *inode) zeroTail(size, limit int64) error {
	bs := in.v.bs
	if size%bs == 0 {
		return nil
	}
	end := min(limit, (size/bs+1)*bs)
	if err := in.zeroCached(size, end); err != nil {
		return err
	}
	start := size - size%pagecache.PageSize
	return in.cache.WriteAndWait(start, end-start)
}

// zeroCached writes zeros through the cache over [off, end).
func (in *inode) zeroCached(off, end int64) error {
	z := in.v.zeros
	for off < end {
		n := int(min(end-off, int64(len(z))))
		if _, err := in.cache.WriteAt(z[:n], off); err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}

// growLocked raises the size to newSize without writing data.
//
// Preconditions: inode lock exclusive, drain empty; newSize > d.Size().
func (in *inode) growLocked(newSize int64) error {
	size := in.d.Size()
	in.raiseWsize(newSize)
	if err := in.zeroTail(size, newSize); err != nil {
		return err
	}
	if err := in.v.meta.SetSize(in.ino, newSize); err != nil {
		return err
	}
	in.d.GrowSize(newSize)
	return nil
}

// drain takes the inode lock exclusive and waits for in-flight direct I/O
// (I7); the caller unlocks in.d.Lock.
func (in *inode) drain() error {
	if err := in.d.Drain(bg, false); err != nil {
		return err
	}
	if in.removed.Load() {
		in.d.Lock.Unlock()
		return ErrRemoved
	}
	return nil
}

// truncate sets the size (ftruncate).
func (in *inode) truncate(newSize int64) error {
	if err := in.drain(); err != nil {
		return err
	}
	defer in.d.Lock.Unlock()
	size := in.d.Size()
	if newSize > size {
		return in.growLocked(newSize)
	}
	// Lower the sizes first, so a writeback running meanwhile (of the
	// zeroed partial page) cannot raise the durable size past newSize.
	in.d.SetSizeLocked(newSize)
	in.wsize.Store(newSize)
	if err := in.cache.Truncate(newSize); err != nil {
		return err
	}
	in.unreserve((newSize+in.v.bs-1)/in.v.bs, 1<<62, false)
	if err := in.v.meta.Truncate(in.ino, newSize); err != nil {
		return err
	}
	return in.zeroCutBlock(newSize)
}

// zeroCutBlock makes the device copy of the new end-of-file block read zero
// past newSize before truncate returns (Linux's block_truncate_page with
// ordered data): the zeroed partial page is written back and waited on, and
// with blocks larger than pages the block's later pages are zeroed on the
// device directly. Any record that later raises the size over this block is
// committed after a flush that follows these writes (O2), so no crash can
// expose the bytes the truncate cut off — whichever path extends the file
// next (I1, I11; BUG-5 and BUG-7 of the stress suite).
//
// Preconditions: inode lock exclusive, drain empty; sizes already lowered.
func (in *inode) zeroCutBlock(newSize int64) error {
	bs := in.v.bs
	if newSize%bs == 0 {
		return nil
	}
	var one [1]meta.Mapping
	maps, err := in.v.meta.Map(one[:0], in.ino, newSize/bs, 1)
	if err != nil {
		return err
	}
	if len(maps) == 0 || maps[0].State != meta.Written {
		return nil // a hole or unwritten block reads zero, and is zero-padded when written
	}
	m := maps[0]
	ps := int64(pagecache.PageSize)
	pageStart := newSize - newSize%ps
	// The cache's own truncate cannot be relied on to dirty the partial
	// page (the page may not be cached, and the size is already lowered):
	// zero its tail through the cache, which reads the head in if needed.
	if err := in.zeroCached(newSize, pageStart+ps); err != nil {
		return err
	}
	if err := in.cache.WriteAndWait(pageStart, ps); err != nil {
		return err
	}
	blockEnd := (newSize/bs + 1) * bs
	from := pageStart + ps
	if from >= blockEnd {
		return nil
	}
	zeros := alignbuf.Alloc(int(blockEnd - from))
	return in.v.devIO(device.Write, []devSeg{{off: m.DevBlock*bs + (from - m.FileBlock*bs), buf: zeros}})
}

// allocate is fallocate modes 0 and KEEP_SIZE.
func (in *inode) allocate(off, n int64, keepSize bool) error {
	if err := in.drain(); err != nil {
		return err
	}
	defer in.d.Lock.Unlock()
	bs := in.v.bs
	end := off + n
	fb, lb := off/bs, (end+bs-1)/bs
	if err := in.v.meta.AllocUnwritten(in.ino, fb, lb-fb); err != nil {
		return err
	}
	if !keepSize && end > in.d.Size() {
		return in.growLocked(end)
	}
	return nil
}

// punch is fallocate PUNCH_HOLE (zero false) and ZERO_RANGE (zero true):
// drop the cached pages of the range and zero its partial edge pages, then
// unmap (punch) or unwrite (zero) its whole blocks. When blocks are larger
// than pages, the whole pages of the partial edge blocks are zeroed through
// the cache too (the device still holds their data).
func (in *inode) punch(off, n int64, zero, keepSize bool) error {
	if err := in.drain(); err != nil {
		return err
	}
	defer in.d.Lock.Unlock()
	bs := in.v.bs
	end := off + n
	if err := in.cache.Punch(off, n); err != nil {
		return err
	}
	wb0, wb1 := (off+bs-1)/bs, end/bs
	if wb1 > wb0 {
		in.unreserve(wb0, wb1, false)
	}
	if wb1 > wb0 {
		var err error
		if zero {
			err = in.v.meta.ZeroRange(in.ino, wb0, wb1-wb0)
		} else {
			err = in.v.meta.Punch(in.ino, wb0, wb1-wb0)
		}
		if err != nil {
			return err
		}
	}
	if bs > pagecache.PageSize {
		size := in.d.Size()
		edges := [2][2]int64{{off, min(end, wb0*bs)}, {max(off, wb1*bs), end}}
		if wb1 <= wb0 {
			// No whole block: the range is one partial block, or two.
			edges = [2][2]int64{{off, end}}
		}
		for _, e := range edges {
			lo, hi := e[0], min(e[1], size)
			if hi > lo {
				if err := in.zeroCached(lo, hi); err != nil {
					return err
				}
			}
		}
	}
	if zero && !keepSize && end > in.d.Size() {
		return in.growLocked(end)
	}
	return nil
}

// writeback writes the cached data back and raises the durable size
// (without committing): the data half of Sync.
func (in *inode) writeback() error {
	err := in.cache.Sync()
	if e := in.reconcile(); err == nil {
		err = e
	}
	return err
}

// sync is File.Sync: writeback, then commit (data before metadata: O2).
func (in *inode) sync() error {
	if in.removed.Load() {
		return ErrRemoved
	}
	err := in.writeback()
	if e := in.v.meta.Commit(); err == nil {
		err = e
	}
	return err
}

// dataSync makes the file durable for O_DSYNC/RWF_DSYNC buffered writes.
// Unlike sync, it does not consume the file's errseq writeback report.
func (in *inode) dataSync() error {
	if err := in.cache.WriteAndWait(0, max(in.dirtyBound(), 1)); err != nil {
		return err
	}
	if err := in.reconcile(); err != nil {
		return err
	}
	return in.v.meta.Commit()
}

// readDirect is the synchronous direct read.
func (in *inode) readDirect(p []byte, off int64, flags uint32) (int, error) {
	if in.removed.Load() {
		return 0, ErrRemoved
	}
	return in.v.dio.ReadAt(in.d, p, off, flags)
}

// writeDirect is the synchronous direct write. O_APPEND direct writes are
// serialized among themselves (offset = size, then write).
func (in *inode) writeDirect(p []byte, off int64, appendMode bool, flags uint32) (int, error) {
	if in.removed.Load() {
		return 0, ErrRemoved
	}
	if appendMode {
		in.appendMu.Lock()
		defer in.appendMu.Unlock()
		off = in.d.Size()
		if err := checkRange(off, len(p)); err != nil {
			return 0, err
		}
	}
	n, err := in.v.dio.WriteAt(in.d, p, off, flags)
	if err != nil && n == 0 && isInvalidateBusy(err) {
		if flags&dio.NoWait != 0 {
			return 0, fmt.Errorf("%w (%w)", syscall.EAGAIN, err)
		}
		return in.writeThrough(p, off, flags&dio.DSync != 0)
	}
	return n, err
}

// isInvalidateBusy reports whether the direct engine rejected a write
// because a cached page of its range could not be dropped (a buffered
// reader was filling it): the op was not submitted (I5).
func isInvalidateBusy(err error) bool { return errors.Is(err, syscall.EBUSY) }

// writeThrough serves a direct write the engine refused with EBUSY, the way
// Linux falls back to buffered I/O when invalidation fails (ENOTBLK): the
// data goes through the page cache and is written back and waited for
// before the write returns (I10), with metadata committed for dsync.
func (in *inode) writeThrough(p []byte, off int64, dsync bool) (int, error) {
	n, off, err := in.writeAt(p, off, false)
	if err == nil && n > 0 {
		err = in.cache.WriteAndWait(off, int64(n))
	}
	if err == nil && dsync {
		err = in.dataSync()
	}
	return n, err
}

// detached is an open inode whose name is being removed: its I/O is drained,
// its cache emptied and its lock held exclusive until finish.
type detached struct{ in *inode }

// detachLocked prepares the removal of name: if it names an open regular
// file, it takes the inode lock exclusive, waits for direct I/O, marks the
// inode removed and drops its cached pages (waiting for writeback in flight),
// so no late write can land on blocks the removal frees. It returns nil when
// name is not open (or does not resolve: the removal reports that).
//
// Preconditions: v.nsMu held.
func (v *Volume) detachLocked(name string) (*detached, error) {
	a, ino, err := v.lookupAttr(name)
	if err != nil || !a.Mode.IsRegular() {
		return nil, nil
	}
	v.tabMu.Lock()
	_, open := v.inodes[ino]
	v.tabMu.Unlock()
	if !open {
		return nil, nil
	}
	in, err := v.getInodeLocked(ino)
	if err != nil {
		return nil, err
	}
	if err := in.d.Drain(bg, false); err != nil {
		v.putInode(in)
		return nil, err
	}
	in.removed.Store(true)
	if err := in.cache.Truncate(0); err != nil {
		in.removed.Store(false)
		in.d.Lock.Unlock()
		v.putInode(in)
		return nil, err
	}
	in.unreserveAll()
	return &detached{in: in}, nil
}

// finish ends a removal: on failure the inode is usable again (its cached
// data is lost). A nil receiver does nothing.
func (d *detached) finish(err error) {
	if d == nil {
		return
	}
	if err != nil {
		d.in.removed.Store(false)
	}
	d.in.d.Lock.Unlock()
	d.in.v.putInode(d.in)
}
