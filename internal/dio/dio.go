package dio

import (
	"context"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/alignbuf"
	"github.com/aiodio/aiodio/internal/lock"
	"github.com/aiodio/aiodio/internal/meta"
	"golang.org/x/sys/unix"
)

// Extents is what the engine needs from the metadata layer; *meta.FS
// implements it. Names and meanings are those of internal/meta.
type Extents interface {
	// Map appends the mappings covering [fileBlock, fileBlock+count),
	// holes included, to dst.
	Map(dst []meta.Mapping, ino meta.Ino, fileBlock, count int64) ([]meta.Mapping, error)
	// AllocUnwritten allocates the holes of the range as unwritten blocks
	// (ENOSPC leaves nothing changed).
	AllocUnwritten(ino meta.Ino, fileBlock, count int64) error
	// ConvertWritten marks the unwritten blocks of the range written and
	// raises the size to at least newSize (I8); called only after the data
	// is on the device. It may run a group commit (device flush), so the
	// engine never calls it from a device completion callback.
	ConvertWritten(ino meta.Ino, fileBlock, count int64, newSize int64) error
	// Commit makes every earlier update durable (group commit, O2).
	Commit() error
}

// Cache is the page cache of one inode as the engine uses it;
// *pagecache.File implements it. A nil Cache means the inode has no cached
// pages.
type Cache interface {
	// WriteAndWait writes back the dirty pages of [off, off+n) and waits.
	WriteAndWait(off, n int64) error
	// Invalidate drops the clean pages of [off, off+n); EBUSY when a page
	// cannot be dropped. The second invalidation of a write runs at
	// end-I/O, possibly on a device completion goroutine: Invalidate must
	// not wait for device I/O (pagecache.File never does: it fails with
	// EBUSY instead).
	Invalidate(off, n int64) error
	// WriteAt writes p at off through the cache (dirty pages), the buffered
	// fallback of HolePolicy BufferedFallback.
	WriteAt(p []byte, off int64) (int, error)
	// Sync writes back the whole file and reports writeback errors once.
	Sync() error
}

// CacheProber is an optional interface of a Cache, for RWF_NOWAIT: a
// cheap query that never waits (Linux's filemap_range_needs_writeback).
// pagecache.File does not implement it yet; without it the engine probes
// with Invalidate instead (see cacheNowait).
type CacheProber interface {
	// NeedsWriteback reports whether any page of [off, off+n) is dirty or
	// under writeback. It must not wait (a page lock, I/O). False must
	// mean that WriteAndWait(off, n) would have nothing to do: the engine
	// then skips that call (Linux's mapping_needs_writeback fast path).
	NeedsWriteback(off, n int64) bool
}

// writeBack is step 3's write-back: WriteAndWait, skipped when the Cache
// can tell that nothing in the range needs it.
func writeBack(c Cache, off, n int64) error {
	if p, ok := c.(CacheProber); ok && !p.NeedsWriteback(off, n) {
		return nil
	}
	return c.WriteAndWait(off, n)
}

// CachePresence is an optional interface of a Cache: a cheap query, that
// never waits, of whether any page of [off, off+n) is cached in any state
// (clean, dirty, under writeback, being filled). When it answers false the
// engine skips the write-back and the invalidations of the range (Linux's
// mapping->nrpages == 0 fast path): nothing is there to write back or
// drop, and buffered writes cannot add dirty pages meanwhile (they take
// the inode lock exclusive, which the direct op holds at least shared).
// A page a buffered read fills after the answer is handled as without the
// query: the end-I/O invalidation asks again. pagecache.File does not
// implement it yet.
type CachePresence interface {
	HasPages(off, n int64) bool
}

// cacheFor returns the inode's cache when it may hold pages of [off,
// off+n), nil when it has none there (or no cache at all).
func (i *Inode) cacheFor(off, n int64) Cache {
	c := i.cache
	if c == nil {
		return nil
	}
	if p, ok := c.(CachePresence); ok && !p.HasPages(off, n) {
		return nil
	}
	return c
}

// cacheNowait is the RWF_NOWAIT form of step 3: it returns ErrWouldBlock
// (EAGAIN) instead of writing back dirty pages or waiting for pages under
// writeback, and for a write invalidates the clean pages.
//
// A Cache's Invalidate never waits: it drops the clean pages and fails
// with EBUSY for pages dirty, under writeback or busy (Linux's NOWAIT
// direct write likewise refuses when filemap_range_has_page). So for a
// write Invalidate is the probe, and its failure means "would wait". For a
// read the engine asks CacheProber when the Cache has it; otherwise it
// probes with Invalidate too, which also drops the range's clean pages (a
// cost to buffered readers, never to correctness: the device holds the
// same bytes).
func cacheNowait(c Cache, off, n int64, write bool) error {
	if !write {
		if p, ok := c.(CacheProber); ok {
			if p.NeedsWriteback(off, n) {
				return wouldBlock("dirty cached pages must be written back first")
			}
			return nil
		}
	}
	if err := c.Invalidate(off, n); err != nil {
		return fmt.Errorf("dio: cached pages cannot be dropped without waiting (%v): %w", err, lock.ErrWouldBlock)
	}
	return nil
}

// HolePolicy says what a direct write does with blocks that are not yet
// allocated; it mirrors aiodio.HolePolicy (same values).
type HolePolicy int

const (
	// Unwritten allocates holes (inside or past EOF) as unwritten extents,
	// writes directly and converts them to written at end-I/O (XFS).
	Unwritten HolePolicy = iota
	// BufferedFallback ends the direct part at the first hole inside the
	// file size; the remainder goes through the page cache, is written
	// back and waited for (the 2003 design of seeds 000, 001, 003).
	// Holes in or past the block holding EOF are still allocated unwritten.
	BufferedFallback
)

// Flags of an Op: Linux's RWF_* values.
const (
	// NoWait (RWF_NOWAIT): an op that would wait before submission — for a
	// lock, the drain, a cache write-back, an allocation, an edge-sector
	// read, EOF zeroing or the buffered fallback — is rejected with EAGAIN
	// and nothing is submitted (package doc, "RWF_NOWAIT").
	NoWait = unix.RWF_NOWAIT
	// DSync (RWF_DSYNC, or a file opened O_DSYNC/O_SYNC): the op completes
	// only after its data and the metadata exposing it are durable (I10).
	DSync = unix.RWF_DSYNC
)

// Options configure an Engine.
type Options struct {
	// BlockSize is the volume block size (meta.FS.BlockSize()); a power
	// of two, a multiple of the device's logical sector size.
	BlockSize int
	// HolePolicy: Unwritten (default) or BufferedFallback.
	HolePolicy HolePolicy
	// StrictAlignment: misaligned offsets, lengths (not multiples of the
	// logical sector size) and buffer addresses (not multiples of the
	// device's MemAlign) fail with EINVAL, as Linux O_DIRECT does. When
	// false they are served through bounce buffers and read-modify-write.
	StrictAlignment bool
	// EndIOWorkers is the number of goroutines that run end-I/O work which
	// may block (unwritten conversion, O_DSYNC commit). Default 4.
	EndIOWorkers int
	// SerializeUnaligned is the baseline of the I6 benchmarks, not a mode
	// for users: the 2011 ocfs2 fix of seed 002 (ip_unaligned_aio). A
	// direct write whose offset or end is not block-aligned waits until no
	// other such write is in flight on the inode, and holds that slot until
	// its end-I/O: one in-flight unaligned write per inode. Block range
	// locks are still taken (they are what makes it correct here); this
	// only adds the whole-file wait, to measure what range locks save.
	SerializeUnaligned bool
}

// Engine is the direct-I/O engine of one volume. It is safe for
// concurrent use. Close stops its end-I/O workers.
type Engine struct {
	dev device.Device
	ext Extents
	o   Options

	// Immutable after New.
	bs, ss, memAlign int
	bsShift          uint
	maxIO            int

	bounce alignbuf.Pool
	ops    sync.Pool // of *dop
	syncs  sync.Pool // of *syncReq
	waits  sync.Pool // of *waitOp

	// wmu protects wq and closed; wcond signals workers.
	wmu    sync.Mutex
	wcond  *sync.Cond
	wq     []*dop
	closed bool
	wg     sync.WaitGroup
}

// New returns an engine over dev and ext. It starts o.EndIOWorkers
// goroutines, stopped by Close.
func New(dev device.Device, ext Extents, o Options) (*Engine, error) {
	info := dev.Info()
	if o.BlockSize == 0 {
		o.BlockSize = 4096
	}
	if o.EndIOWorkers <= 0 {
		o.EndIOWorkers = 4
	}
	pow2 := func(x int) bool { return x > 0 && x&(x-1) == 0 }
	if !pow2(o.BlockSize) || !pow2(info.LogicalBlockSize) || o.BlockSize%info.LogicalBlockSize != 0 {
		return nil, fmt.Errorf("dio: block size %d and device sector size %d: %w",
			o.BlockSize, info.LogicalBlockSize, syscall.EINVAL)
	}
	e := &Engine{dev: dev, ext: ext, o: o, bs: o.BlockSize, ss: info.LogicalBlockSize,
		memAlign: max(info.MemAlign, 1), bsShift: uint(bits.TrailingZeros(uint(o.BlockSize)))}
	e.maxIO = info.MaxIO &^ (e.ss - 1)
	if e.maxIO <= 0 {
		e.maxIO = 1 << 20
	}
	e.wcond = sync.NewCond(&e.wmu)
	e.ops.New = func() any { return newDop(e) }
	for range o.EndIOWorkers {
		e.wg.Add(1)
		go e.worker()
	}
	return e, nil
}

// DIOAlign returns the memory and offset alignment direct I/O needs
// (statx STATX_DIOALIGN).
func (e *Engine) DIOAlign() (mem, offset int) { return e.memAlign, e.ss }

// BlockSize returns the volume block size.
func (e *Engine) BlockSize() int { return e.bs }

// Close stops the end-I/O workers after they ran every queued end-I/O. The
// caller must have drained every inode first (no op in flight).
func (e *Engine) Close() error {
	e.wmu.Lock()
	e.closed = true
	e.wcond.Broadcast()
	e.wmu.Unlock()
	e.wg.Wait()
	return nil
}

// queue hands d to an end-I/O worker (never blocks: device callbacks call it).
func (e *Engine) queue(d *dop) {
	e.wmu.Lock()
	e.wq = append(e.wq, d)
	e.wcond.Signal()
	e.wmu.Unlock()
}

func (e *Engine) worker() {
	defer e.wg.Done()
	e.wmu.Lock()
	for {
		for len(e.wq) == 0 && !e.closed {
			e.wcond.Wait()
		}
		if len(e.wq) == 0 {
			e.wmu.Unlock()
			return
		}
		d := e.wq[0]
		copy(e.wq, e.wq[1:])
		e.wq[len(e.wq)-1] = nil
		e.wq = e.wq[:len(e.wq)-1]
		e.wmu.Unlock()
		d.endIO()
		e.wmu.Lock()
	}
}

// Inode is the per-inode state of the direct path; the root package keeps
// one in each open inode, shared by all opens of it.
type Inode struct {
	// Ino is the inode number. Immutable.
	Ino meta.Ino
	// Lock is the inode lock (i_rwsem). Direct reads and overwrites hold it
	// shared until submission; truncate, punch, fallocate, buffered writes
	// and direct writes that zero past EOF hold it exclusive; direct writes
	// with a partial sector hold it exclusive until their end-I/O.
	Lock lock.Inode
	// DIO counts direct ops between dio begin and end-I/O (i_dio_count).
	DIO lock.Drain
	// Ranges are the block range locks of I6, in units of volume blocks.
	Ranges lock.RangeLock

	// size is the file size the data path trusts (i_size). It may be read
	// atomically with no lock held (Stat, readers after taking Lock). It is
	// raised only atomically and only to a larger value (GrowSize: end-I/O
	// after the extent conversion, buffered writes) while Lock is held
	// shared or by end-I/O of an op that began under it; it is lowered
	// only by SetSizeLocked with Lock held exclusive and the drain empty.
	size atomic.Int64

	// cache is the inode's page cache, or nil. Immutable.
	cache Cache

	// unaligned is the slot of Options.SerializeUnaligned: holds a token
	// while an unaligned direct write is in flight (capacity 1; the
	// channel protects itself). Created by NewInode.
	unaligned chan struct{}
}

// NewInode returns the state of inode ino, whose current size is size, with
// page cache c (nil: none).
func NewInode(ino meta.Ino, size int64, c Cache) *Inode {
	i := &Inode{Ino: ino, cache: c, unaligned: make(chan struct{}, 1)}
	i.size.Store(size)
	return i
}

// takeUnaligned waits for the inode's unaligned-write slot
// (SerializeUnaligned). It is taken before the inode lock and released at
// completion; end-I/O never needs the inode lock, so waiting for it while
// holding nothing cannot deadlock.
func (i *Inode) takeUnaligned(ctx context.Context, nowait bool) error {
	select {
	case i.unaligned <- struct{}{}:
		return nil
	default:
	}
	if nowait {
		return wouldBlock("another unaligned write is in flight (SerializeUnaligned)")
	}
	select {
	case i.unaligned <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("dio: waiting for in-flight unaligned write: %w", ctx.Err())
	}
}

func (i *Inode) releaseUnaligned() { <-i.unaligned }

// Size returns the file size (atomic; no lock needed).
func (i *Inode) Size() int64 { return i.size.Load() }

// GrowSize raises the size to n if n is larger.
func (i *Inode) GrowSize(n int64) {
	for {
		s := i.size.Load()
		if n <= s || i.size.CompareAndSwap(s, n) {
			return
		}
	}
}

// SetSizeLocked sets the size (truncate).
//
// Preconditions: i.Lock is held exclusive and i.DIO is empty (Drain).
func (i *Inode) SetSizeLocked(n int64) { i.size.Store(n) }

// Drain takes the inode lock exclusive and waits until no direct op is in
// flight: what truncate, punch-hole, zero-range and fallocate call before
// changing allocation (I7). On success the caller holds i.Lock exclusive
// and must Unlock it; on error it holds nothing. With nowait it returns
// EAGAIN instead of waiting.
func (i *Inode) Drain(ctx context.Context, nowait bool) error {
	if err := i.Lock.LockMode(ctx, true, nowait); err != nil {
		return err
	}
	if nowait && !i.DIO.Idle() {
		i.Lock.Unlock()
		return lock.ErrWouldBlock
	}
	if err := i.DIO.Wait(ctx); err != nil {
		i.Lock.Unlock()
		return err
	}
	return nil
}

// Op is one direct read or write. The caller owns it until Read/Write
// accepts it (returns nil), then the engine owns it (and Buf) until Done is
// called; Done runs exactly once (I2), on a device or end-I/O goroutine or
// on the submitter's, possibly before Read/Write returns. It must be short.
// When Read/Write return an error the op was rejected: nothing was
// submitted, Done is never called.
type Op struct {
	Inode *Inode
	Buf   []byte
	Off   int64
	// Flags: NoWait, DSync.
	Flags uint32
	// Ctx bounds the waits for locks; nil means context.Background().
	Ctx context.Context
	// Done receives the op with N and Err set.
	Done func(*Op)

	// N is the byte count moved; Err is nil when N == len(Buf), otherwise
	// non-nil (io.EOF for a read that reached end of file).
	N   int
	Err error

	// UserData is free for the caller.
	UserData uint64
	// Ptr is free for the caller.
	Ptr any
}
