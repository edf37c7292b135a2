package devicetest

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/alignbuf"
)

// Options tunes the suite for a backend.
type Options struct {
	// InjectEIO, when set, makes every later request touching [off, off+n)
	// of dev fail with EIO. The suite then checks that a read of that range
	// fails with EIO, and that a read elsewhere still succeeds.
	InjectEIO func(dev device.Device, off int64, n int)
	// SkipLeakCheck disables the goleak check (for backends whose goroutines
	// are owned by something outliving the device).
	SkipLeakCheck bool
}

// Run runs the conformance suite against devices made by open.
func Run(t *testing.T, open func(t *testing.T) device.Device) {
	t.Helper()
	RunWith(t, open, Options{})
}

// RunWith runs the conformance suite with options.
func RunWith(t *testing.T, open func(t *testing.T) device.Device, o Options) {
	t.Helper()
	s := &suite{open: open, o: o}
	t.Run("Info", s.info)
	t.Run("ReadAfterWrite", s.readAfterWrite)
	t.Run("Vectored", s.vectored)
	t.Run("Flush", s.flush)
	t.Run("ConcurrentSubmitters", s.concurrent)
	t.Run("Misaligned", s.misaligned)
	t.Run("OutOfRange", s.outOfRange)
	t.Run("BadRequests", s.badRequests)
	t.Run("PartialBatch", s.partialBatch)
	t.Run("SubmitFromDone", s.submitFromDone)
	t.Run("CloseDrains", s.closeDrains)
	t.Run("SubmitAfterClose", s.submitAfterClose)
	if o.InjectEIO != nil {
		t.Run("InjectedEIO", s.injectedEIO)
	}
}

type suite struct {
	open func(t *testing.T) device.Device
	o    Options
}

// start opens a device and arranges the leak check after it is closed.
func (s *suite) start(t *testing.T) device.Device {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	d := s.open(t)
	if d == nil {
		t.Fatal("open returned a nil device")
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if !s.o.SkipLeakCheck {
			goleak.VerifyNone(t, ignore)
		}
	})
	return d
}

// waiter collects completions of requests it armed.
type waiter struct {
	wg    sync.WaitGroup
	mu    sync.Mutex // protects calls
	calls map[*device.Request]int
}

func newWaiter() *waiter { return &waiter{calls: map[*device.Request]int{}} }

func (w *waiter) arm(r *device.Request) *device.Request {
	w.wg.Add(1)
	r.Done = w.done
	return r
}

func (w *waiter) done(r *device.Request) {
	w.mu.Lock()
	w.calls[r]++
	n := w.calls[r]
	w.mu.Unlock()
	if n == 1 {
		w.wg.Done()
	}
}

// check fails unless every request in reqs completed exactly once.
func (w *waiter) check(t *testing.T, reqs ...*device.Request) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range reqs {
		if c := w.calls[r]; c != 1 {
			t.Errorf("%v request at %d: Done called %d times, want 1", r.Kind, r.Off, c)
		}
	}
}

// do submits reqs, all of which must be accepted, waits for them and checks
// exactly-once completion.
func do(t *testing.T, d device.Device, reqs ...*device.Request) {
	t.Helper()
	w := newWaiter()
	for _, r := range reqs {
		w.arm(r)
	}
	n, err := d.Submit(reqs...)
	if err != nil || n != len(reqs) {
		t.Fatalf("Submit: %d of %d accepted: %v", n, len(reqs), err)
	}
	w.wg.Wait()
	w.check(t, reqs...)
}

func mustOK(t *testing.T, r *device.Request) {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("%v at %d: %v", r.Kind, r.Off, r.Err)
	}
	if want := r.Len(); r.Kind != device.Flush && r.N != want {
		t.Fatalf("%v at %d: N = %d, want %d", r.Kind, r.Off, r.N, want)
	}
}

func pattern(seed uint64, n int) []byte {
	b := alignbuf.Alloc(n)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func blockSize(d device.Device) int {
	if lbs := d.Info().LogicalBlockSize; lbs > 0 {
		return lbs
	}
	return 512
}

func isPow2(n int) bool { return n > 0 && n&(n-1) == 0 }

func (s *suite) info(t *testing.T) {
	d := s.start(t)
	in := d.Info()
	if in.Size <= 0 {
		t.Errorf("Size = %d, want > 0", in.Size)
	}
	if !isPow2(in.LogicalBlockSize) {
		t.Errorf("LogicalBlockSize = %d, want a power of two", in.LogicalBlockSize)
	}
	if !isPow2(in.PhysicalBlockSize) || in.PhysicalBlockSize < in.LogicalBlockSize {
		t.Errorf("PhysicalBlockSize = %d, want a power of two >= LogicalBlockSize %d", in.PhysicalBlockSize, in.LogicalBlockSize)
	}
	if !isPow2(in.MemAlign) {
		t.Errorf("MemAlign = %d, want a power of two", in.MemAlign)
	}
	if in.MaxIO < in.LogicalBlockSize || in.MaxIO%in.LogicalBlockSize != 0 {
		t.Errorf("MaxIO = %d, want a multiple of LogicalBlockSize %d", in.MaxIO, in.LogicalBlockSize)
	}
	if in.Size%int64(in.LogicalBlockSize) != 0 {
		t.Errorf("Size %d not a multiple of LogicalBlockSize %d", in.Size, in.LogicalBlockSize)
	}
	if in.Engine == "" {
		t.Error("Engine is empty")
	}
	if d.Info() != in {
		t.Error("Info changed between calls")
	}
}

func (s *suite) readAfterWrite(t *testing.T) {
	d := s.start(t)
	in := d.Info()
	lbs := blockSize(d)
	n := min(4*lbs, in.MaxIO)
	if int64(n) > in.Size {
		n = int(in.Size)
	}
	offs := []int64{0, in.Size - int64(n), (in.Size / 2) / int64(lbs) * int64(lbs)}
	for i, off := range offs {
		if off+int64(n) > in.Size {
			off = in.Size - int64(n)
		}
		want := pattern(uint64(i+1), n)
		w := &device.Request{Kind: device.Write, Off: off, Buf: want}
		do(t, d, w)
		mustOK(t, w)
		got := alignbuf.Alloc(n)
		r := &device.Request{Kind: device.Read, Off: off, Buf: got}
		do(t, d, r)
		mustOK(t, r)
		if !bytes.Equal(got, want) {
			t.Fatalf("read at %d returned different bytes than written", off)
		}
	}
	// A larger request, up to MaxIO (bounded to keep tests fast).
	big := min(in.MaxIO, 1<<20)
	if int64(big) <= in.Size {
		want := pattern(99, big)
		w := &device.Request{Kind: device.Write, Off: 0, Buf: want}
		do(t, d, w)
		mustOK(t, w)
		got := alignbuf.Alloc(big)
		r := &device.Request{Kind: device.Read, Off: 0, Buf: got}
		do(t, d, r)
		mustOK(t, r)
		if !bytes.Equal(got, want) {
			t.Fatalf("read of %d bytes returned different bytes than written", big)
		}
	}
}

func (s *suite) vectored(t *testing.T) {
	d := s.start(t)
	lbs := blockSize(d)
	if int64(6*lbs) > d.Info().Size || 6*lbs > d.Info().MaxIO {
		t.Skip("device too small for the vectored test")
	}
	want := pattern(7, 6*lbs)
	off := int64(lbs)
	// Written as 1+3+2 blocks, read as 2+2+1+1 into separate buffers.
	wb := [][]byte{alignbuf.Alloc(lbs), alignbuf.Alloc(3 * lbs), alignbuf.Alloc(2 * lbs)}
	copy(wb[0], want[:lbs])
	copy(wb[1], want[lbs:4*lbs])
	copy(wb[2], want[4*lbs:])
	w := &device.Request{Kind: device.Write, Off: off, Bufs: wb}
	do(t, d, w)
	mustOK(t, w)
	rb := [][]byte{alignbuf.Alloc(2 * lbs), alignbuf.Alloc(2 * lbs), alignbuf.Alloc(lbs), alignbuf.Alloc(lbs)}
	r := &device.Request{Kind: device.Read, Off: off, Bufs: rb}
	do(t, d, r)
	mustOK(t, r)
	got := bytes.Join(rb, nil)
	if !bytes.Equal(got, want) {
		t.Fatal("vectored read returned different bytes than the vectored write stored")
	}
	// A plain read sees the same bytes.
	flat := alignbuf.Alloc(6 * lbs)
	r2 := &device.Request{Kind: device.Read, Off: off, Buf: flat}
	do(t, d, r2)
	mustOK(t, r2)
	if !bytes.Equal(flat, want) {
		t.Fatal("plain read after a vectored write returned different bytes")
	}
}

func (s *suite) flush(t *testing.T) {
	d := s.start(t)
	lbs := blockSize(d)
	want := pattern(3, lbs)
	w := &device.Request{Kind: device.Write, Off: 0, Buf: want}
	do(t, d, w)
	mustOK(t, w)
	f := &device.Request{Kind: device.Flush}
	do(t, d, f)
	if f.Err != nil || f.N != 0 {
		t.Fatalf("Flush: N=%d err=%v, want 0, nil", f.N, f.Err)
	}
	// Flush batched with writes, and a flush with stray fields set.
	w2 := &device.Request{Kind: device.Write, Off: int64(lbs), Buf: pattern(4, lbs)}
	f2 := &device.Request{Kind: device.Flush, Off: 12345, Buf: make([]byte, 3)}
	do(t, d, w2, f2)
	mustOK(t, w2)
	if f2.Err != nil {
		t.Fatalf("Flush with ignored fields: %v", f2.Err)
	}
	got := alignbuf.Alloc(lbs)
	r := &device.Request{Kind: device.Read, Off: 0, Buf: got}
	do(t, d, r)
	mustOK(t, r)
	if !bytes.Equal(got, want) {
		t.Fatal("data changed across Flush")
	}
}

func (s *suite) concurrent(t *testing.T) {
	d := s.start(t)
	in := d.Info()
	lbs := blockSize(d)
	const goroutines, perG = 8, 64
	slot := int64(lbs)
	if int64(goroutines*perG)*slot > in.Size {
		t.Skip("device too small for the concurrency test")
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			// Each goroutine writes its slots in batches of 8, then reads them back.
			w := newWaiter()
			reqs := make([]*device.Request, perG)
			datas := make([][]byte, perG)
			for i := range reqs {
				datas[i] = pattern(uint64(g*1000+i), lbs)
				reqs[i] = w.arm(&device.Request{Kind: device.Write, Off: int64(g*perG+i) * slot, Buf: datas[i]})
			}
			for i := 0; i < perG; i += 8 {
				if n, err := d.Submit(reqs[i : i+8]...); err != nil || n != 8 {
					errs <- err
					return
				}
			}
			w.wg.Wait()
			for _, r := range reqs {
				if r.Err != nil || r.N != lbs {
					errs <- errors.New("concurrent write failed: " + errString(r.Err))
					return
				}
			}
			rw := newWaiter()
			got := make([][]byte, perG)
			for i := range reqs {
				got[i] = alignbuf.Alloc(lbs)
				reqs[i] = rw.arm(&device.Request{Kind: device.Read, Off: int64(g*perG+i) * slot, Buf: got[i]})
				if n, err := d.Submit(reqs[i]); err != nil || n != 1 {
					errs <- err
					return
				}
			}
			rw.wg.Wait()
			for i, r := range reqs {
				if r.Err != nil || r.N != lbs {
					errs <- errors.New("concurrent read failed: " + errString(r.Err))
					return
				}
				if !bytes.Equal(got[i], datas[i]) {
					errs <- errors.New("concurrent read returned other bytes than written")
					return
				}
			}
			for _, m := range []map[*device.Request]int{w.calls, rw.calls} {
				for r, c := range m {
					if c != 1 {
						errs <- errors.New("Done called " + strconv.Itoa(c) + " times for request at " + strconv.FormatInt(r.Off, 10))
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func errString(err error) string {
	if err == nil {
		return "short transfer"
	}
	return err.Error()
}

// rejected submits r alone, which must be rejected with EINVAL whose message
// contains every string in want; and r must never complete.
func rejected(t *testing.T, d device.Device, r *device.Request, what string, want ...string) {
	t.Helper()
	var called atomic.Int32
	if r.Done == nil {
		r.Done = func(*device.Request) { called.Add(1) }
	}
	n, err := d.Submit(r)
	if n != 0 || err == nil {
		t.Fatalf("%s: Submit = %d, %v; want 0 and EINVAL", what, n, err)
	}
	if !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("%s: error %v does not wrap EINVAL", what, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not mention %q", what, err, w)
		}
	}
	// A later accepted request completing proves nothing was queued for r.
	f := &device.Request{Kind: device.Flush}
	do(t, d, f)
	if called.Load() != 0 {
		t.Fatalf("%s: rejected request was completed", what)
	}
}

func (s *suite) misaligned(t *testing.T) {
	d := s.start(t)
	in := d.Info()
	lbs := blockSize(d)
	if lbs > 1 {
		rejected(t, d, &device.Request{Kind: device.Read, Off: int64(lbs / 2), Buf: alignbuf.Alloc(lbs)},
			"misaligned offset", strconv.Itoa(lbs))
		rejected(t, d, &device.Request{Kind: device.Write, Off: int64(lbs) + 1, Buf: alignbuf.Alloc(lbs)},
			"offset off by one", strconv.Itoa(lbs))
		rejected(t, d, &device.Request{Kind: device.Read, Off: 0, Buf: alignbuf.Alloc(lbs + lbs/2)},
			"misaligned length", strconv.Itoa(lbs))
		rejected(t, d, &device.Request{Kind: device.Write, Off: 0, Buf: alignbuf.Alloc(lbs - 1)},
			"short length", strconv.Itoa(lbs))
		rejected(t, d, &device.Request{Kind: device.Write, Off: 0, Bufs: [][]byte{alignbuf.Alloc(lbs / 2), alignbuf.Alloc(lbs + lbs/2)}},
			"misaligned vector element length", strconv.Itoa(lbs))
	}
	if in.MemAlign > 1 {
		raw := alignbuf.Alloc(2*lbs + in.MemAlign)
		rejected(t, d, &device.Request{Kind: device.Read, Off: 0, Buf: raw[in.MemAlign/2 : in.MemAlign/2+lbs]},
			"misaligned buffer", strconv.Itoa(in.MemAlign))
		rejected(t, d, &device.Request{Kind: device.Write, Off: 0, Buf: raw[1 : 1+lbs]},
			"buffer off by one", strconv.Itoa(in.MemAlign))
		rejected(t, d, &device.Request{Kind: device.Write, Off: 0, Bufs: [][]byte{alignbuf.Alloc(lbs), raw[1 : 1+lbs]}},
			"misaligned second vector element", strconv.Itoa(in.MemAlign))
	}
}

func (s *suite) outOfRange(t *testing.T) {
	d := s.start(t)
	in := d.Info()
	lbs := blockSize(d)
	rejected(t, d, &device.Request{Kind: device.Read, Off: in.Size, Buf: alignbuf.Alloc(lbs)}, "read at end", "end")
	rejected(t, d, &device.Request{Kind: device.Write, Off: in.Size - int64(lbs), Buf: alignbuf.Alloc(2 * lbs)}, "write across end", "end")
	rejected(t, d, &device.Request{Kind: device.Read, Off: in.Size + 1<<30, Buf: alignbuf.Alloc(lbs)}, "read far past end")
	rejected(t, d, &device.Request{Kind: device.Read, Off: -int64(lbs), Buf: alignbuf.Alloc(lbs)}, "negative offset", "negative")
	if int64(in.MaxIO)+int64(lbs) <= in.Size {
		rejected(t, d, &device.Request{Kind: device.Read, Off: 0, Buf: alignbuf.Alloc(in.MaxIO + lbs)}, "over MaxIO", strconv.Itoa(in.MaxIO))
	}
	// The last block is fine.
	r := &device.Request{Kind: device.Read, Off: in.Size - int64(lbs), Buf: alignbuf.Alloc(lbs)}
	do(t, d, r)
	mustOK(t, r)
}

func (s *suite) badRequests(t *testing.T) {
	d := s.start(t)
	lbs := blockSize(d)
	if n, err := d.Submit(); n != 0 || err != nil {
		t.Fatalf("empty Submit = %d, %v; want 0, nil", n, err)
	}
	n, err := d.Submit(nil)
	if n != 0 || !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Submit(nil) = %d, %v; want 0, EINVAL", n, err)
	}
	n, err = d.Submit(&device.Request{Kind: device.Read, Buf: alignbuf.Alloc(lbs)})
	if n != 0 || !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Submit without Done = %d, %v; want 0, EINVAL", n, err)
	}
	rejected(t, d, &device.Request{Kind: device.Kind(200), Buf: alignbuf.Alloc(lbs)}, "unknown kind")
}

func (s *suite) partialBatch(t *testing.T) {
	d := s.start(t)
	lbs := blockSize(d)
	var calls [3]atomic.Int32
	var wg sync.WaitGroup
	mk := func(i int, off int64) *device.Request {
		return &device.Request{Kind: device.Write, Off: off, Buf: pattern(uint64(i), lbs), Done: func(*device.Request) {
			calls[i].Add(1)
			wg.Done()
		}}
	}
	good := mk(0, 0)
	bad := mk(1, 1) // misaligned offset
	after := mk(2, int64(lbs))
	wg.Add(1)
	n, err := d.Submit(good, bad, after)
	if n != 1 || !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Submit(good, bad, good) = %d, %v; want 1, EINVAL", n, err)
	}
	wg.Wait()
	do(t, d, &device.Request{Kind: device.Flush})
	if calls[0].Load() != 1 || calls[1].Load() != 0 || calls[2].Load() != 0 {
		t.Fatalf("completions = %d,%d,%d; want 1,0,0", calls[0].Load(), calls[1].Load(), calls[2].Load())
	}
	mustOK(t, good)
}

func (s *suite) submitFromDone(t *testing.T) {
	d := s.start(t)
	lbs := blockSize(d)
	// A chain of 50 requests, each submitted by the previous one's Done.
	const chain = 50
	var wg sync.WaitGroup
	wg.Add(chain)
	var failed atomic.Value
	buf := alignbuf.Alloc(lbs)
	left := chain
	var next func(r *device.Request)
	next = func(r *device.Request) {
		if r.Err != nil {
			failed.Store(r.Err)
		}
		left--
		wg.Done()
		if left == 0 {
			return
		}
		r.Off = int64(left%8) * int64(lbs)
		r.N, r.Err = 0, nil
		if _, err := d.Submit(r); err != nil {
			failed.Store(err)
			for ; left > 0; left-- {
				wg.Done()
			}
		}
	}
	r := &device.Request{Kind: device.Read, Off: 0, Buf: buf, Done: next}
	if _, err := d.Submit(r); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if v := failed.Load(); v != nil {
		t.Fatalf("resubmission from Done: %v", v)
	}
}

func (s *suite) closeDrains(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	d := s.open(t)
	in := d.Info()
	lbs := blockSize(d)
	const total = 256
	var done atomic.Int64
	var accepted int64
	for i := 0; i < total; i++ {
		k := device.Read
		if i%3 == 0 {
			k = device.Write
		}
		if i%50 == 49 {
			k = device.Flush
		}
		off := int64(i%64) * int64(lbs)
		if off+int64(lbs) > in.Size {
			off = 0
		}
		r := &device.Request{Kind: k, Off: off, Buf: alignbuf.Alloc(lbs), Done: func(r *device.Request) {
			if r.Err != nil {
				t.Errorf("request during close: %v", r.Err)
			}
			// A slow callback widens the window in which a Close that
			// does not wait for Done to return would be caught.
			time.Sleep(20 * time.Microsecond)
			done.Add(1)
		}}
		n, err := d.Submit(r)
		if err != nil || n != 1 {
			t.Fatalf("Submit: %v", err)
		}
		accepted++
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := done.Load(); got != accepted {
		t.Fatalf("Close returned with %d of %d accepted requests completed", got, accepted)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if !s.o.SkipLeakCheck {
		goleak.VerifyNone(t, ignore)
	}
}

func (s *suite) submitAfterClose(t *testing.T) {
	d := s.open(t)
	lbs := blockSize(d)
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var called atomic.Int32
	r := &device.Request{Kind: device.Read, Off: 0, Buf: alignbuf.Alloc(lbs), Done: func(*device.Request) { called.Add(1) }}
	n, err := d.Submit(r)
	if n != 0 || !errors.Is(err, syscall.EBADF) {
		t.Fatalf("Submit after Close = %d, %v; want 0, EBADF", n, err)
	}
	if !errors.Is(err, device.ErrClosed) {
		t.Errorf("Submit after Close: %v does not match device.ErrClosed", err)
	}
	n, err = d.Submit(&device.Request{Kind: device.Flush, Done: func(*device.Request) { called.Add(1) }})
	if n != 0 || !errors.Is(err, syscall.EBADF) {
		t.Fatalf("Flush after Close = %d, %v; want 0, EBADF", n, err)
	}
	if called.Load() != 0 {
		t.Fatal("a request submitted after Close was completed")
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func (s *suite) injectedEIO(t *testing.T) {
	d := s.start(t)
	lbs := blockSize(d)
	in := d.Info()
	if int64(8*lbs) > in.Size {
		t.Skip("device too small")
	}
	bad := int64(4 * lbs)
	s.o.InjectEIO(d, bad, lbs)
	r := &device.Request{Kind: device.Read, Off: bad, Buf: alignbuf.Alloc(lbs)}
	do(t, d, r)
	if !errors.Is(r.Err, syscall.EIO) {
		t.Fatalf("read of the injected range: err = %v, want EIO", r.Err)
	}
	// A request spanning the bad block fails too.
	r2 := &device.Request{Kind: device.Read, Off: bad - int64(lbs), Buf: alignbuf.Alloc(3 * lbs)}
	do(t, d, r2)
	if !errors.Is(r2.Err, syscall.EIO) {
		t.Fatalf("read spanning the injected range: err = %v, want EIO", r2.Err)
	}
	ok := &device.Request{Kind: device.Read, Off: 0, Buf: alignbuf.Alloc(lbs)}
	do(t, d, ok)
	mustOK(t, ok)
}
