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
