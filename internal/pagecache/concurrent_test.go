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

// tokenBacking blocks every WritePages until the test hands out a release
// token, and reports each call's range on entered.
type tokenBacking struct {
	memBacking
	entered chan [2]int64 // offset, length
	release chan struct{}
}

func (b *tokenBacking) WritePages(off int64, p []byte) error {
	b.entered <- [2]int64{off, int64(len(p))}
	<-b.release
	return b.memBacking.WritePages(off, p)
}

// TestBackgroundWritebackPipelined: when a writeback run completes, the
// flusher uses its slot at once for pages dirtied since, while the other
// runs are still in flight. (The flusher of the first version waited for
// all runs of a round before it looked again: with it this test fails, no
// new run starts while the round's other runs are blocked. Checked by
// hand.) This keeps the device busy under a throttled sequential writer.
func TestBackgroundWritebackPipelined(t *testing.T) {
	// Background threshold: half of 32 MiB.
	c := New(Options{Limit: 128 << 20, DirtyLimit: 32 << 20, DirtyAge: time.Hour})
	b := &tokenBacking{entered: make(chan [2]int64, 1024), release: make(chan struct{}, 1024)}
	f := c.Open(b)
	defer func() {
		close(b.release) // every blocked and later call proceeds
		f.Close()
		c.Close()
	}()
	const mib = 1 << 20
	data := bytes.Repeat([]byte{0x5a}, 20*mib)
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	// Over the threshold: runs start. Let them complete one at a time,
	// keeping wbInflight blocked, until no run starts for a second (the
	// flusher is below the threshold, or waits for the blocked runs).
	started := map[int64]bool{}
	inflight := 0
	for quiet := false; !quiet; {
		select {
		case e := <-b.entered:
			started[e[0]] = true
			inflight++
			if inflight == wbInflight {
				b.release <- struct{}{}
				inflight--
			}
		case <-time.After(time.Second):
			quiet = true
		}
	}
	if inflight < 2 {
		t.Fatalf("%d runs in flight when writeback went quiet, want several", inflight)
	}
	// Dirty 10 MiB more (over the threshold again) and let one blocked run
	// complete: a run for pages never started must begin while the others
	// are still blocked.
	if _, err := f.WriteAt(data[:10*mib], 20*mib); err != nil {
		t.Fatal(err)
	}
	b.release <- struct{}{}
	for {
		select {
		case e := <-b.entered:
			if !started[e[0]] {
				return
			}
			t.Fatalf("run at %d started twice", e[0])
		case <-time.After(10 * time.Second):
			t.Fatalf("no new writeback run within 10 s while %d runs were in flight", inflight-1)
		}
	}
}
