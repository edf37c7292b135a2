package pagecache

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor polls cond (no timing assertion: the deadline only turns a hang
// into a failure).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
		runtime.Gosched()
	}
}

func fill(n int, v byte) []byte { return bytes.Repeat([]byte{v}, n) }

func newTest(t *testing.T, o Options) (*Cache, *memBacking, *File) {
	t.Helper()
	c := New(o)
	t.Cleanup(func() { c.Close() })
	b := &memBacking{}
	return c, b, c.Open(b)
}

func mustWrite(t *testing.T, f *File, b *memBacking, p []byte, off int64) {
	t.Helper()
	if n, err := f.WriteAt(p, off); err != nil || n != len(p) {
		t.Fatalf("WriteAt(%d, %d) = %d, %v", len(p), off, n, err)
	}
	if end := off + int64(len(p)); end > b.Size() {
		b.setSize(end)
	}
}

func TestCloseStopsFlusher(t *testing.T) {
	defer goleak.VerifyNone(t)
	c := New(Options{DirtyAge: time.Millisecond})
	b := &memBacking{}
	f := c.Open(b)
	mustWrite(t, f, b, fill(3*PageSize, 7), 0)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// Close wrote the file back and closed it.
	if !bytes.Equal(b.diskAt(0, 3*PageSize), fill(3*PageSize, 7)) {
		t.Fatal("Cache.Close did not write back dirty pages")
	}
	if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("read after cache Close: %v, want EBADF", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Open(b).WriteAt([]byte{1}, 0); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("write to a file opened after Close: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	_, b, f := newTest(t, Options{})
	p := make([]byte, 10)
	for name, err := range map[string]error{
		"read neg":     second(f.ReadAt(p, -1)),
		"read huge":    second(f.ReadAt(p, MaxFileSize)),
		"write neg":    second(f.WriteAt(p, -1)),
		"invalidate":   f.Invalidate(-5, 1),
		"invalidate n": f.Invalidate(0, -1),
		"waw":          f.WriteAndWait(-1, 1),
		"waw overflow": f.WriteAndWait(1, 1<<62+MaxFileSize),
		"punch":        f.Punch(0, -1),
		"truncate":     f.Truncate(-1),
	} {
		if !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%s: %v, want EINVAL", name, err)
		}
	}
	if _, err := f.WriteAt(p, MaxFileSize-5); !errors.Is(err, syscall.EFBIG) {
		t.Errorf("write past max: %v, want EFBIG", err)
	}
	if err := f.Truncate(MaxFileSize + 1); !errors.Is(err, syscall.EFBIG) {
		t.Errorf("truncate past max: %v, want EFBIG", err)
	}
	mustWrite(t, f, b, p, 0)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"read":       second(f.ReadAt(p, 0)),
		"read0":      second(f.ReadAt(nil, 0)),
		"write":      second(f.WriteAt(p, 0)),
		"invalidate": f.Invalidate(0, 1),
		"waw":        f.WriteAndWait(0, 1),
		"punch":      f.Punch(0, 1),
		"truncate":   f.Truncate(0),
		"sync":       f.Sync(),
		"close":      f.Close(),
	} {
		if !errors.Is(err, syscall.EBADF) {
			t.Errorf("%s after Close: %v, want EBADF", name, err)
		}
	}
	if !bytes.Equal(b.diskAt(0, 10), p) {
		t.Error("Close did not write back")
	}
}

func second(_ int, err error) error { return err }

// TestWritebackErrorReportedOnce: an EIO from WritePages during background
// writeback is reported by the next Sync, once, and the data is not lost.
func TestWritebackErrorReportedOnce(t *testing.T) {
	c, b, f := newTest(t, Options{DirtyAge: time.Millisecond})
	data := fill(5*PageSize, 0x5A)
	b.setFail(true)
	mustWrite(t, f, b, data, 100)
	waitFor(t, "a background writeback error", func() bool { return c.Stats().WritebackErrors > 0 })
	// The pages stay dirty, data intact in the cache.
	got := make([]byte, len(data))
	if _, err := f.ReadAt(got, 100); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("data lost after failed writeback: %v", err)
	}
	if err := f.Invalidate(0, 1<<20); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("Invalidate of pages whose writeback failed: %v, want EBUSY", err)
	}
	if err := f.WriteAndWait(100, 10); !errors.Is(err, syscall.EIO) {
		t.Fatalf("WriteAndWait over failed pages: %v, want EIO", err)
	}
	b.setFail(false)
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("first Sync after background EIO: %v, want EIO", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("second Sync: %v, want nil (reported once)", err)
	}
	if !bytes.Equal(b.diskAt(100, int64(len(data))), data) {
		t.Fatal("data did not reach the disk after the error cleared")
	}
	if err := f.Invalidate(0, 1<<20); err != nil {
		t.Fatalf("Invalidate after successful Sync: %v", err)
	}
}

// TestBackgroundWritebackErrorLogged: a failed background writeback is
// logged to Options.Logger (with its errno), once per round. (Checked by
// hand: without the Warn in backgroundFlush it fails; the first version of
// the pipelined flusher had lost it.)
func TestBackgroundWritebackErrorLogged(t *testing.T) {
	var mu sync.Mutex // protects buf
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	c, b, f := newTest(t, Options{DirtyAge: time.Millisecond, Logger: log})
	b.setFail(true)
	mustWrite(t, f, b, fill(5*PageSize, 0x5A), 0)
	waitFor(t, "a background writeback error", func() bool { return c.Stats().WritebackErrors > 0 })
	waitFor(t, "the log line", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(buf.String(), "background writeback failed") && strings.Contains(buf.String(), "input/output error")
	})
	b.setFail(false)
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("first Sync after background EIO: %v, want EIO", err)
	}
}

// writerFunc adapts a function to io.Writer.
type writerFunc func(p []byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

// TestSyncErrorNotLost: a Sync whose own writeback fails reports EIO; the
// pages stay dirty, a later Sync retries them.
func TestSyncErrorNotLost(t *testing.T) {
	_, b, f := newTest(t, Options{DirtyAge: time.Hour})
	mustWrite(t, f, b, fill(PageSize, 1), 0)
	b.setFail(true)
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync: %v, want EIO", err)
	}
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("second Sync still failing: %v, want EIO", err)
	}
	b.setFail(false)
	if err := f.Sync(); err != nil {
		t.Fatalf("Sync after recovery: %v", err)
	}
	if !bytes.Equal(b.diskAt(0, PageSize), fill(PageSize, 1)) {
		t.Fatal("data lost")
	}
	// Close after a failed writeback reports the error too.
	mustWrite(t, f, b, fill(PageSize, 2), 0)
	b.setFail(true)
	if err := f.Close(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Close with failing writeback: %v, want EIO", err)
	}
}

// TestInvalidateBusy: Invalidate fails with EBUSY on dirty pages and on
// pages under writeback (also when dirtied again during it), never drops
// their data, and drops clean pages.
func TestInvalidateBusy(t *testing.T) {
	c, b, f := newTest(t, Options{DirtyAge: time.Hour})
	mustWrite(t, f, b, fill(2*PageSize, 1), 0)
	if err := f.Invalidate(0, 1); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("Invalidate dirty page: %v, want EBUSY", err)
	}
	// Hold writeback inside WritePages.
	b.mu.Lock()
	b.gate, b.entered = make(chan struct{}), make(chan struct{}, 1)
	gate := b.gate
	b.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- f.WriteAndWait(0, PageSize) }()
	<-b.entered
	if err := f.Invalidate(0, PageSize); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("Invalidate page under writeback: %v, want EBUSY", err)
	}
	// Dirty it again during writeback.
	mustWrite(t, f, b, fill(10, 9), 0)
	b.mu.Lock()
	b.gate = nil
	b.mu.Unlock()
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := f.Invalidate(0, PageSize); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("Invalidate page dirtied during writeback: %v, want EBUSY", err)
	}
	want := append(fill(10, 9), fill(PageSize-10, 1)...)
	got := make([]byte, PageSize)
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("data after redirty: %v", err)
	}
	if err := f.WriteAndWait(0, PageSize); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.diskAt(0, PageSize), want) {
		t.Fatal("WriteAndWait did not write the redirtied page")
	}
	before := c.Stats().Pages
	if err := f.Invalidate(0, PageSize); err != nil {
		t.Fatalf("Invalidate clean page: %v", err)
	}
	if c.Stats().Pages != before-1 {
		t.Fatalf("clean page not dropped: %d → %d pages", before, c.Stats().Pages)
	}
	// Page 1 is still dirty: EBUSY, and it is kept.
	if err := f.Invalidate(0, 2*PageSize); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("%v, want EBUSY", err)
	}
	// The dropped page is re-read from the disk.
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("re-read after invalidate: %v", err)
	}
}

// TestMemoryLimitWriteFlood: writers flooding the cache are throttled at the
// dirty limit (they wait while writeback is held, and resume), and neither
// resident nor dirty pages ever exceed their limits.
func TestMemoryLimitWriteFlood(t *testing.T) {
	c := New(Options{Limit: 4 << 20, DirtyLimit: 1 << 20, DirtyAge: time.Hour})
	defer c.Close()
	const files, per = 4, 3 << 20
	bs := make([]*memBacking, files)
	fs := make([]*File, files)
	gate := make(chan struct{})
	for i := range bs {
		bs[i] = &memBacking{gate: gate, entered: make(chan struct{}, 1), size: per}
		fs[i] = c.Open(bs[i])
	}
	var wg sync.WaitGroup
	var finished sync.Map
	errs := make(chan error, files)
	for i := range files {
		wg.Go(func() {
			buf := make([]byte, 64<<10)
			for off := int64(0); off < per; off += int64(len(buf)) {
				for k := range buf {
					buf[k] = byte(i + int(off>>12) + k>>12)
				}
				if _, err := fs[i].WriteAt(buf, off); err != nil {
					errs <- err
					return
				}
			}
			finished.Store(i, true)
		})
	}
	limit := c.Stats().DirtyLimit
	waitFor(t, "writers throttled at the dirty limit", func() bool {
		s := c.Stats()
		return s.ThrottleWaits > 0 && s.DirtyPages >= limit-chunkPages
	})
	finished.Range(func(k, v any) bool { t.Errorf("writer %v finished while writeback was held", k); return true })
	close(gate) // let writeback run: writers resume
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Read everything back (forces eviction of clean pages too).
	buf := make([]byte, 64<<10)
	for i := range files {
		for off := int64(0); off < per; off += int64(len(buf)) {
			if _, err := fs[i].ReadAt(buf, off); err != nil {
				t.Fatal(err)
			}
			for k := range buf {
				if buf[k] != byte(i+int(off>>12)+k>>12) {
					t.Fatalf("file %d off %d: wrong byte %d want %d disk %d", i, off+int64(k), buf[k], byte(i+int(off>>12)+k>>12), bs[i].diskAt(off+int64(k), 1)[0])
				}
			}
		}
		if err := fs[i].Sync(); err != nil {
			t.Fatal(err)
		}
	}
	s := c.Stats()
	if s.PeakPages > s.LimitPages {
		t.Errorf("resident pages peaked at %d > limit %d", s.PeakPages, s.LimitPages)
	}
	if s.PeakDirtyPages > s.DirtyLimit {
		t.Errorf("dirty pages peaked at %d > limit %d", s.PeakDirtyPages, s.DirtyLimit)
	}
	if s.Evictions == 0 {
		t.Error("no evictions although files exceed the limit")
	}
	t.Logf("stats: %+v", s)
}

// TestConcurrent runs readers, writers, the flusher, invalidation, punch,
// Sync and eviction at once under -race; each writer owns a region and
// writes whole pages with one byte value, so every page read must be
// uniform, and at the end cache and disk must agree with the last values.
func TestConcurrent(t *testing.T) {
	c := New(Options{Limit: 4 << 20, DirtyLimit: 1 << 20, DirtyAge: time.Millisecond})
	defer c.Close()
	b := &memBacking{}
	f := c.Open(b)
	const writers, region = 4, 512 * PageSize // 8 MiB in total: more than the limit
	b.setSize(writers * region)
	last := make([][]byte, writers) // last value per page, per writer
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, 32)
	report := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	for w := range writers {
		last[w] = make([]byte, region/PageSize)
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 600 {
				pg := r.IntN(region/PageSize - 4)
				n := 1 + r.IntN(4)
				v := byte(1 + r.IntN(250))
				if _, err := f.WriteAt(fill(n*PageSize, v), int64(w*region+pg*PageSize)); err != nil {
					report(err)
					return
				}
				for k := range n {
					last[w][pg+k] = v
				}
			}
		})
	}
	var bg sync.WaitGroup
	for r := range 3 {
		bg.Go(func() {
			rr := rand.New(rand.NewPCG(uint64(r), 2))
			buf := make([]byte, 8*PageSize)
			for {
				select {
				case <-stop:
					return
				default:
				}
				off := int64(rr.IntN(writers*region/PageSize-8)) * PageSize
				if r == 0 { // sequential-ish reader: readahead
					off = 0
					for off < writers*region-int64(len(buf)) {
						if _, err := f.ReadAt(buf, off); err != nil {
							report(err)
							return
						}
						off += int64(len(buf))
					}
					continue
				}
				if _, err := f.ReadAt(buf, off); err != nil {
					report(err)
					return
				}
				for p := 0; p < len(buf); p += PageSize {
					if !bytes.Equal(buf[p:p+PageSize], fill(PageSize, buf[p])) {
						report(fmt.Errorf("torn page at %d", off+int64(p)))
						return
					}
				}
			}
		})
	}
	bg.Go(func() {
		rr := rand.New(rand.NewPCG(9, 9))
		for {
			select {
			case <-stop:
				return
			default:
			}
			off := int64(rr.IntN(writers*region/PageSize)) * PageSize
			switch rr.IntN(3) {
			case 0:
				if err := f.WriteAndWait(off, 16*PageSize); err != nil {
					report(err)
				}
			case 1:
				if err := f.Invalidate(off, 16*PageSize); err != nil && !errors.Is(err, syscall.EBUSY) {
					report(err)
				}
			case 2:
				if err := f.Sync(); err != nil {
					report(err)
				}
			}
		}
	})
	wg.Wait()
	close(stop)
	bg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, PageSize)
	for w := range writers {
		for pg, v := range last[w] {
			off := int64(w*region + pg*PageSize)
			if _, err := f.ReadAt(buf, off); err != nil || !bytes.Equal(buf, fill(PageSize, v)) {
				t.Fatalf("cache page at %d: want %d (err %v)", off, v, err)
			}
			if !bytes.Equal(b.diskAt(off, PageSize), fill(PageSize, v)) {
				t.Fatalf("disk page at %d: want %d", off, v)
			}
		}
	}
	s := c.Stats()
	if s.PeakPages > s.LimitPages || s.PeakDirtyPages > s.DirtyLimit {
		t.Fatalf("limits exceeded: %+v", s)
	}
	if b.bad != nil {
		t.Fatal(b.bad)
	}
}

// TestConcurrentTruncatePunch races truncate/punch with writers and
// readers: nothing may deadlock, panic or race, and the accounting must
// return to zero at Close.
func TestConcurrentTruncatePunch(t *testing.T) {
	c := New(Options{Limit: 4 << 20, DirtyLimit: 1 << 20, DirtyAge: time.Millisecond})
	defer c.Close()
	b := &memBacking{}
	f := c.Open(b)
	b.setSize(64 * PageSize)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 3))
			buf := make([]byte, 3*PageSize+100)
			for range 400 {
				off := int64(r.IntN(60 * PageSize))
				var err error
				switch r.IntN(6) {
				case 0, 1:
					_, err = f.WriteAt(buf[:r.IntN(len(buf))], off)
				case 2:
					_, err = f.ReadAt(buf, off)
				case 3:
					err = f.Truncate(off)
				case 4:
					err = f.Punch(off, int64(r.IntN(5*PageSize)))
				case 5:
					err = f.WriteAndWait(off, PageSize)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Pages != 0 || s.DirtyPages != 0 {
		t.Fatalf("accounting after Close: %+v", s)
	}
}

// TestReadahead: sequential reads fetch ahead in growing runs (few
// ReadPages calls), random reads do not read ahead.
func TestReadahead(t *testing.T) {
	_, b, f := newTest(t, Options{Limit: 64 << 20})
	const size = 8 << 20
	b.disk = make([]byte, size)
	for i := range b.disk {
		b.disk[i] = byte(i >> 12)
	}
	b.size = size
	buf := make([]byte, PageSize)
	for off := int64(0); off < size; off += PageSize {
		if _, err := f.ReadAt(buf, off); err != nil || buf[0] != byte(off>>12) {
			t.Fatalf("read %d: %v", off, err)
		}
	}
	seqReads := b.reads
	if seqReads > size/PageSize/16 {
		t.Fatalf("sequential 4 KiB reads of 8 MiB took %d ReadPages calls; readahead missing", seqReads)
	}
	// Random reads of a new file read only what they need.
	_, b2, f2 := newTest(t, Options{Limit: 64 << 20})
	b2.disk = make([]byte, size)
	b2.size = size
	r := rand.New(rand.NewPCG(1, 1))
	for range 100 {
		if _, err := f2.ReadAt(buf[:100], int64(r.IntN(size/PageSize))*PageSize+1); err != nil {
			t.Fatal(err)
		}
	}
	if s := f2.c.Stats(); s.Pages > 100 {
		t.Fatalf("random reads cached %d pages for 100 one-page reads: readahead not reset", s.Pages)
	}
	t.Logf("sequential: %d ReadPages calls for %d pages", seqReads, size/PageSize)
}

// TestThrottledWriterFailsOnWritebackError: a writer waiting for the dirty
// limit while writeback fails gets EIO instead of waiting forever.
func TestThrottledWriterFailsOnWritebackError(t *testing.T) {
	_, b, f := newTest(t, Options{Limit: 4 << 20, DirtyLimit: 256 << 10, DirtyAge: time.Hour})
	b.setFail(true)
	var err error
	for off := int64(0); off < 4<<20 && err == nil; off += 64 << 10 {
		_, err = f.WriteAt(make([]byte, 64<<10), off)
	}
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("flood with failing writeback: %v, want EIO", err)
	}
	b.setFail(false)
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync: %v, want the recorded EIO", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestManyGoroutinesSmallCache: many writers and readahead readers on the
// smallest cache must all make progress (no memory or dirty-limit
// deadlock) and the limits must hold.
func TestManyGoroutinesSmallCache(t *testing.T) {
	c := New(Options{Limit: 4 << 20, DirtyLimit: 2 << 20, DirtyAge: time.Millisecond})
	defer c.Close()
	const nf = 4
	var files [nf]*File
	for i := range files {
		files[i] = c.Open(&memBacking{size: 4 << 20, disk: make([]byte, 4<<20)})
	}
	var wg sync.WaitGroup
	for g := range 24 {
		wg.Go(func() {
			f := files[g%nf]
			buf := make([]byte, 256<<10+123)
			r := rand.New(rand.NewPCG(uint64(g), 5))
			for range 8 {
				off := int64(r.IntN(3 << 20))
				var err error
				if g%2 == 0 {
					_, err = f.WriteAt(buf, off)
				} else {
					for o := int64(0); o < 4<<20-int64(len(buf)) && err == nil; o += int64(len(buf)) {
						_, err = f.ReadAt(buf, o)
					}
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	s := c.Stats()
	if s.PeakPages > s.LimitPages || s.PeakDirtyPages > s.DirtyLimit {
		t.Fatalf("limits exceeded: %+v", s)
	}
}

// TestWrittenPastSizeNotZeroFilled: a page written past Backing.Size (the
// layer above has not raised the size yet), written back and dropped, is
// read back from the disk, not zero-filled as "past EOF".
func TestWrittenPastSizeNotZeroFilled(t *testing.T) {
	_, b, f := newTest(t, Options{})
	data := fill(PageSize+10, 3)
	if _, err := f.WriteAt(data, 5*PageSize); err != nil {
		t.Fatal(err)
	}
	if err := f.WriteAndWait(0, 1<<30); err != nil {
		t.Fatal(err)
	}
	if err := f.Invalidate(0, 1<<30); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := f.ReadAt(got, 5*PageSize); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back after eviction with size still 0: %v", err)
	}
	if b.Size() != 0 {
		t.Fatal("test expects the backing size untouched")
	}
}

// TestDirtyAgeWriteback: the flusher writes a dirty file back on its own
// once it is older than DirtyAge (no Sync).
func TestDirtyAgeWriteback(t *testing.T) {
	_, b, f := newTest(t, Options{DirtyAge: time.Millisecond})
	data := fill(3*PageSize+5, 0x42)
	mustWrite(t, f, b, data, 7)
	waitFor(t, "background writeback by age", func() bool {
		return bytes.Equal(b.diskAt(7, int64(len(data))), data)
	})
	waitFor(t, "pages clean", func() bool { return f.c.Stats().DirtyPages == 0 })
}

// TestDirectIOSequence plays the I5 sequence the direct path uses (seeds
// 001 and 004): dirty cached data is written back before the direct op,
// clean pages are invalidated before and after it, and a later buffered
// read sees the direct write, not the stale cached page.
func TestDirectIOSequence(t *testing.T) {
	_, b, f := newTest(t, Options{DirtyAge: time.Hour})
	mustWrite(t, f, b, fill(4*PageSize, 1), 0)
	// Before the direct write: Invalidate alone must refuse (dirty).
	if err := f.Invalidate(PageSize, 2*PageSize); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("Invalidate before write-back: %v, want EBUSY", err)
	}
	if err := f.WriteAndWait(PageSize, 2*PageSize); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.diskAt(PageSize, 2*PageSize), fill(2*PageSize, 1)) {
		t.Fatal("WriteAndWait did not put the range on disk (seed 001)")
	}
	if err := f.Invalidate(PageSize, 2*PageSize); err != nil {
		t.Fatal(err)
	}
	// "Direct write" straight to the disk.
	b.mu.Lock()
	copy(b.disk[PageSize:], fill(2*PageSize, 2))
	b.mu.Unlock()
	if err := f.Invalidate(PageSize, 2*PageSize); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4*PageSize)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := append(append(fill(PageSize, 1), fill(2*PageSize, 2)...), fill(PageSize, 1)...)
	if !bytes.Equal(got, want) {
		t.Fatal("buffered read after direct write returned stale cached data (seed 004)")
	}
}

// TestENOSPCAtWriteback: with delayed allocation a full volume shows up at
// Sync with ENOSPC (errno kept); Truncate drops the stuck dirty pages.
func TestENOSPCAtWriteback(t *testing.T) {
	c, b, f := newTest(t, Options{DirtyAge: time.Hour})
	b.mu.Lock()
	b.failWrite, b.failErrno = true, syscall.ENOSPC
	b.mu.Unlock()
	mustWrite(t, f, b, fill(3*PageSize, 1), 0)
	if err := f.Sync(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Sync on a full volume: %v, want ENOSPC", err)
	}
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	b.truncate(0)
	if s := c.Stats(); s.DirtyPages != 0 || s.Pages != 0 {
		t.Fatalf("Truncate(0) left %+v", s)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("Sync after Truncate: %v", err)
	}
}
