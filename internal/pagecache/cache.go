package pagecache

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aiodio/aiodio/internal/alignbuf"
)

// PageSize is the size of a cached page in bytes.
const PageSize = 4096

const pageShift = 12

// MaxFileSize is the largest file offset the cache accepts. The layer above
// may enforce a smaller limit.
const MaxFileSize int64 = 1 << 60

const (
	maxRunPages   = 256  // writeback/read runs: at most 1 MiB per Backing call
	wbInflight    = 8    // writeback runs in flight at once, cache-wide
	slabPages     = 64   // page buffers are allocated 64 at a time, page aligned
	chunkPages    = 64   // pages handled per step of a write or a miss
	minLimitPages = 1024 // 4 MiB: the smallest memory limit accepted
	raInitPages   = 8    // initial readahead window (32 KiB)
	raMaxPages    = 256  // largest readahead window (1 MiB)
	maxPageIdx    = MaxFileSize >> pageShift
)

// Backing is the file below the cache. Offsets are page aligned, lengths
// multiples of PageSize (at most 1 MiB), and buffers PageSize-aligned in
// memory (usable for O_DIRECT device I/O as they are). ReadPages returns zeros for holes and past the end of
// the file. WritePages does allocation, the data write and the
// unwritten→written conversion, synchronously. Both may be called
// concurrently for disjoint ranges.
type Backing interface {
	Size() int64
	ReadPages(off int64, p []byte) error
	WritePages(off int64, p []byte) error
}

// Options configure a Cache. Zero values pick defaults.
type Options struct {
	// Limit is the memory limit for cached pages, in bytes (default 64 MiB,
	// at least 4 MiB).
	Limit int64
	// DirtyLimit bounds pages dirty or under writeback, in bytes (default
	// Limit/4, at most Limit/2).
	DirtyLimit int64
	// DirtyAge is how long a file may stay dirty before the flusher writes it
	// back (default 5s).
	DirtyAge time.Duration
	// Logger receives writeback errors; nil discards.
	Logger *slog.Logger
}

// Stats is a snapshot of the cache's counters.
type Stats struct {
	Pages, DirtyPages         int64 // resident; dirty or under writeback
	LimitPages, DirtyLimit    int64 // the limits, in pages
	PeakPages, PeakDirtyPages int64 // highest values seen
	Evictions                 int64
	ThrottleWaits             int64 // writers that had to wait for the dirty limit
	WritebackRuns             int64 // WritePages calls
	WritebackErrors           int64
	ReadRuns                  int64 // ReadPages calls
}

// Cache is the volume-wide page cache: memory limit, LRU, dirty limit and the
// background flusher.
type Cache struct {
	log      *slog.Logger
	maxPages int64
	dirtyMax int64
	bgThresh int64 // flusher writes back while dirty exceeds this
	age      time.Duration
	raMax    int64

	// mu protects the fields below up to the blank line, the LRU links and
	// onLRU of every page, and File.nDirty / File.dirtiedWhen.
	mu        sync.Mutex
	cond      *sync.Cond // on mu: memory freed, dirty pages cleaned, close
	lru       page       // sentinel; lru.next is the most recently added
	lruLen    int64
	free      [][]byte // page buffers not in use
	created   int64    // page buffers ever allocated (= nPages + len(free))
	nPages    int64
	nDirty    int64 // pages dirty or under writeback
	nReserved int64 // dirty budget reserved by writers in progress
	peakPages int64
	peakDirty int64
	wbErrSeq  uint64 // bumped on every writeback error
	wbErr     error  // the last writeback error
	wbDoneSeq uint64 // bumped when a writeback run completes
	files     map[*File]struct{}
	closing   bool
	closed    bool

	// wbSlots bounds the writeback runs in flight, for the flusher and
	// every Sync/WriteAndWait/Close together: a run takes a slot (its
	// bounce buffer; nil until first used) and gives it back when done.
	wbSlots chan *wbRun

	kick chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
	// runs counts writeback runs in flight (Close waits for it: background
	// runs are not waited for by the flusher that starts them);
	// runsInFlight is the same count, readable without waiting.
	runs         sync.WaitGroup
	runsInFlight atomic.Int64

	evictions, throttles, wbRuns, wbErrors, readRuns atomic.Int64
}

var bouncePool = sync.Pool{New: func() any {
	b := alignbuf.Alloc(maxRunPages * PageSize)
	return &b
}}

// New creates a cache and starts its flusher; Close stops it.
func New(o Options) *Cache {
	limit := o.Limit
	if limit <= 0 {
		limit = 64 << 20
	}
	maxPages := max(limit/PageSize, minLimitPages)
	dirty := o.DirtyLimit / PageSize
	if o.DirtyLimit <= 0 {
		dirty = maxPages / 4
	}
	dirty = min(max(dirty, chunkPages), maxPages/2)
	age := o.DirtyAge
	if age <= 0 {
		age = 5 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cache{
		log:      log,
		maxPages: maxPages,
		dirtyMax: dirty,
		bgThresh: dirty / 2,
		age:      age,
		raMax:    min(raMaxPages, maxPages/8),
		files:    make(map[*File]struct{}),
		wbSlots:  make(chan *wbRun, wbInflight),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	for range wbInflight {
		c.wbSlots <- nil
	}
	c.cond = sync.NewCond(&c.mu)
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	c.wg.Add(1)
	go c.flusher()
	return c
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{
		Pages: c.nPages, DirtyPages: c.nDirty,
		LimitPages: c.maxPages, DirtyLimit: c.dirtyMax,
		PeakPages: c.peakPages, PeakDirtyPages: c.peakDirty,
		Evictions: c.evictions.Load(), ThrottleWaits: c.throttles.Load(),
		WritebackRuns: c.wbRuns.Load(), WritebackErrors: c.wbErrors.Load(),
		ReadRuns: c.readRuns.Load(),
	}
}

// Open returns the cache of one inode. A nil Backing, or a closed cache,
// gives a File whose methods fail with EBADF.
func (c *Cache) Open(b Backing) *File {
	f := &File{c: c, b: b, pages: newPageIndex(), dirty: newPageIndex()}
	f.cond = sync.NewCond(&f.mu)
	f.raMark.Store(-1)
	c.mu.Lock()
	if c.closing || b == nil {
		f.closed = true
	} else {
		c.files[f] = struct{}{}
	}
	c.mu.Unlock()
	return f
}

// Close stops the flusher, then writes back and closes every File still
// open. It returns their writeback errors joined. Later calls return nil.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	files := make([]*File, 0, len(c.files))
	for f := range c.files {
		files = append(files, f)
	}
	c.cond.Broadcast() // a flusher waiting for a run to complete
	c.mu.Unlock()
	close(c.stop)
	c.wg.Wait()
	var errs []error
	for _, f := range files {
		if err := f.Close(); err != nil && !errors.Is(err, syscall.EBADF) {
			errs = append(errs, err)
		}
	}
	c.runs.Wait()
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	return errors.Join(errs...)
}

func errf(op string, off int64, err error) error {
	return fmt.Errorf("pagecache: %s at offset %d: %w", op, off, err)
}

var errClosed = fmt.Errorf("pagecache: file or cache closed: %w", syscall.EBADF)

// --- LRU (c.mu held) ---

func (c *Cache) lruAdd(p *page) {
	if p.onLRU {
		return
	}
	p.onLRU = true
	p.prev = &c.lru
	p.next = c.lru.next
	c.lru.next.prev = p
	c.lru.next = p
	c.lruLen++
}

func (c *Cache) lruRemove(p *page) {
	if !p.onLRU {
		return
	}
	p.onLRU = false
	p.prev.next = p.next
	p.next.prev = p.prev
	p.prev, p.next = nil, nil
	c.lruLen--
}

// releaseLocked returns a page's memory to the free list (c.mu held). The
// page must already be out of its File's index and off the LRU.
func (c *Cache) releaseLocked(p *page) {
	c.lruRemove(p)
	c.free = append(c.free, p.data)
	p.data = nil
	c.nPages--
	c.cond.Broadcast()
}

// releaseBufs returns buffers obtained from alloc but never used.
func (c *Cache) releaseBufs(bufs [][]byte) {
	if len(bufs) == 0 {
		return
	}
	c.mu.Lock()
	c.free = append(c.free, bufs...)
	c.nPages -= int64(len(bufs))
	c.cond.Broadcast()
	c.mu.Unlock()
}

// alloc obtains n page buffers (n ≤ maxPages/4), evicting clean pages and
// waiting when nothing can be evicted. It must be called with no File lock
// held.
func (c *Cache) alloc(dst [][]byte, n int) ([][]byte, error) {
	var vbuf [chunkPages]*page // victims, usually without a heap allocation
	c.mu.Lock()
	for c.nPages+int64(n) > c.maxPages {
		if c.closed {
			c.mu.Unlock()
			return dst, errClosed
		}
		victims := c.pickVictims(vbuf[:0], c.nPages+int64(n)-c.maxPages)
		if len(victims) == 0 {
			c.cond.Wait()
			continue
		}
		c.mu.Unlock()
		for _, v := range victims {
			v.f.evict(v)
		}
		c.mu.Lock()
	}
	c.nPages += int64(n)
	c.peakPages = max(c.peakPages, c.nPages)
	for range n {
		if len(c.free) == 0 {
			c.growLocked()
		}
		k := len(c.free)
		dst = append(dst, c.free[k-1])
		c.free[k-1] = nil
		c.free = c.free[:k-1]
	}
	c.mu.Unlock()
	return dst, nil
}

// growLocked adds a slab of page-aligned page buffers to the free list
// (c.mu held). Buffers are never returned to the Go heap while the Cache
// lives; created never exceeds maxPages.
func (c *Cache) growLocked() {
	n := max(min(slabPages, c.maxPages-c.created), 1)
	slab := alignbuf.Alloc(int(n) * PageSize)
	for i := range int(n) {
		c.free = append(c.free, slab[i*PageSize:(i+1)*PageSize:(i+1)*PageSize])
	}
	c.created += n
}

// pickVictims pops up to need pages from the LRU tail, giving referenced
// pages a second chance (c.mu held).
func (c *Cache) pickVictims(out []*page, need int64) []*page {
	budget := 2 * c.lruLen
	for int64(len(out)) < need && budget > 0 && c.lruLen > 0 {
		budget--
		p := c.lru.prev
		c.lruRemove(p)
		if p.ref.Load() {
			p.ref.Store(false)
			c.lruAdd(p)
			continue
		}
		out = append(out, p)
	}
	return out
}

// reserveDirty reserves budget for k pages about to become dirty, waiting
// while the dirty limit would be exceeded.
func (c *Cache) reserveDirty(k int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	seq := c.wbErrSeq
	waited := false
	for c.nDirty+c.nReserved+k > c.dirtyMax {
		if c.closed {
			return errClosed
		}
		if c.wbErrSeq != seq {
			// Keep the errno (EIO, or ENOSPC from delayed allocation).
			return fmt.Errorf("pagecache: dirty limit reached and writeback is failing: %w", c.wbErr)
		}
		if !waited {
			waited = true
			c.throttles.Add(1)
		}
		c.kickFlusher()
		c.cond.Wait()
	}
	c.nReserved += k
	if c.nDirty+c.nReserved > c.bgThresh {
		c.kickFlusher()
	}
	return nil
}

func (c *Cache) unreserve(k int64) {
	if k == 0 {
		return
	}
	c.mu.Lock()
	c.nReserved -= k
	c.cond.Broadcast()
	c.mu.Unlock()
}

func (c *Cache) kickFlusher() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// flusher is the background writeback goroutine, owned by the Cache.
func (c *Cache) flusher() {
	defer c.wg.Done()
	interval := min(max(c.age/2, 10*time.Millisecond), time.Second)
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		case <-t.C:
			t.Reset(interval)
		}
		c.backgroundFlush()
	}
}

// backgroundFlush writes back files, oldest first, while dirty pages exceed
// the background threshold or a file has been dirty longer than DirtyAge.
// It does not wait for the runs it starts: while over the threshold it
// keeps starting runs as slots free up (up to wbInflight in flight), so the
// device never idles between rounds while writers are throttled; when every
// dirty page is already under writeback it waits for a run to complete and
// looks again. It stops at the first writeback error (the next round
// retries: back-off).
func (c *Cache) backgroundFlush() {
	tried := make(map[*File]bool)
	c.mu.Lock()
	errSeq := c.wbErrSeq
	c.mu.Unlock()
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		c.mu.Lock()
		if c.wbErrSeq != errSeq {
			err := c.wbErr
			c.mu.Unlock()
			c.log.Warn("pagecache: background writeback failed", "err", err)
			return
		}
		over := c.nDirty+c.nReserved > c.bgThresh
		now := time.Now()
		var pick *File
		for f := range c.files {
			if f.nDirty == 0 || tried[f] {
				continue
			}
			if pick == nil || f.dirtiedWhen.Before(pick.dirtiedWhen) {
				pick = f
			}
		}
		if pick == nil && over && c.runsInFlight.Load() > 0 {
			// Everything dirty is being written: wait for a run to end
			// (its pages may be redirtied, writers may dirty more), then
			// look at every file again.
			seq := c.wbDoneSeq
			for c.wbDoneSeq == seq && !c.closing && c.runsInFlight.Load() > 0 {
				c.cond.Wait()
			}
			c.mu.Unlock()
			clear(tried)
			continue
		}
		if pick == nil || (!over && now.Sub(pick.dirtiedWhen) < c.age) {
			c.mu.Unlock()
			return
		}
		pick.dirtiedWhen = now // pages dirtied from now on are new
		c.mu.Unlock()
		tried[pick] = true
		pick.startWriteback(c.stop)
	}
}
