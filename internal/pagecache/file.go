package pagecache

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// page flags (protected by File.mu)
const (
	pgUptodate uint8 = 1 << iota
	pgBusy           // being filled; not uptodate
	pgDirty
	pgWriteback
	pgError // last writeback failed
	// pgStale marks a busy page that Invalidate hit while it was being
	// filled: its ReadPages may have read bytes older than the change the
	// invalidation announces, so the fill discards it instead of publishing
	// it (the reader then fills it again).
	pgStale
)

type page struct {
	f     *File
	idx   int64
	data  []byte      // PageSize bytes; contents protected by f.mu
	flags uint8       // protected by f.mu
	ref   atomic.Bool // referenced since the LRU last looked (second chance)

	prev, next *page // LRU links, protected by Cache.mu
	onLRU      bool  // protected by Cache.mu
}

// File is the cache of one inode, shared by all opens of it.
type File struct {
	c *Cache
	b Backing

	// mu protects pages, dirty, slab, the flags and data of every page in them,
	// wbCount, errCount, closed, wend and the errseq fields.
	mu       sync.RWMutex
	cond     *sync.Cond // on mu (exclusive): a page stopped being busy or under writeback
	pages    pageIndex
	dirty    pageIndex // pages with pgDirty
	wbCount  int       // pages under writeback
	slab     []page    // page structs not handed out yet (newPageLocked)
	closed   bool
	errCount int    // pages with pgError
	errSeq   uint64 // bumped on every writeback error
	syncSeq  uint64 // errSeq already reported by Sync
	lastErr  error  // last writeback error
	// wend is the highest end offset ever written through this File (reset
	// by Truncate). "Past the size" decisions use max(Backing.Size(), wend),
	// so a page written here, written back and evicted before the layer
	// above raised its size is read back, not zero-filled.
	wend int64

	// nDirty (pages dirty or under writeback) and dirtiedWhen are protected
	// by Cache.mu.
	nDirty      int64
	dirtiedWhen time.Time

	// invSeq counts Invalidate calls; it is incremented with mu held
	// exclusively and may be loaded without it. A fill loads it before it
	// samples Backing.Size and compares under mu before it zero-fills pages
	// past that size without I/O: if an invalidation ran in between, the
	// size may be stale (a direct write raised it), so those pages are read
	// through ReadPages instead.
	invSeq atomic.Uint64

	// readahead
	lastEnd  atomic.Int64 // end offset of the previous read
	raMark   atomic.Int64 // page whose sequential hit triggers the next window; -1: none
	raMu     sync.Mutex   // protects raWindow and raEnd
	raWindow int64        // pages
	raEnd    int64        // page index just past the last readahead
}

func checkRange(op string, off, n int64) error {
	if off < 0 || n < 0 {
		return errf(op, off, fmt.Errorf("negative offset or length %d: %w", n, syscall.EINVAL))
	}
	if off > MaxFileSize || n > MaxFileSize-off {
		return errf(op, off, fmt.Errorf("range of %d bytes past the maximum file size: %w", n, syscall.EINVAL))
	}
	return nil
}

// ReadAt fills p from the file at off (exactly len(p) bytes; the caller
// clips to the end of the file) and returns len(p) on success.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if err := checkRange("read", off, int64(len(p))); err != nil {
		return 0, err
	}
	end := off + int64(len(p))
	seq := f.lastEnd.Load() == off
	if len(p) > 0 {
		f.lastEnd.Store(end)
	}
	done := 0
	for {
		n, miss, err := f.readCached(p[done:], off+int64(done))
		done += n
		if err != nil {
			return done, err
		}
		if !miss {
			break
		}
		if err := f.fillForRead(off+int64(done), end, seq); err != nil {
			return done, err
		}
	}
	if seq && len(p) > 0 {
		if m := f.raMark.Load(); m >= 0 && (end-1)>>pageShift >= m {
			f.asyncReadahead(m)
		}
	}
	return done, nil
}

// readCached copies from uptodate pages; it stops at the first page that is
// missing or busy (miss == true).
func (f *File) readCached(p []byte, off int64) (n int, miss bool, err error) {
	f.mu.RLock()
	if f.closed {
		f.mu.RUnlock()
		return 0, false, errClosed
	}
	for n < len(p) {
		o := off + int64(n)
		pg := f.pages.get(o >> pageShift)
		if pg == nil || pg.flags&pgUptodate == 0 {
			f.mu.RUnlock()
			return n, true, nil
		}
		if !pg.ref.Load() {
			pg.ref.Store(true)
		}
		n += copy(p[n:], pg.data[o&(PageSize-1):])
	}
	f.mu.RUnlock()
	return n, false, nil
}

// fillForRead reads missing pages from the page of off on, up to the page of
// end-1 (at most chunkPages of them) plus the readahead window when the
// access is sequential.
func (f *File) fillForRead(off, end int64, seq bool) error {
	first := off >> pageShift
	need := min((end-1)>>pageShift+1, first+chunkPages)
	to := need
	iseq := f.invSeq.Load() // before the size: see invSeq
	size := f.b.Size()
	sizePages := (size + PageSize - 1) >> pageShift
	if seq {
		f.raMu.Lock()
		w := f.raWindow
		if w == 0 {
			w = min(raInitPages, f.c.raMax)
		} else {
			w = min(2*w, f.c.raMax)
		}
		f.raWindow = w
		to = max(to, min(first+w, sizePages))
		f.raEnd = to
		if to < sizePages {
			f.raMark.Store(first + (to-first)/2)
		} else {
			f.raMark.Store(-1)
		}
		f.raMu.Unlock()
	} else {
		f.raMu.Lock()
		f.raWindow = 0
		f.raMark.Store(-1)
		f.raMu.Unlock()
	}
	return f.fill(first, need, to, iseq, size)
}

// asyncReadahead fetches the next window after a sequential hit reached the
// mark m. Only the reader that clears the mark does it.
func (f *File) asyncReadahead(m int64) {
	if !f.raMark.CompareAndSwap(m, -1) {
		return
	}
	seq := f.invSeq.Load() // before the size: see invSeq
	size := f.b.Size()
	sizePages := (size + PageSize - 1) >> pageShift
	f.raMu.Lock()
	w := min(max(2*f.raWindow, raInitPages), f.c.raMax)
	f.raWindow = w
	from := f.raEnd
	to := min(from+w, sizePages)
	if from >= to {
		f.raMu.Unlock()
		return
	}
	f.raEnd = to
	if to < sizePages {
		f.raMark.Store(from)
	}
	f.raMu.Unlock()
	_ = f.fill(from, from, to, seq, size) // readahead errors are not the reader's
}

// fill makes pages [first, to) resident; an error matters only if it touches
// [first, need). Pages entirely past size are zero-filled without I/O, unless
// an Invalidate ran since the caller loaded seq (f.invSeq) before sampling
// size. Pages an Invalidate marked stale while they were being read are
// discarded, not published; fill then returns nil with them missing and the
// reader's loop fills them again (so a fill that raced a direct write never
// caches bytes older than that write once its end-I/O invalidation ran).
func (f *File) fill(first, need, to int64, seq uint64, size int64) error {
	to = min(to, first+maxRunPages)
	f.mu.Lock()
	for {
		if f.closed {
			f.mu.Unlock()
			return errClosed
		}
		if pg := f.pages.get(first); pg != nil && pg.flags&pgBusy != 0 {
			f.cond.Wait()
			continue
		}
		break
	}
	var missing []int64
	for idx := first; idx < to; idx++ {
		if f.pages.get(idx) == nil {
			missing = append(missing, idx)
		}
	}
	f.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	bufs, err := f.c.alloc(nil, len(missing))
	if err != nil {
		return err
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		f.c.releaseBufs(bufs)
		return errClosed
	}
	var toRead, zeroed []*page
	if f.invSeq.Load() != seq {
		size = MaxFileSize // size may predate the invalidation: read everything
	}
	size = max(size, f.wend)
	for _, idx := range missing {
		if f.pages.get(idx) != nil {
			continue
		}
		pg := f.newPageLocked(idx, bufs[len(bufs)-1], 0)
		bufs = bufs[:len(bufs)-1]
		f.pages.set(idx, pg)
		if idx<<pageShift >= size {
			clear(pg.data)
			pg.flags = pgUptodate
			zeroed = append(zeroed, pg)
		} else {
			pg.flags = pgBusy
			toRead = append(toRead, pg)
		}
	}
	if len(zeroed) > 0 {
		f.c.mu.Lock()
		for _, pg := range zeroed {
			f.c.lruAdd(pg)
		}
		f.c.cond.Broadcast()
		f.c.mu.Unlock()
	}
	f.mu.Unlock()
	f.c.releaseBufs(bufs)
	if len(toRead) == 0 {
		return nil
	}
	failed := make([]bool, len(toRead))
	readErr := f.readRuns(toRead, failed)
	var rerr error
	f.mu.Lock()
	f.c.mu.Lock()
	for i, pg := range toRead {
		if failed[i] || pg.flags&pgStale != 0 {
			f.pages.del(pg.idx)
			f.c.releaseLocked(pg)
			if failed[i] && pg.flags&pgStale == 0 && rerr == nil && pg.idx < need {
				rerr = errf("read", pg.idx<<pageShift, readErr)
			}
			continue
		}
		pg.flags = pgUptodate
		f.c.lruAdd(pg)
	}
	f.c.cond.Broadcast() // new eviction candidates for waiting allocators
	f.c.mu.Unlock()
	f.cond.Broadcast()
	f.mu.Unlock()
	return rerr
}

// readRuns reads busy pages (sorted by index) in contiguous runs; failed[i]
// is set for pages whose run failed. It returns the first error.
func (f *File) readRuns(pgs []*page, failed []bool) error {
	var first error
	for i := 0; i < len(pgs); {
		j := i + 1
		for j < len(pgs) && j-i < maxRunPages && pgs[j].idx == pgs[j-1].idx+1 {
			j++
		}
		off := pgs[i].idx << pageShift
		var err error
		f.c.readRuns.Add(1)
		if j-i == 1 {
			err = f.b.ReadPages(off, pgs[i].data)
		} else {
			bp := bouncePool.Get().(*[]byte)
			buf := (*bp)[:(j-i)*PageSize]
			err = f.b.ReadPages(off, buf)
			if err == nil {
				for k := i; k < j; k++ {
					copy(pgs[k].data, buf[(k-i)*PageSize:])
				}
			}
			bouncePool.Put(bp)
		}
		if err != nil {
			if first == nil {
				first = err
			}
			for k := i; k < j; k++ {
				failed[k] = true
			}
		}
		i = j
	}
	return first
}
