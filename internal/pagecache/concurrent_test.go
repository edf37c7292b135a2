package pagecache

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// runBacking wraps memBacking and checks the writeback concurrency rules:
// runs in flight never overlap, and it records the peak number in flight.
// With waitFor > 1, the first calls wait (bounded by a watchdog, not an
// assertion on time) until waitFor runs are in flight at once, so a test
// can prove that runs really overlap in time. failAt, when ≥ 0, makes the
// run covering that offset fail with EIO.
type runBacking struct {
	memBacking
	rmu      sync.Mutex // protects the fields below
	rcond    *sync.Cond // on rmu: inflight changed
	inflight map[int64]int64
	peak     int
	waitFor  int
	failAt   int64
	overlap  error
	timedOut bool
}

func newRunBacking() *runBacking {
	b := &runBacking{inflight: make(map[int64]int64), failAt: -1}
	b.rcond = sync.NewCond(&b.rmu)
	return b
}

func (b *runBacking) WritePages(off int64, p []byte) error {
	end := off + int64(len(p))
	b.rmu.Lock()
	for o, e := range b.inflight {
		if off < e && o < end && b.overlap == nil {
			b.overlap = fmt.Errorf("run [%d,%d) overlaps run [%d,%d) in flight", off, end, o, e)
		}
	}
	b.inflight[off] = end
	b.peak = max(b.peak, len(b.inflight))
	b.rcond.Broadcast()
	if b.waitFor > 1 && !b.timedOut {
		deadline := time.AfterFunc(10*time.Second, func() {
			b.rmu.Lock()
			b.timedOut = true
			b.rcond.Broadcast()
			b.rmu.Unlock()
		})
		for len(b.inflight) < b.waitFor && !b.timedOut {
			b.rcond.Wait()
		}
		deadline.Stop()
		b.waitFor = 0 // later calls run freely
	}
	fail := b.failAt >= off && b.failAt < end
	b.rmu.Unlock()
	var err error
	if fail {
		err = fmt.Errorf("run: write at %d: %w", off, syscall.EIO)
	} else {
		err = b.memBacking.WritePages(off, p)
	}
	b.rmu.Lock()
	delete(b.inflight, off)
	b.rcond.Broadcast()
	b.rmu.Unlock()
	return err
}

func (b *runBacking) inFlight() int {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	return len(b.inflight)
}

// Sync submits several runs at once; they never overlap, Sync returns only
// when all of them completed, and the data is all on the backing.
func TestWritebackRunsConcurrent(t *testing.T) {
	c := New(Options{Limit: 64 << 20, DirtyLimit: 32 << 20, DirtyAge: time.Hour})
	t.Cleanup(func() { c.Close() })
	b := newRunBacking()
	b.waitFor = 2
	f := c.Open(b)
	const size = 16 << 20
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*31 + i>>12)
	}
	// Written backwards in 20 KiB pieces so runs are not page-aligned to
	// the writes.
	for off := int64(size); off > 0; {
		n := min(off, 20<<10)
		off -= n
		if _, err := f.WriteAt(want[off:off+n], off); err != nil {
			t.Fatal(err)
		}
	}
	b.setSize(size)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := b.inFlight(); n != 0 {
		t.Fatalf("Sync returned with %d runs in flight", n)
	}
	b.rmu.Lock()
	overlap, peak, timedOut := b.overlap, b.peak, b.timedOut
	b.rmu.Unlock()
	if overlap != nil {
		t.Fatal(overlap)
	}
	if timedOut || peak < 2 {
		t.Fatalf("runs never overlapped in time (peak %d in flight)", peak)
	}
	if peak > wbInflight {
		t.Fatalf("%d runs in flight, limit %d", peak, wbInflight)
	}
	if got := b.diskAt(0, size); !bytes.Equal(got, want) {
		t.Fatal("backing does not hold the data after Sync")
	}
	if st := c.Stats(); st.DirtyPages != 0 {
		t.Fatalf("%d pages still dirty after Sync", st.DirtyPages)
	}
}

// An error in one of several concurrent runs is reported by Sync (once),
// the other runs' data is written, and the failed pages stay dirty and are
// written by a later Sync.
func TestWritebackConcurrentRunError(t *testing.T) {
	c := New(Options{Limit: 64 << 20, DirtyLimit: 32 << 20, DirtyAge: time.Hour})
	t.Cleanup(func() { c.Close() })
	b := newRunBacking()
	b.failAt = 5<<20 + 123
	f := c.Open(b)
	const size = 12 << 20
	want := bytes.Repeat([]byte{0xa5}, size)
	if _, err := f.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	b.setSize(size)
	err := f.Sync()
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync = %v, want EIO", err)
	}
	if n := b.inFlight(); n != 0 {
		t.Fatalf("Sync returned with %d runs in flight", n)
	}
	got := b.diskAt(0, size)
	if !bytes.Equal(got[:5<<20], want[:5<<20]) || !bytes.Equal(got[6<<20:], want[6<<20:]) {
		t.Fatal("runs other than the failed one were not written")
	}
	if st := c.Stats(); st.DirtyPages == 0 {
		t.Fatal("the failed run's pages are not dirty any more")
	}
	b.rmu.Lock()
	b.failAt = -1
	b.rmu.Unlock()
	if err := f.Sync(); err != nil {
		t.Fatalf("second Sync = %v, want nil (error reported once, retry succeeds)", err)
	}
	if got := b.diskAt(0, size); !bytes.Equal(got, want) {
		t.Fatal("retry did not write the failed run")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
