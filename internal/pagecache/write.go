package pagecache

import (
	"fmt"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/aiodio/aiodio/internal/alignbuf"
)

// WriteAt copies p into the cache at off and marks the pages dirty. Partial
// pages that are not cached and lie inside Backing.Size are read first;
// pages past it start zero-filled. It may wait for the dirty limit
// (throttling). It returns len(p) on success; on error, the bytes copied
// before it (whole chunks).
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errf("write", off, fmt.Errorf("negative offset: %w", syscall.EINVAL))
	}
	if off > MaxFileSize || int64(len(p)) > MaxFileSize-off {
		return 0, errf("write", off, fmt.Errorf("%d bytes past the maximum file size: %w", len(p), syscall.EFBIG))
	}
	if len(p) == 0 {
		return 0, f.checkOpen()
	}
	done := 0
	for done < len(p) {
		o := off + int64(done)
		first := o >> pageShift
		last := min((o+int64(len(p)-done)-1)>>pageShift, first+chunkPages-1)
		n := int(min(int64(len(p)-done), (last+1)<<pageShift-o))
		k := last - first + 1
		if err := f.c.reserveDirty(k); err != nil {
			return done, errf("write", o, err)
		}
		used, err := f.writeChunk(p[done:done+n], o, first, last)
		f.c.unreserve(k - used)
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

func (f *File) checkOpen() error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return errClosed
	}
	return nil
}

// writeChunk writes src at off, covering pages [first, last] (≤ chunkPages),
// and returns how many pages newly count as dirty.
func (f *File) writeChunk(src []byte, off, first, last int64) (used int64, err error) {
	var bufArr [chunkPages][]byte // page buffers, usually without a heap allocation
	bufs := bufArr[:0]
	defer func() { f.c.releaseBufs(bufs) }()
	end := off + int64(len(src))
	covered := func(idx int64) bool {
		ps := idx << pageShift
		return off <= ps && end >= ps+PageSize
	}
	for {
		seq := f.invSeq.Load() // before the size: see File.invSeq
		size := f.b.Size()
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return 0, errClosed
		}
		if f.waitBusyLocked(first, last) {
			f.mu.Unlock()
			continue
		}
		if f.invSeq.Load() != seq {
			size = MaxFileSize // may predate the invalidation: read partial pages
		}
		size = max(size, f.wend)
		var rmw [2]int64
		nr, nmiss := 0, 0
		for idx := first; idx <= last; idx++ {
			if f.pages.get(idx) != nil {
				continue
			}
			nmiss++
			if (idx == first || idx == last) && !covered(idx) && idx<<pageShift < size {
				rmw[nr] = idx
				nr++
			}
		}
		if nr > 0 {
			if len(bufs) < nr {
				f.mu.Unlock()
				if bufs, err = f.regrow(bufs, nr); err != nil {
					return 0, err
				}
				continue
			}
			bufs, err = f.readInLocked(rmw[:nr], bufs)
			f.mu.Unlock()
			if err != nil {
				return 0, errf("write: read-modify-write", off, err)
			}
			continue
		}
		if nmiss > len(bufs) {
			f.mu.Unlock()
			if bufs, err = f.regrow(bufs, nmiss); err != nil {
				return 0, err
			}
			continue
		}
		f.c.mu.Lock()
		for idx := first; idx <= last; idx++ {
			ps := idx << pageShift
			pg := f.pages.get(idx)
			if pg == nil {
				pg = f.newPageLocked(idx, bufs[len(bufs)-1], pgUptodate)
				bufs = bufs[:len(bufs)-1]
				if !covered(idx) {
					clear(pg.data)
				}
				f.pages.set(idx, pg)
			}
			lo, hi := max(off, ps), min(end, ps+PageSize)
			copy(pg.data[lo-ps:hi-ps], src[lo-off:hi-off])
			used += f.dirtyLocked(pg)
		}
		f.accountDirtyLocked(used)
		f.c.mu.Unlock()
		f.wend = max(f.wend, end)
		f.mu.Unlock()
		return used, nil
	}
}

// regrow returns bufs to the cache and allocates n buffers: a writer never
// waits for memory while holding page buffers (so concurrent writers cannot
// starve each other of memory).
func (f *File) regrow(bufs [][]byte, n int) ([][]byte, error) {
	f.c.releaseBufs(bufs)
	return f.c.alloc(bufs[:0], n)
}

// dirtyLocked marks pg dirty (f.mu and c.mu held) and returns 1 if it newly
// counts against the dirty limit.
func (f *File) dirtyLocked(pg *page) int64 {
	if pg.flags&pgDirty != 0 {
		return 0
	}
	pg.flags |= pgDirty
	f.dirty.set(pg.idx, pg)
	if pg.flags&pgWriteback != 0 {
		return 0 // already counted
	}
	f.c.lruRemove(pg)
	return 1
}

// accountDirtyLocked moves n reserved pages to dirty (c.mu held).
func (f *File) accountDirtyLocked(n int64) {
	if n == 0 {
		return
	}
	c := f.c
	if f.nDirty == 0 {
		f.dirtiedWhen = time.Now()
	}
	f.nDirty += n
	c.nDirty += n
	c.nReserved -= n
	c.peakDirty = max(c.peakDirty, c.nDirty)
}

// unaccountLocked: n pages stopped being dirty or under writeback (c.mu held).
func (f *File) unaccountLocked(n int64) {
	f.nDirty -= n
	f.c.nDirty -= n
	f.c.cond.Broadcast()
}

// waitBusyLocked waits once if a page in [first, last] is busy and reports
// whether it waited (f.mu held exclusively).
func (f *File) waitBusyLocked(first, last int64) bool {
	if f.anyLocked(first, last, pgBusy) {
		f.cond.Wait()
		return true
	}
	return false
}

// anyLocked reports whether a page in [first, last] has a flag of mask.
func (f *File) anyLocked(first, last int64, mask uint8) bool {
	if mask == pgWriteback && f.wbCount == 0 || mask == pgError && f.errCount == 0 {
		return false
	}
	if last-first < idxChunkPages {
		for idx := first; idx <= last; idx++ {
			if pg := f.pages.get(idx); pg != nil && pg.flags&mask != 0 {
				return true
			}
		}
		return false
	}
	found := false
	f.pages.each(first, last, func(pg *page) {
		if pg.flags&mask != 0 {
			found = true
		}
	})
	return found
}

// forRangeLocked calls fn for every page in [first, last]; fn may delete it.
func (f *File) forRangeLocked(first, last int64, fn func(*page)) {
	f.pages.each(first, last, fn)
}

// readInLocked inserts busy pages for idxs (sorted, absent), reads them with
// f.mu released, and returns with f.mu held and the pages uptodate (or
// removed on error, or when an Invalidate marked them stale meanwhile: the
// caller's loop reads them again). It consumes buffers from the end of bufs.
func (f *File) readInLocked(idxs []int64, bufs [][]byte) ([][]byte, error) {
	pgs := make([]*page, len(idxs))
	for i, idx := range idxs {
		pgs[i] = f.newPageLocked(idx, bufs[len(bufs)-1], pgBusy)
		bufs = bufs[:len(bufs)-1]
		f.pages.set(idx, pgs[i])
	}
	f.mu.Unlock()
	failed := make([]bool, len(pgs))
	err := f.readRuns(pgs, failed)
	f.mu.Lock()
	f.c.mu.Lock()
	for i, pg := range pgs {
		if failed[i] || pg.flags&pgStale != 0 {
			f.pages.del(pg.idx)
			f.c.releaseLocked(pg)
			continue
		}
		pg.flags = pgUptodate
		f.c.lruAdd(pg)
	}
	f.c.cond.Broadcast()
	f.c.mu.Unlock()
	f.cond.Broadcast()
	return bufs, err
}

// zeroInPage zeroes bytes [from, to) of page idx and dirties it if anything
// changed. An absent page is read in first when readIfAbsent and it lies
// inside size; otherwise an absent page is left alone.
func (f *File) zeroInPage(idx int64, from, to int, size int64, readIfAbsent bool) (err error) {
	if err := f.c.reserveDirty(1); err != nil {
		return err
	}
	var used int64
	var bufs [][]byte
	defer func() {
		f.c.releaseBufs(bufs)
		f.c.unreserve(1 - used)
	}()
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return errClosed
		}
		if f.waitBusyLocked(idx, idx) {
			f.mu.Unlock()
			continue
		}
		pg := f.pages.get(idx)
		if pg == nil {
			if !readIfAbsent || idx<<pageShift >= max(size, f.wend) {
				f.mu.Unlock()
				return nil
			}
			if len(bufs) == 0 {
				f.mu.Unlock()
				if bufs, err = f.c.alloc(bufs, 1); err != nil {
					return err
				}
				continue
			}
			bufs, err = f.readInLocked([]int64{idx}, bufs)
			f.mu.Unlock()
			if err != nil {
				return errf("zero partial page", idx<<pageShift, err)
			}
			continue
		}
		z := pg.data[from:to]
		if !isZero(z) {
			clear(z)
			f.c.mu.Lock()
			used = f.dirtyLocked(pg)
			f.accountDirtyLocked(used)
			f.c.mu.Unlock()
		}
		f.mu.Unlock()
		return nil
	}
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// dropLocked waits for busy pages and writeback in [first, last], then drops
// every page there, dirty or not (f.mu held exclusively).
func (f *File) dropLocked(first, last int64) {
	for f.anyLocked(first, last, pgBusy|pgWriteback) {
		f.cond.Wait()
	}
	c := f.c
	c.mu.Lock()
	f.forRangeLocked(first, last, func(pg *page) {
		f.pages.del(pg.idx)
		if pg.flags&pgDirty != 0 {
			f.dirty.del(pg.idx)
			f.unaccountLocked(1)
		}
		if pg.flags&pgError != 0 {
			f.errCount--
		}
		c.releaseLocked(pg)
	})
	c.mu.Unlock()
}

// Truncate drops the pages past newSize (even dirty ones, after waiting for
// their writeback) and zeroes the tail of the partial page at newSize. When
// shrinking, that page is read in if absent and dirtied so the zeros reach
// the device. Call it before the layer above changes the size.
func (f *File) Truncate(newSize int64) error {
	if newSize < 0 {
		return errf("truncate", newSize, fmt.Errorf("negative size: %w", syscall.EINVAL))
	}
	if newSize > MaxFileSize {
		return errf("truncate", newSize, fmt.Errorf("past the maximum file size: %w", syscall.EFBIG))
	}
	oldSize := f.b.Size()
	cut := (newSize + PageSize - 1) >> pageShift
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return errClosed
	}
	f.dropLocked(cut, maxPageIdx)
	f.wend = min(f.wend, newSize)
	f.mu.Unlock()
	if r := newSize & (PageSize - 1); r != 0 {
		if err := f.zeroInPage(newSize>>pageShift, int(r), PageSize, oldSize, newSize < oldSize); err != nil {
			return errf("truncate", newSize, err)
		}
	}
	return nil
}

// Punch drops the pages wholly inside [off, off+n) (even dirty ones) and
// zeroes the covered bytes of partial edge pages, reading them in when they
// lie inside Backing.Size and dirtying them.
func (f *File) Punch(off, n int64) error {
	if err := checkRange("punch", off, n); err != nil {
		return err
	}
	if err := f.checkOpen(); err != nil || n == 0 {
		return err
	}
	end := off + n
	size := f.b.Size()
	fp, lp := off>>pageShift, (end-1)>>pageShift
	if r := int(off & (PageSize - 1)); r != 0 {
		to := PageSize
		if lp == fp {
			to = int((end-1)&(PageSize-1)) + 1
		}
		if err := f.zeroInPage(fp, r, to, size, true); err != nil {
			return errf("punch", off, err)
		}
	}
	if r := int(end & (PageSize - 1)); r != 0 && (lp != fp || off&(PageSize-1) == 0) {
		if err := f.zeroInPage(lp, 0, r, size, true); err != nil {
			return errf("punch", off, err)
		}
	}
	// Drop the whole pages last: zeroing an edge page may need a read that
	// fails, and a failed punch must not have dropped dirty pages (an
	// earlier punch's or write's data that has not been written back yet).
	if ff, ef := (off+PageSize-1)>>pageShift, end>>pageShift; ff < ef {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return errClosed
		}
		f.dropLocked(ff, ef-1)
		f.mu.Unlock()
	}
	return nil
}

// Invalidate drops the clean cached pages overlapping [off, off+n). It never
// waits. Pages being filled (busy) are marked stale: their fill discards them
// instead of publishing bytes that may predate the change being announced,
// and the reader fills them again; they do not make Invalidate fail. Pages
// that are dirty or under writeback are kept and make it fail with EBUSY
// (call WriteAndWait first).
func (f *File) Invalidate(off, n int64) error {
	if err := checkRange("invalidate", off, n); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errClosed
	}
	if n == 0 {
		return nil
	}
	// Fills that sampled the size before this point must not zero-fill
	// pages past it without I/O (see File.invSeq).
	f.invSeq.Add(1)
	busy := false
	c := f.c
	c.mu.Lock()
	f.forRangeLocked(off>>pageShift, (off+n-1)>>pageShift, func(pg *page) {
		if pg.flags&(pgDirty|pgWriteback) != 0 {
			busy = true
			return
		}
		if pg.flags&pgBusy != 0 {
			pg.flags |= pgStale
			return
		}
		f.pages.del(pg.idx)
		c.releaseLocked(pg)
	})
	c.mu.Unlock()
	if busy {
		return errf("invalidate", off, fmt.Errorf("page dirty or under writeback: %w", syscall.EBUSY))
	}
	return nil
}

// NeedsWriteback reports whether a page overlapping [off, off+n) is dirty or
// under writeback, i.e. whether a direct I/O of the range would have to
// write back or wait (Linux's filemap_range_needs_writeback). It never waits
// for I/O. Bad ranges and a closed File report false.
func (f *File) NeedsWriteback(off, n int64) bool {
	if n <= 0 || checkRange("needs writeback", off, n) != nil {
		return false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed || f.dirty.len() == 0 && f.wbCount == 0 {
		return false
	}
	return f.anyLocked(off>>pageShift, (off+n-1)>>pageShift, pgDirty|pgWriteback)
}

// WriteAndWait writes back the dirty pages overlapping [off, off+n) and
// waits for every writeback in flight there. It fails if a page of the
// range could not be written (the page stays dirty).
func (f *File) WriteAndWait(off, n int64) error {
	if err := checkRange("write and wait", off, n); err != nil {
		return err
	}
	if err := f.checkOpen(); err != nil || n == 0 {
		return err
	}
	return f.writeAndWait(off>>pageShift, (off+n-1)>>pageShift)
}

func (f *File) writeAndWait(first, last int64) error {
	f.mu.Lock()
	for f.anyLocked(first, last, pgWriteback) {
		f.cond.Wait()
	}
	f.mu.Unlock()
	_, err := f.flushRange(first, last, nil)
	f.mu.Lock()
	for f.anyLocked(first, last, pgWriteback) {
		f.cond.Wait()
	}
	if err == nil && f.anyLocked(first, last, pgError) {
		err = f.lastErr
	}
	f.mu.Unlock()
	return err
}

// Sync writes back every dirty page of the file and waits. A writeback error
// that happened since the previous Sync (also in the background) is reported
// once, even if this Sync's retry succeeded.
func (f *File) Sync() error {
	if err := f.checkOpen(); err != nil {
		return err
	}
	return f.takeErr(f.writeAndWait(0, maxPageIdx))
}

func (f *File) takeErr(err error) error {
	f.mu.Lock()
	if f.errSeq != f.syncSeq {
		f.syncSeq = f.errSeq
		if err == nil {
			err = f.lastErr
		}
	}
	f.mu.Unlock()
	return err
}

// Close writes back the file's dirty pages, drops all its pages and
// detaches it from the cache. It returns unreported writeback errors. Later
// calls, and every other method, fail with EBADF.
func (f *File) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return errClosed
	}
	f.closed = true
	f.mu.Unlock()
	err := f.takeErr(f.writeAndWait(0, maxPageIdx))
	f.mu.Lock()
	f.dropLocked(0, maxPageIdx)
	f.cond.Broadcast()
	f.mu.Unlock()
	c := f.c
	c.mu.Lock()
	delete(c.files, f)
	c.cond.Broadcast()
	c.mu.Unlock()
	return err
}

// evict drops pg if it is still in the index and clean (called by the
// allocator with no lock held).
func (f *File) evict(pg *page) {
	f.mu.Lock()
	if f.pages.get(pg.idx) == pg && pg.flags&(pgBusy|pgDirty|pgWriteback) == 0 {
		f.pages.del(pg.idx)
		f.c.mu.Lock()
		f.c.releaseLocked(pg)
		f.c.mu.Unlock()
		f.c.evictions.Add(1)
	}
	f.mu.Unlock()
}

// wbRun is one writeback run in flight: its pages and its bounce buffer.
type wbRun struct {
	start  int64 // page index of pages[0]
	pages  []*page
	bounce []byte
}

// getRun takes a run slot (waiting while wbInflight runs are in flight, or
// until stop is closed: nil) with its buffers, allocated on first use and
// kept by the Cache for good.
func (c *Cache) getRun(stop <-chan struct{}) *wbRun {
	var r *wbRun
	if stop != nil {
		select {
		case <-stop:
			return nil
		default:
		}
		select {
		case <-stop:
			return nil
		case r = <-c.wbSlots:
		}
	} else {
		r = <-c.wbSlots
	}
	if r == nil {
		r = &wbRun{pages: make([]*page, 0, maxRunPages), bounce: alignbuf.Alloc(maxRunPages * PageSize)}
	}
	r.pages = r.pages[:0]
	return r
}

// putRun returns a run slot.
func (c *Cache) putRun(r *wbRun) {
	clear(r.pages)
	r.pages = r.pages[:0]
	c.wbSlots <- r
}

// flushRange writes back the dirty pages in [first, last] that are not
// under writeback and waits for them: see submitRuns. It returns the pages
// written and the first error; it continues after errors and stops
// submitting when stop is closed.
func (f *File) flushRange(first, last int64, stop <-chan struct{}) (int, error) {
	var (
		wg       sync.WaitGroup
		resMu    sync.Mutex // protects written and firstErr
		written  int
		firstErr error
	)
	f.submitRuns(first, last, stop, func(r *wbRun) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := f.writeRun(r)
			resMu.Lock()
			written += n
			if err != nil && firstErr == nil {
				firstErr = err
			}
			resMu.Unlock()
		}()
	})
	wg.Wait()
	return written, firstErr
}

// startWriteback starts writeback of every dirty page of the file that is
// not under writeback, without waiting for it (the background flusher):
// errors are recorded on the pages and the file (errseq) as for any run,
// and waiters see the pages leave writeback.
func (f *File) startWriteback(stop <-chan struct{}) {
	f.submitRuns(0, maxPageIdx, stop, func(r *wbRun) {
		go f.writeRun(r)
	})
}

// submitRuns marks the dirty pages in [first, last] that are not under
// writeback as under writeback, in contiguous runs of at most maxRunPages,
// and hands each run to start. Up to wbInflight runs (cache-wide, shared
// with every other caller) are in flight at once: submitRuns waits for a
// slot before it builds each run. Runs are disjoint because a page is
// marked under writeback, under f.mu, before its run starts and
// submitRuns skips such pages. It stops early when stop is closed.
func (f *File) submitRuns(first, last int64, stop <-chan struct{}, start func(*wbRun)) {
	f.mu.Lock()
	if f.dirty.len() == 0 {
		f.mu.Unlock()
		return
	}
	idxs := make([]int64, 0, f.dirty.len())
	f.dirty.each(first, last, func(pg *page) {
		if pg.flags&pgWriteback == 0 {
			idxs = append(idxs, pg.idx)
		}
	})
	f.mu.Unlock()
	slices.Sort(idxs)
	for i := 0; i < len(idxs); {
		r := f.c.getRun(stop)
		if r == nil {
			break
		}
		r.start = idxs[i]
		f.mu.Lock()
		for j := i; j < len(idxs) && len(r.pages) < maxRunPages && idxs[j] == r.start+int64(len(r.pages)); j++ {
			pg := f.pages.get(idxs[j])
			if pg == nil || pg.flags&pgDirty == 0 || pg.flags&pgWriteback != 0 {
				break
			}
			r.pages = append(r.pages, pg)
		}
		if len(r.pages) == 0 {
			f.mu.Unlock()
			f.c.putRun(r)
			i++
			continue
		}
		i += len(r.pages)
		for _, pg := range r.pages {
			pg.flags = pg.flags&^pgDirty | pgWriteback
			f.dirty.del(pg.idx)
		}
		f.wbCount += len(r.pages)
		f.mu.Unlock()
		f.c.runs.Add(1)
		f.c.runsInFlight.Add(1)
		start(r)
	}
}

// writeRun copies the pages of r (already marked under writeback) into its
// bounce buffer, writes them with Backing.WritePages, completes their
// writeback and returns r to the pool. Copying after the flag was set is
// safe: a page under writeback is never dropped, and bytes written into it
// meanwhile also made it dirty again, so they are written again later.
func (f *File) writeRun(r *wbRun) (int, error) {
	n := len(r.pages)
	buf := r.bounce[:n*PageSize]
	// In pieces, so that a writer waiting for f.mu gets in between.
	for k0 := 0; k0 < n; k0 += chunkPages {
		f.mu.RLock()
		for k, pg := range r.pages[k0:min(k0+chunkPages, n)] {
			copy(buf[(k0+k)*PageSize:], pg.data)
		}
		f.mu.RUnlock()
	}
	f.c.wbRuns.Add(1)
	err := f.b.WritePages(r.start<<pageShift, buf)
	if err != nil {
		err = errf("writeback", r.start<<pageShift, err)
		n = 0
	}
	f.completeWriteback(r.pages, err)
	f.c.putRun(r)
	f.c.runsInFlight.Add(-1)
	f.c.runs.Done()
	return n, err
}

// completeWriteback ends writeback of run. On error the pages become dirty
// again with the error flag, and the error is recorded for Sync.
func (f *File) completeWriteback(run []*page, err error) {
	c := f.c
	f.mu.Lock()
	c.mu.Lock()
	for _, pg := range run {
		pg.flags &^= pgWriteback
		f.wbCount--
		if err != nil {
			if pg.flags&pgError == 0 {
				pg.flags |= pgError
				f.errCount++
			}
			if pg.flags&pgDirty == 0 {
				pg.flags |= pgDirty
				f.dirty.set(pg.idx, pg)
			}
			continue
		}
		if pg.flags&pgError != 0 {
			pg.flags &^= pgError
			f.errCount--
		}
		if pg.flags&pgDirty == 0 {
			f.unaccountLocked(1)
			c.lruAdd(pg)
		}
	}
	if err != nil {
		f.errSeq++
		f.lastErr = err
		f.dirtiedWhen = time.Now() // back off: retried after DirtyAge
		c.wbErrSeq++
		c.wbErr = err
		c.wbErrors.Add(1)
	}
	c.wbDoneSeq++
	c.cond.Broadcast()
	c.mu.Unlock()
	f.cond.Broadcast()
	f.mu.Unlock()
}
