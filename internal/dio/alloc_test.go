package dio

import (
	"testing"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/alignbuf"
)

// memRig is an engine over the RAM device (no sim bookkeeping), no cache.
func memRig(t testing.TB) (*Engine, *Inode, *fakeExtents) {
	dev := device.NewMemory(testDevSize, 512)
	ext := newFakeExtents(firstDev, testDevSize/testBS)
	e, err := New(dev, ext, Options{BlockSize: testBS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); dev.Close() })
	in := NewInode(testIno, 0, nil)
	ext.setWritten(testIno, 0, 64, 64*testBS)
	in.GrowSize(64 * testBS)
	return e, in, ext
}

// TestSteadyStateAllocs (DESIGN §8): direct overwrites and reads of written
// blocks allocate nothing per op once the pools are warm.
func TestSteadyStateAllocs(t *testing.T) {
	e, in, _ := memRig(t)
	buf := alignbuf.Alloc(16384)
	for i := 0; i < 10; i++ { // warm the pools
		if _, err := e.WriteAt(in, buf, 0, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := e.ReadAt(in, buf, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	w := testing.AllocsPerRun(200, func() {
		if _, err := e.WriteAt(in, buf[:4096], 8192, 0); err != nil {
			t.Fatal(err)
		}
	})
	r := testing.AllocsPerRun(200, func() {
		if _, err := e.ReadAt(in, buf, 4096, 0); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("allocs/op: overwrite %.2f, read %.2f", w, r)
	// sync.Pool may drop entries at a GC during the run; allow a fraction.
	if !raceEnabled && (w > 0.5 || r > 0.5) {
		t.Fatalf("allocs/op: overwrite %.2f, read %.2f; want 0", w, r)
	}
}

// TestSteadyStateAllocsAsyncAndAllocating (DESIGN §8): the async path
// (one caller-owned Op reused, Done signalling a channel) allocates nothing
// per op for overwrites and reads, and neither do writes that fill an
// unwritten (preallocated) block — whole or sub-block, converted at
// end-I/O on a worker — or a hole (allocation through Extents; the fake's
// own map is warmed so only the engine is measured).
func TestSteadyStateAllocsAsyncAndAllocating(t *testing.T) {
	e, in, ext := memRig(t)
	const fresh = 300 // blocks per allocating case (AllocsPerRun runs 201)
	base := int64(64)
	in.GrowSize((base + 3*fresh) * testBS)
	buf := alignbuf.Alloc(testBS)
	ch := make(chan struct{}, 1)
	op := &Op{Inode: in, Done: func(*Op) { ch <- struct{}{} }}
	run := func(write bool, p []byte, off int64) {
		op.Buf, op.Off, op.Flags = p, off, 0
		var err error
		if write {
			err = e.Write(op)
		} else {
			err = e.Read(op)
		}
		if err != nil {
			t.Fatal(err)
		}
		<-ch
		if op.Err != nil || op.N != len(p) {
			t.Fatalf("op: %d, %v", op.N, op.Err)
		}
	}
	// Unwritten blocks for two cases, and a warmed hole range for the third.
	if err := ext.AllocUnwritten(testIno, base, 2*fresh); err != nil {
		t.Fatal(err)
	}
	holes := base + 2*fresh
	if err := ext.AllocUnwritten(testIno, holes, fresh); err != nil {
		t.Fatal(err)
	}
	for b := holes; b < holes+fresh; b++ {
		ext.punch(testIno, b)
	}
	for i := 0; i < 10; i++ { // warm the pools
		run(true, buf, 0)
		run(false, buf, 0)
	}
	run(true, buf[:1024], 1024) // warm the bounce pool
	var next int64
	cases := []struct {
		name string
		f    func()
	}{
		{"async overwrite", func() { run(true, buf, 8192) }},
		{"async read", func() { run(false, buf, 4096) }},
		{"write into unwritten block", func() { run(true, buf, (base+next)*testBS); next++ }},
		{"1 KiB write into unwritten block", func() { run(true, buf[:1024], (base+fresh+next)*testBS+1024); next++ }},
		{"write into hole", func() { run(true, buf, (holes+next)*testBS); next++ }},
	}
	for _, c := range cases {
		next = 0
		n := testing.AllocsPerRun(200, c.f)
		t.Logf("allocs/op: %s %.2f", c.name, n)
		// sync.Pool may drop entries at a GC during the run; allow a fraction.
		if !raceEnabled && n > 0.5 {
			t.Errorf("%s: %.2f allocs/op, want 0", c.name, n)
		}
	}
}

func BenchmarkOverwrite4K(b *testing.B) {
	e, in, _ := memRig(b)
	buf := alignbuf.Alloc(4096)
	b.ReportAllocs()
	b.SetBytes(4096)
	for i := 0; b.Loop(); i++ {
		if _, err := e.WriteAt(in, buf, int64(i%64)*4096, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead4K(b *testing.B) {
	e, in, _ := memRig(b)
	buf := alignbuf.Alloc(4096)
	b.ReportAllocs()
	b.SetBytes(4096)
	for i := 0; b.Loop(); i++ {
		if _, err := e.ReadAt(in, buf, int64(i%64)*4096, 0); err != nil {
			b.Fatal(err)
		}
	}
}
