package pagecache

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// gate holds one Backing call (after skipping skip calls): the call signals
// entered, then waits for release.
type gate struct {
	entered, release chan struct{}
	skip             int
}

func newGate() *gate { return &gate{entered: make(chan struct{}, 1), release: make(chan struct{})} }

// gatedBacking is a memBacking whose next ReadPages (after reading the disk)
// or next Size (after sampling the size) can be held at a gate. It models a
// fill whose device read, or size sample, happened before a direct write
// landed and raised the size, and whose result arrives after that write's
// end-I/O invalidation.
type gatedBacking struct {
	*memBacking
	gmu      sync.Mutex // protects readGate and sizeGate
	readGate *gate
	sizeGate *gate
}

func (b *gatedBacking) take(g **gate) *gate {
	b.gmu.Lock()
	defer b.gmu.Unlock()
	x := *g
	if x != nil && x.skip > 0 {
		x.skip--
		return nil
	}
	*g = nil
	return x
}

func (b *gatedBacking) arm(g **gate) *gate {
	x := newGate()
	b.gmu.Lock()
	*g = x
	b.gmu.Unlock()
	return x
}

func (b *gatedBacking) ReadPages(off int64, p []byte) error {
	err := b.memBacking.ReadPages(off, p)
	if g := b.take(&b.readGate); g != nil {
		g.entered <- struct{}{}
		<-g.release
	}
	return err
}

func (b *gatedBacking) Size() int64 {
	n := b.memBacking.Size()
	if g := b.take(&b.sizeGate); g != nil {
		g.entered <- struct{}{}
		<-g.release
	}
	return n
}

func newGated(t *testing.T) (*Cache, *gatedBacking, *File) {
	t.Helper()
	c := New(Options{DirtyAge: time.Hour})
	t.Cleanup(func() { c.Close() })
	b := &gatedBacking{memBacking: &memBacking{}}
	return c, b, c.Open(b)
}

// directWrite plays a direct write and its end-I/O as the layer above does
// it: the data lands on the disk, the size is raised, then the cache range
// is invalidated. A page being filled must not make it fail.
func directWrite(t *testing.T, f *File, b *gatedBacking, p []byte, off int64) {
	t.Helper()
	b.mu.Lock()
	if end := off + int64(len(p)); end > int64(len(b.disk)) {
		b.disk = append(b.disk, make([]byte, end-int64(len(b.disk)))...)
	}
	copy(b.disk[off:], p)
	b.size = max(b.size, off+int64(len(p)))
	b.mu.Unlock()
	if err := f.Invalidate(off, int64(len(p))); err != nil {
		t.Errorf("end-I/O Invalidate with only a page fill in flight: %v, want nil", err)
	}
}

func readAsync(f *File, n int, off int64) (<-chan []byte, <-chan error) {
	data, errc := make(chan []byte, 1), make(chan error, 1)
	go func() {
		p := make([]byte, n)
		_, err := f.ReadAt(p, off)
		data <- p
		errc <- err
	}()
	return data, errc
}

func checkRead(t *testing.T, f *File, off int64, want []byte, what string) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, off); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: stale data at %d: byte %d, want %d", what, off+int64(i), got[i], want[i])
		}
	}
}

// TestFillRacingDirectOverwrite: BUG-2 (seed 004, I1/I5). A buffered read's
// fill reads the old bytes, a direct write lands and invalidates while the
// fill is still busy, then the fill completes: the reader and every later
// read must see the direct write's bytes.
func TestFillRacingDirectOverwrite(t *testing.T) {
	_, b, f := newGated(t)
	b.setSize(4 * PageSize)
	b.disk = fill(4*PageSize, 1)
	g := b.arm(&b.readGate)
	data, errc := readAsync(f, PageSize, PageSize)
	<-g.entered // the fill has read the old bytes
	directWrite(t, f, b, fill(PageSize, 2), PageSize)
	close(g.release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := <-data; !bytes.Equal(got, fill(PageSize, 2)) {
		t.Fatalf("read racing the direct write returned byte %d after the write's invalidation, want 2", got[0])
	}
	checkRead(t, f, PageSize, fill(PageSize, 2), "buffered read after the direct write")
}

// TestReadaheadRacingDirectOverwrite: pages filled by readahead (not needed
// by the reader) that raced an invalidation are not published either.
func TestReadaheadRacingDirectOverwrite(t *testing.T) {
	_, b, f := newGated(t)
	b.setSize(16 * PageSize)
	b.disk = fill(16*PageSize, 1)
	g := b.arm(&b.readGate)
	data, errc := readAsync(f, PageSize, 0) // sequential from 0: window of 8 pages
	<-g.entered
	directWrite(t, f, b, fill(16*PageSize, 2), 0)
	close(g.release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := <-data; got[0] != 2 {
		t.Fatalf("reader got byte %d, want 2", got[0])
	}
	checkRead(t, f, 0, fill(16*PageSize, 2), "read of the readahead window after the direct write")
}

// TestFillRacingExtendingDirectWrite: a fill that sampled the size before
// an extending direct write raised it must not zero-fill the page past the
// old size after that write's invalidation ran.
func TestFillRacingExtendingDirectWrite(t *testing.T) {
	_, b, f := newGated(t)
	b.setSize(2 * PageSize)
	b.disk = fill(2*PageSize, 1)
	g := b.arm(&b.sizeGate)
	data, errc := readAsync(f, PageSize, 3*PageSize)
	<-g.entered // the fill has sampled the old size
	directWrite(t, f, b, fill(2*PageSize, 2), 2*PageSize)
	close(g.release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := <-data; got[0] != 2 {
		t.Fatalf("read racing the extending direct write returned byte %d, want 2", got[0])
	}
	checkRead(t, f, 2*PageSize, fill(2*PageSize, 2), "buffered read after the extending direct write")
}

// TestRMWFillRacingDirectOverwrite: the read of a partial page by a
// buffered write (read-modify-write) that raced an invalidation reads again,
// so the dirty page carries the direct write's bytes around the new ones.
func TestRMWFillRacingDirectOverwrite(t *testing.T) {
	_, b, f := newGated(t)
	b.setSize(2 * PageSize)
	b.disk = fill(2*PageSize, 1)
	g := b.arm(&b.readGate)
	errc := make(chan error, 1)
	go func() {
		_, err := f.WriteAt(fill(10, 3), PageSize)
		errc <- err
	}()
	<-g.entered
	directWrite(t, f, b, fill(PageSize, 2), PageSize)
	close(g.release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	want := append(fill(10, 3), fill(PageSize-10, 2)...)
	checkRead(t, f, PageSize, want, "page written through the cache over a fresh direct write")
	if err := f.WriteAndWait(0, 2*PageSize); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.diskAt(PageSize, PageSize), want) {
		t.Fatal("writeback put the pre-direct-write bytes back on disk")
	}
}

// TestWriteRacingExtendingDirectWrite: a buffered write that sampled the
// size before an extending direct write raised it (and invalidated) must not
// start the partial page past the old size from zeros.
func TestWriteRacingExtendingDirectWrite(t *testing.T) {
	_, b, f := newGated(t)
	b.setSize(2 * PageSize)
	b.disk = fill(2*PageSize, 1)
	g := b.arm(&b.sizeGate)
	g.skip = 1 // the first pass only finds it has no page buffer yet
	errc := make(chan error, 1)
	go func() {
		_, err := f.WriteAt(fill(10, 3), 3*PageSize)
		errc <- err
	}()
	<-g.entered
	directWrite(t, f, b, fill(2*PageSize, 2), 2*PageSize)
	close(g.release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	want := append(fill(10, 3), fill(PageSize-10, 2)...)
	checkRead(t, f, 3*PageSize, want, "page written through the cache past the old size")
}

// TestNeedsWriteback: true exactly while a page of the range is dirty or
// under writeback; it never waits for the writeback.
func TestNeedsWriteback(t *testing.T) {
	_, b, f := newTest(t, Options{DirtyAge: time.Hour})
	if f.NeedsWriteback(0, 1<<20) {
		t.Fatal("empty file needs writeback")
	}
	mustWrite(t, f, b, fill(PageSize, 1), 2*PageSize)
	for _, c := range []struct {
		off, n int64
		want   bool
	}{
		{0, 2 * PageSize, false},
		{0, 2*PageSize + 1, true},
		{3*PageSize - 1, 1, true},
		{3 * PageSize, 1 << 20, false},
		{0, 0, false},
		{-1, 10, false},
		{0, -1, false},
		{MaxFileSize, 1, false},
	} {
		if got := f.NeedsWriteback(c.off, c.n); got != c.want {
			t.Errorf("dirty: NeedsWriteback(%d, %d) = %v, want %v", c.off, c.n, got, c.want)
		}
	}
	b.mu.Lock()
	b.gate, b.entered = make(chan struct{}), make(chan struct{}, 1)
	wgate := b.gate
	b.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- f.WriteAndWait(0, 1<<20) }()
	<-b.entered // the page is under writeback (clean)
	if !f.NeedsWriteback(2*PageSize, PageSize) {
		t.Error("page under writeback: NeedsWriteback = false")
	}
	b.mu.Lock()
	b.gate = nil
	b.mu.Unlock()
	close(wgate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.NeedsWriteback(0, 1<<20) {
		t.Error("clean after WriteAndWait: NeedsWriteback = true")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f.NeedsWriteback(0, 1<<20) {
		t.Error("closed file: NeedsWriteback = true")
	}
	if err := f.Invalidate(0, 1); !errors.Is(err, syscall.EBADF) {
		t.Errorf("Invalidate after Close: %v, want EBADF", err)
	}
}

// TestReadsNeverOlderThanCompletedDirectWrites: readers (random and
// sequential, so readahead runs) race a "direct writer" that puts version v
// on the disk of the whole file, then invalidates, then publishes v as
// completed. A read that starts after version v completed must not return a
// byte older than v.
func TestReadsNeverOlderThanCompletedDirectWrites(t *testing.T) {
	const pages = 64
	c := New(Options{DirtyAge: time.Hour})
	t.Cleanup(func() { c.Close() })
	b := &memBacking{size: pages * PageSize, disk: make([]byte, pages*PageSize)}
	f := c.Open(b)
	var completed atomic.Int32
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, 4)
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			p := make([]byte, 3*PageSize)
			off := int64(0)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if r != 0 || off+int64(len(p)) > pages*PageSize {
					off = rng.Int64N(pages*PageSize - int64(len(p)))
				}
				lo := byte(completed.Load())
				if _, err := f.ReadAt(p, off); err != nil {
					errc <- err
					return
				}
				for i, x := range p {
					if x < lo {
						errc <- fmt.Errorf("read at %d: byte %d is version %d, but version %d had completed before the read", off, off+int64(i), x, lo)
						return
					}
				}
				off += int64(len(p)) // reader 0 reads sequentially
			}
		}()
	}
	for v := 1; v <= 200; v++ {
		b.mu.Lock()
		for i := range b.disk {
			b.disk[i] = byte(v)
		}
		b.mu.Unlock()
		if err := f.Invalidate(0, pages*PageSize); err != nil {
			t.Errorf("Invalidate: %v", err)
		}
		completed.Store(int32(v))
		runtime.Gosched()
	}
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}
