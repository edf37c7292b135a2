package dio

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
	"github.com/aiodio/aiodio/internal/lock"
	"github.com/aiodio/aiodio/internal/meta"
)

// fakeExtents is an in-memory extent map for one volume: per inode a map of
// file block → (device block, state), a bump allocator from firstDev, and
// a size. Hooks let a test fail or observe calls.
type fakeExtents struct {
	// mu protects every field.
	mu       sync.Mutex
	files    map[meta.Ino]*fakeFile
	nextDev  int64
	limitDev int64
	// free holds device blocks released by punch, reused first.
	free    []int64
	commits int
	// failAlloc / failConvert, when non-nil, are returned once.
	failAlloc, failConvert error
	// onConvert, when set, runs (without mu) before a conversion applies.
	onConvert func(ino meta.Ino, fb, n, newSize int64)
}

type fakeBlock struct {
	dev   int64
	state meta.State
}

type fakeFile struct {
	blocks map[int64]fakeBlock
	size   int64
}

func newFakeExtents(firstDev, limitDev int64) *fakeExtents {
	return &fakeExtents{files: map[meta.Ino]*fakeFile{}, nextDev: firstDev, limitDev: limitDev}
}

func (f *fakeExtents) file(ino meta.Ino) *fakeFile {
	ff := f.files[ino]
	if ff == nil {
		ff = &fakeFile{blocks: map[int64]fakeBlock{}}
		f.files[ino] = ff
	}
	return ff
}

func (f *fakeExtents) Map(dst []meta.Mapping, ino meta.Ino, fb, count int64) ([]meta.Mapping, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ff := f.file(ino)
	for b := fb; b < fb+count; b++ {
		blk, ok := ff.blocks[b]
		m := meta.Mapping{FileBlock: b, Count: 1, DevBlock: -1, State: meta.Hole}
		if ok {
			m.DevBlock, m.State = blk.dev, blk.state
		}
		if n := len(dst); n > 0 {
			p := &dst[n-1]
			if p.State == m.State && p.FileBlock+p.Count == b &&
				(m.State == meta.Hole || p.DevBlock+p.Count == m.DevBlock) {
				p.Count++
				continue
			}
		}
		dst = append(dst, m)
	}
	return dst, nil
}

func (f *fakeExtents) AllocUnwritten(ino meta.Ino, fb, count int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failAlloc; err != nil {
		f.failAlloc = nil
		return err
	}
	ff := f.file(ino)
	need := int64(0)
	for b := fb; b < fb+count; b++ {
		if _, ok := ff.blocks[b]; !ok {
			need++
		}
	}
	if f.nextDev+need-int64(len(f.free)) > f.limitDev {
		return fmt.Errorf("fake: alloc: %w", syscall.ENOSPC)
	}
	for b := fb; b < fb+count; b++ {
		if _, ok := ff.blocks[b]; !ok {
			dev := f.nextDev
			if k := len(f.free); k > 0 {
				dev, f.free = f.free[k-1], f.free[:k-1]
			} else {
				f.nextDev++
			}
			ff.blocks[b] = fakeBlock{dev: dev, state: meta.Unwritten}
		}
	}
	return nil
}

// punch makes block b a hole again and frees its device block (the caller
// guarantees no I/O on it is in flight).
func (f *fakeExtents) punch(ino meta.Ino, b int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ff := f.file(ino)
	if blk, ok := ff.blocks[b]; ok {
		delete(ff.blocks, b)
		f.free = append(f.free, blk.dev)
	}
}

func (f *fakeExtents) ConvertWritten(ino meta.Ino, fb, count, newSize int64) error {
	if h := f.onConvert; h != nil {
		h(ino, fb, count, newSize)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failConvert; err != nil {
		f.failConvert = nil
		return err
	}
	ff := f.file(ino)
	for b := fb; b < fb+count; b++ {
		if blk, ok := ff.blocks[b]; ok && blk.state == meta.Unwritten {
			blk.state = meta.Written
			ff.blocks[b] = blk
		}
	}
	ff.size = max(ff.size, newSize)
	return nil
}

func (f *fakeExtents) Commit() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commits++
	return nil
}

func (f *fakeExtents) state(ino meta.Ino, b int64) meta.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.file(ino).blocks[b].state
}

func (f *fakeExtents) size(ino meta.Ino) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.file(ino).size
}

func (f *fakeExtents) commitCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.commits
}

// setWritten maps blocks [fb, fb+n) written at fresh device blocks (a
// pre-existing file) and sets the size.
func (f *fakeExtents) setWritten(ino meta.Ino, fb, n, size int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ff := f.file(ino)
	for b := fb; b < fb+n; b++ {
		ff.blocks[b] = fakeBlock{dev: f.nextDev, state: meta.Written}
		f.nextDev++
	}
	ff.size = max(ff.size, size)
}

func (f *fakeExtents) devBlock(ino meta.Ino, b int64) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	blk, ok := f.file(ino).blocks[b]
	if !ok {
		return -1
	}
	return blk.dev
}

// fakeCache is a page cache with whole-block pages over the fake extents
// and the device, recording calls. Writeback allocates, writes and
// converts synchronously (what the root package's Backing does).
type fakeCache struct {
	t   *testing.T
	ext *fakeExtents
	dev device.Device
	ino meta.Ino
	bs  int64

	// mu protects every field below.
	mu    sync.Mutex
	pages map[int64][]byte
	dirty map[int64]bool
	calls []string
	// invalErrs are returned by successive Invalidate calls (nil: success).
	invalErrs []error
}

func newFakeCache(t *testing.T, ext *fakeExtents, dev device.Device, ino meta.Ino, bs int) *fakeCache {
	return &fakeCache{t: t, ext: ext, dev: dev, ino: ino, bs: int64(bs),
		pages: map[int64][]byte{}, dirty: map[int64]bool{}}
}

func (c *fakeCache) log(format string, a ...any) {
	c.calls = append(c.calls, fmt.Sprintf(format, a...))
}

func (c *fakeCache) Calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

func (c *fakeCache) WriteAndWait(off, n int64) error {
	// Collect the dirty pages under mu, write them back without it (a
	// held device request must not block Calls()).
	c.mu.Lock()
	c.log("writeandwait %d %d", off, n)
	var blks []int64
	for b := range c.dirty {
		if b*c.bs < off+n && (b+1)*c.bs > off {
			blks = append(blks, b)
		}
	}
	sort.Slice(blks, func(i, j int) bool { return blks[i] < blks[j] })
	data := make([][]byte, len(blks))
	for i, b := range blks {
		data[i] = append([]byte(nil), c.pages[b]...)
	}
	c.mu.Unlock()
	for i, b := range blks {
		if err := c.ext.AllocUnwritten(c.ino, b, 1); err != nil {
			return err
		}
		d := c.ext.devBlock(c.ino, b)
		if err := syncDev(c.dev, device.Write, d*c.bs, data[i]); err != nil {
			return err
		}
		if err := c.ext.ConvertWritten(c.ino, b, 1, 0); err != nil {
			return err
		}
		c.mu.Lock()
		delete(c.dirty, b)
		c.mu.Unlock()
	}
	return nil
}

func (c *fakeCache) Invalidate(off, n int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log("invalidate %d %d", off, n)
	if len(c.invalErrs) > 0 {
		err := c.invalErrs[0]
		c.invalErrs = c.invalErrs[1:]
		if err != nil {
			return err
		}
	}
	busy := false
	for b := range c.pages {
		if b*c.bs < off+n && (b+1)*c.bs > off {
			if c.dirty[b] {
				busy = true
			} else {
				delete(c.pages, b)
			}
		}
	}
	if busy {
		// Like pagecache.File: dirty pages are kept and reported.
		return fmt.Errorf("fake: invalidate [%d,%d): dirty page: %w", off, off+n, syscall.EBUSY)
	}
	return nil
}

// cachedBlocks returns how many pages are cached and how many are dirty.
func (c *fakeCache) cachedBlocks() (pages, dirty int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pages), len(c.dirty)
}

// proberCache is a fakeCache that also implements CacheProber.
type proberCache struct{ *fakeCache }

func (p proberCache) NeedsWriteback(off, n int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return anyBlockIn(p.dirty, p.bs, off, n)
}

// anyBlockIn reports whether a block of m (keyed by block number, blocks of
// bs bytes) overlaps [off, off+n).
func anyBlockIn[V any](m map[int64]V, bs, off, n int64) bool {
	for b := range m {
		if b*bs < off+n && (b+1)*bs > off {
			return true
		}
	}
	return false
}

func (c *fakeCache) WriteAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log("writeat %d %d", off, len(p))
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		b := pos / c.bs
		pg := c.pages[b]
		if pg == nil {
			pg = make([]byte, c.bs)
			if d := c.ext.devBlock(c.ino, b); d >= 0 && c.ext.state(c.ino, b) == meta.Written {
				if err := syncDev(c.dev, device.Read, d*c.bs, pg); err != nil {
					return done, err
				}
			}
			c.pages[b] = pg
		}
		k := copy(pg[pos-b*c.bs:], p[done:])
		c.dirty[b] = true
		done += k
	}
	return done, nil
}

func (c *fakeCache) Sync() error { return c.WriteAndWait(0, 1<<62) }

// dirtyPage puts data in the cache as a dirty page of block b (a buffered
// write the direct path has not seen).
func (c *fakeCache) dirtyPage(b int64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pg := make([]byte, c.bs)
	copy(pg, data)
	c.pages[b] = pg
	c.dirty[b] = true
}

// syncDev runs one request and waits for it.
func syncDev(dev device.Device, kind device.Kind, off int64, buf []byte) error {
	ch := make(chan struct{})
	r := &device.Request{Kind: kind, Off: off, Buf: buf, Done: func(*device.Request) { close(ch) }}
	if _, err := dev.Submit(r); err != nil {
		return err
	}
	<-ch
	return r.Err
}

// rig is one engine over a sim device, fake extents and (optionally) a
// fake cache for inode 7.
type rig struct {
	t     *testing.T
	dev   *sim.Device
	ext   *fakeExtents
	e     *Engine
	in    *Inode
	cache *fakeCache
}

const (
	testBS      = 4096
	testDevSize = 8 << 20
	firstDev    = 16 // data area starts at device block 16
	testIno     = meta.Ino(7)
)

var poison = []byte("STALE!!!")

type rigOpts struct {
	sim     sim.Options
	policy  HolePolicy
	strict  bool
	noCache bool
}

func newRig(t *testing.T, o rigOpts) *rig {
	t.Helper()
	if o.sim.Size == 0 {
		o.sim.Size = testDevSize
	}
	if o.sim.SectorSize == 0 {
		o.sim.SectorSize = 512
	}
	dev := sim.New(o.sim)
	dev.Poison(poison)
	ext := newFakeExtents(firstDev, o.sim.Size/testBS)
	e, err := New(dev, ext, Options{BlockSize: testBS, HolePolicy: o.policy, StrictAlignment: o.strict})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, dev: dev, ext: ext, e: e}
	var c Cache
	if !o.noCache {
		r.cache = newFakeCache(t, ext, dev, testIno, testBS)
		c = r.cache
	}
	r.in = NewInode(testIno, 0, c)
	t.Cleanup(func() {
		dev.SetHold(false)
		dev.ReleaseAll()
		e.Close()
		dev.Close()
	})
	return r
}

// asyncOp is an op whose completions are counted.
type asyncOp struct {
	Op
	mu    sync.Mutex
	count int
	done  chan struct{}
}

func (r *rig) newOp(buf []byte, off int64, flags uint32) *asyncOp {
	a := &asyncOp{done: make(chan struct{})}
	a.Op = Op{Inode: r.in, Buf: buf, Off: off, Flags: flags}
	a.Op.Done = func(op *Op) {
		a.mu.Lock()
		a.count++
		c := a.count
		a.mu.Unlock()
		if c == 1 {
			close(a.done)
		} else {
			r.t.Errorf("op at %d completed %d times", op.Off, c)
		}
	}
	return a
}

func (a *asyncOp) completed() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// checkIdle asserts every lock of the inode can be taken again (I9).
func (r *rig) checkIdle() {
	r.t.Helper()
	if !r.in.Lock.TryLock() {
		r.t.Fatal("inode lock still held")
	}
	r.in.Lock.Unlock()
	if !r.in.DIO.Idle() {
		r.t.Fatalf("dio drain not empty: %d", r.in.DIO.InFlight())
	}
	whole := &struct{ r lock.Range }{}
	whole.r.Start, whole.r.End = 0, 1<<40
	if !r.in.Ranges.TryLock(&whole.r) {
		r.t.Fatalf("a block range lock is still held (%d entries)", r.in.Ranges.Len())
	}
	r.in.Ranges.Unlock(&whole.r)
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251)
	}
	return b
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func isErr(err, target error) bool { return errors.Is(err, target) }

func rangeFor(s, e int64) lock.Range { return lock.Range{Start: s, End: e} }

// presenceCache is a fakeCache that also implements CachePresence.
type presenceCache struct{ *fakeCache }

func (p presenceCache) HasPages(off, n int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return anyBlockIn(p.pages, p.bs, off, n)
}
