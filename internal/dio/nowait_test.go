package dio

import (
	"bytes"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/aiodio/aiodio/device/sim"
	"github.com/aiodio/aiodio/internal/alignbuf"
	"github.com/aiodio/aiodio/internal/meta"
)

// TestNowaitNeverWaits: an RWF_NOWAIT direct op that would have to write
// back dirty cached pages, allocate blocks (which may commit), read partial
// sectors, zero past EOF or fall back to buffered I/O returns EAGAIN before
// anything reaches the device, changes nothing and never completes; the
// same ops without anything to wait for succeed.
//
// Checked by hand: without the NOWAIT checks each "EAGAIN" case fails
// (the write-back, the allocation, the edge read, the EOF zeroing or the
// direct part of the fallback reaches the device).
func TestNowaitNeverWaits(t *testing.T) {
	type tc struct {
		name   string
		policy HolePolicy
		prober bool
		setup  func(r *rig)
		read   bool
		off    int64
		n      int
		ok     bool // succeeds instead of EAGAIN
		check  func(t *testing.T, r *rig)
	}
	dirty0 := func(r *rig) {
		r.writeFile(0, 1, testBS, nil)
		r.cache.dirtyPage(0, []byte("dirty"))
	}
	stillDirty := func(t *testing.T, r *rig) {
		if _, d := r.cache.cachedBlocks(); d != 1 {
			t.Fatalf("%d dirty pages left, want 1 (written back?)", d)
		}
	}
	cases := []tc{
		{name: "read dirty page", setup: dirty0, read: true, n: testBS, check: stillDirty},
		{name: "read dirty page prober", prober: true, setup: dirty0, read: true, n: testBS, check: stillDirty},
		{name: "write dirty page", setup: dirty0, n: testBS, check: stillDirty},
		{name: "write into hole", n: testBS,
			setup: func(r *rig) { r.in.GrowSize(2 * testBS) },
			check: func(t *testing.T, r *rig) {
				if s := r.ext.state(testIno, 0); s != meta.Hole {
					t.Fatalf("block 0 state %v after a refused write, want hole", s)
				}
			}},
		{name: "write extending", off: testBS, n: testBS,
			setup: func(r *rig) { r.writeFile(0, 1, testBS, nil) }},
		{name: "partial sector rmw", off: 100, n: 50,
			setup: func(r *rig) { r.writeFile(0, 1, testBS, nil) }},
		{name: "zero past EOF", off: 2 * testBS, n: testBS,
			setup: func(r *rig) {
				r.writeFile(0, 1, 300, nil)
				_ = r.ext.AllocUnwritten(testIno, 2, 1) // no allocation needed
			}},
		{name: "buffered fallback", policy: BufferedFallback, n: 2 * testBS,
			setup: func(r *rig) {
				r.writeFile(0, 1, testBS, nil)
				r.in.GrowSize(2 * testBS)
			}},
		{name: "overwrite with clean cached page", n: testBS, ok: true,
			setup: func(r *rig) {
				r.writeFile(0, 1, testBS, nil)
				if _, err := r.cache.WriteAt([]byte("x"), 0); err != nil { // cache block 0 ...
					panic(err)
				}
				if err := r.cache.WriteAndWait(0, testBS); err != nil { // ... clean
					panic(err)
				}
			},
			check: func(t *testing.T, r *rig) {
				if p, _ := r.cache.cachedBlocks(); p != 0 {
					t.Fatal("clean page not invalidated by the direct write")
				}
			}},
		{name: "read clean cached page prober", prober: true, read: true, n: testBS, ok: true,
			setup: func(r *rig) {
				r.writeFile(0, 1, testBS, nil)
				r.cache.dirtyPage(0, nil)
				if err := r.cache.WriteAndWait(0, testBS); err != nil {
					panic(err)
				}
			},
			check: func(t *testing.T, r *rig) {
				if p, _ := r.cache.cachedBlocks(); p != 1 {
					t.Fatal("a NOWAIT read dropped a clean page although the cache can be probed")
				}
			}},
		{name: "write into unwritten block", n: testBS, ok: true,
			setup: func(r *rig) {
				r.in.GrowSize(testBS)
				_ = r.ext.AllocUnwritten(testIno, 0, 1)
			}},
		{name: "sub-block write into unwritten block", off: 512, n: 512, ok: true,
			setup: func(r *rig) {
				r.in.GrowSize(testBS)
				_ = r.ext.AllocUnwritten(testIno, 0, 1)
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, rigOpts{policy: c.policy})
			if c.prober {
				r.in = NewInode(testIno, 0, proberCache{r.cache})
			}
			c.setup(r)
			size := r.in.Size()
			before := r.dev.Stats().Submitted
			buf := alignbuf.Alloc(c.n)
			copy(buf, pattern(c.n, 1))
			a := r.newOp(buf, c.off, NoWait)
			var err error
			if c.read {
				err = r.e.Read(&a.Op)
			} else {
				err = r.e.Write(&a.Op)
			}
			if c.ok {
				if err != nil {
					t.Fatalf("NOWAIT op with nothing to wait for: %v", err)
				}
				<-a.done
				if a.Err != nil || a.N != c.n {
					t.Fatalf("completion %d, %v", a.N, a.Err)
				}
				if !c.read {
					got := make([]byte, c.n)
					if _, err := r.e.ReadAt(r.in, got, c.off, 0); err != nil || !bytes.Equal(got, buf) {
						t.Fatalf("data not written: %v", err)
					}
				}
			} else {
				if !errors.Is(err, syscall.EAGAIN) {
					t.Fatalf("err = %v, want EAGAIN", err)
				}
				if s := r.dev.Stats().Submitted; s != before {
					t.Fatalf("%d device requests submitted by a refused NOWAIT op", s-before)
				}
				if r.in.Size() != size {
					t.Fatalf("size changed %d → %d", size, r.in.Size())
				}
				yield()
				if a.completed() {
					t.Fatal("refused op completed")
				}
			}
			if c.check != nil {
				c.check(t, r)
			}
			r.checkIdle()
		})
	}
}

// TestRMWReadFailureAllocatesNothing (I1, I12): a write whose edge-sector
// read fails is rejected before any block is allocated, and nothing stale
// or new becomes visible: the neighbouring hole stays a hole, the size and
// the written block are unchanged.
//
// Checked by hand: allocating before the edge reads (the previous order)
// leaves block 1 unwritten after the failure and fails this test.
func TestRMWReadFailureAllocatesNothing(t *testing.T) {
	r := newRig(t, rigOpts{})
	data := pattern(testBS, 5)
	r.writeFile(0, 1, 2*testBS, data)
	r.dev.FailRange(sim.OpRead, 0, testDevSize)
	a := r.newOp(make([]byte, testBS), 100, 0)
	err := r.e.Write(&a.Op)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("err = %v, want EIO", err)
	}
	if s := r.ext.state(testIno, 1); s != meta.Hole {
		t.Fatalf("block 1 is %v after the rejected write, want hole", s)
	}
	if r.in.Size() != 2*testBS {
		t.Fatalf("size %d", r.in.Size())
	}
	r.checkIdle()
}

// TestCachePresenceSkipsEmptyRanges: with a Cache that implements
// CachePresence, direct ops over ranges with no cached page make no
// write-back or invalidation calls, and ranges with pages still get them
// (I5): a dirty page is written back before a direct read of it, a clean
// one is dropped by a direct write.
//
// Checked by hand: making cacheFor ignore HasPages fails the first check;
// making it always return nil fails the dirty-page read.
func TestCachePresenceSkipsEmptyRanges(t *testing.T) {
	r := newRig(t, rigOpts{})
	r.in = NewInode(testIno, 0, presenceCache{r.cache})
	r.writeFile(0, 2, 2*testBS, nil)
	if _, err := r.e.WriteAt(r.in, alignbuf.Alloc(testBS), 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.ReadAt(r.in, alignbuf.Alloc(testBS), 0, 0); err != nil {
		t.Fatal(err)
	}
	if calls := r.cache.Calls(); len(calls) != 0 {
		t.Fatalf("cache calls for an empty range: %v", calls)
	}
	r.checkDirtyPageRead()
	if _, err := r.e.WriteAt(r.in, alignbuf.Alloc(testBS), testBS, 0); err != nil {
		t.Fatal(err)
	}
	if p, d := r.cache.cachedBlocks(); p != 0 || d != 0 {
		t.Fatalf("after a direct write over it: %d pages, %d dirty", p, d)
	}
	r.checkIdle()
}

// checkDirtyPageRead dirties the cached page of block 1 and checks that a
// direct read of the block sees the dirty bytes: the page is written back
// before the read (I5).
func (r *rig) checkDirtyPageRead() {
	t := r.t
	t.Helper()
	r.cache.dirtyPage(1, []byte("dirty!"))
	got := alignbuf.Alloc(testBS)
	if _, err := r.e.ReadAt(r.in, got, testBS, 0); err != nil {
		t.Fatal(err)
	}
	if string(got[:6]) != "dirty!" {
		t.Fatalf("direct read did not see the dirty cached page: %q", got[:6])
	}
}

// TestCacheProberSkipsCleanWriteback: with a Cache that implements
// CacheProber, a direct op whose range has no dirty page skips WriteAndWait
// (it still invalidates for a write), and one whose range has a dirty page
// still writes it back first (I5).
//
// Checked by hand: ignoring NeedsWriteback in writeBack fails the first
// check; always skipping fails the dirty-page read.
func TestCacheProberSkipsCleanWriteback(t *testing.T) {
	r := newRig(t, rigOpts{})
	r.in = NewInode(testIno, 0, proberCache{r.cache})
	r.writeFile(0, 2, 2*testBS, nil)
	if _, err := r.e.ReadAt(r.in, alignbuf.Alloc(testBS), 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.e.WriteAt(r.in, alignbuf.Alloc(testBS), 0, 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.cache.Calls() {
		if strings.HasPrefix(c, "writeandwait") {
			t.Fatalf("write-back called with nothing dirty: %v", r.cache.Calls())
		}
	}
	r.checkDirtyPageRead()
	r.checkIdle()
}
