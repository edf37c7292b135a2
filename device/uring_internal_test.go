package device

import (
	"bytes"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/aiodio/aiodio/internal/alignbuf"
	"github.com/aiodio/aiodio/internal/testenv"
	"github.com/aiodio/aiodio/internal/uring"
)

// TestUringRetries feeds the engine's completion handler the results the
// kernel may give (EAGAIN, EINTR, a short transfer, a hard error) for a
// request it owns, and checks each is retried for exactly the remainder or
// reported once.
func TestUringRetries(t *testing.T) {
	perr := uring.Probe()
	testenv.Need(t, "io_uring", perr == nil, "io_uring_setup failed")
	dev, err := Open(filepath.Join(t.TempDir(), "img"), OpenOptions{Engine: "uring", Create: true, Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	d := dev.(*uringDev)
	want := alignbuf.Alloc(16384)
	for i := range want {
		want[i] = byte(i*13 + 5)
	}
	done := make(chan *Request, 1)
	w := &Request{Kind: Write, Buf: want, Done: func(r *Request) { done <- r }}
	if _, err := d.Submit(w); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Err != nil {
		t.Fatal(r.Err)
	}

	// fake takes a slot for r as Submit would, then delivers res for it as
	// if the kernel had completed its first SQE with res.
	fake := func(r *Request, res int32) {
		d.mu.Lock()
		i := d.free[len(d.free)-1]
		d.free = d.free[:len(d.free)-1]
		d.pending++
		d.mu.Unlock()
		s := &d.slots[i]
		s.req, s.done, s.total = r, 0, r.Len()
		d.complete(uint64(i), res)
	}
	for _, c := range []struct {
		name string
		res  int32
	}{
		{"EAGAIN", -int32(syscall.EAGAIN)},
		{"EINTR", -int32(syscall.EINTR)},
		{"short 512", 512},
		{"short 12288", 12288},
	} {
		got := alignbuf.Alloc(16384)
		r := &Request{Kind: Read, Buf: got, Done: func(r *Request) { done <- r }}
		if c.res > 0 {
			// The "first part" must really be there: fill it like the kernel would have.
			copy(got[:c.res], want[:c.res])
		}
		fake(r, c.res)
		r = <-done
		if r.Err != nil || r.N != len(got) || !bytes.Equal(got, want) {
			t.Fatalf("%s: N=%d err=%v equal=%v; want the whole read retried", c.name, r.N, r.Err, bytes.Equal(got, want))
		}
	}
	// A vectored read with a short first completion ending inside buffer 1.
	bufs := [][]byte{alignbuf.Alloc(4096), alignbuf.Alloc(8192), alignbuf.Alloc(4096)}
	copy(bufs[0], want[:4096])
	copy(bufs[1][:2048], want[4096:6144])
	r := &Request{Kind: Read, Bufs: bufs, Done: func(r *Request) { done <- r }}
	fake(r, 6144)
	r = <-done
	if r.Err != nil || r.N != 16384 || !bytes.Equal(bytes.Join(bufs, nil), want) {
		t.Fatalf("vectored short: N=%d err=%v", r.N, r.Err)
	}
	// A hard error is reported once, with the errno and no retry.
	r = &Request{Kind: Read, Buf: alignbuf.Alloc(4096), Done: func(r *Request) { done <- r }}
	fake(r, -int32(syscall.EIO))
	r = <-done
	if !errors.Is(r.Err, syscall.EIO) || r.N != 0 {
		t.Fatalf("EIO: N=%d err=%v", r.N, r.Err)
	}
	select {
	case r := <-done:
		t.Fatalf("extra completion %+v", r)
	default:
	}
}

func TestUringRegisteredBuffers(t *testing.T) {
	perr := uring.Probe()
	testenv.Need(t, "io_uring", perr == nil, "io_uring_setup failed")
	dev, err := Open(filepath.Join(t.TempDir(), "img"), OpenOptions{Engine: "uring", Create: true, Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	reg, ok := dev.(BufferRegistrar)
	if !ok {
		t.Fatal("uring device does not implement BufferRegistrar")
	}
	arena := alignbuf.Alloc(64 << 10)
	if err := reg.RegisterBuffers([][]byte{arena[:32<<10], arena[32<<10:]}); err != nil {
		t.Fatal(err)
	}
	if err := reg.RegisterBuffers([][]byte{arena}); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("second registration: %v, want EBUSY", err)
	}
	d := dev.(*uringDev)
	tab := d.fixed.table.Load()
	if i, ok := tab.find(uintptr(unsafe.Pointer(&arena[32<<10])), 4096); !ok || i != 1 {
		t.Fatalf("find in buffer 1: %d %v", i, ok)
	}
	if _, ok := tab.find(uintptr(unsafe.Pointer(&arena[30<<10])), 4096); ok {
		t.Fatal("a range straddling two registered buffers must not be fixed")
	}
	done := make(chan *Request, 1)
	cb := func(r *Request) { done <- r }
	run := func(r *Request) {
		t.Helper()
		r.Done = cb
		if _, err := d.Submit(r); err != nil {
			t.Fatal(err)
		}
		<-done
		if r.Err != nil || r.N != r.Len() {
			t.Fatalf("%v: N=%d err=%v", r.Kind, r.N, r.Err)
		}
	}
	src := arena[36<<10 : 44<<10] // inside buffer 1: WRITE_FIXED
	for i := range src {
		src[i] = byte(i*3 + 1)
	}
	run(&Request{Kind: Write, Off: 8192, Buf: src})
	dst := arena[4<<10 : 12<<10] // inside buffer 0: READ_FIXED
	run(&Request{Kind: Read, Off: 8192, Buf: dst})
	if !bytes.Equal(dst, src) {
		t.Fatal("fixed read differs from fixed write")
	}
	straddle := arena[28<<10 : 36<<10] // across both: plain READ
	run(&Request{Kind: Read, Off: 8192, Buf: straddle})
	if !bytes.Equal(straddle, src) {
		t.Fatal("plain read differs")
	}
	other := alignbuf.Alloc(8192) // not registered
	run(&Request{Kind: Read, Off: 8192, Buf: other})
	if !bytes.Equal(other, src) {
		t.Fatal("unregistered read differs")
	}
	if _, err := newFixedTable([][]byte{arena[:8192], arena[4096:12288]}); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("overlapping buffers: %v, want EINVAL", err)
	}
	if _, err := newFixedTable(nil); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("no buffers: %v, want EINVAL", err)
	}
}

// TestUringRegisterBuffersWhileBusy registers buffers while the reaper is
// busy completing (and resubmitting) requests. A single-issuer ring runs
// the registration on the reaper's thread, so RegisterBuffers must not hold
// the device mutex while it waits for the reaper: completions take it.
// (Checked by hand: holding d.mu across q.RegisterBuffers, as the first
// single-issuer version did, deadlocks here.)
func TestUringRegisterBuffersWhileBusy(t *testing.T) {
	perr := uring.Probe()
	testenv.Need(t, "io_uring", perr == nil, "io_uring_setup failed")
	dev, err := Open(filepath.Join(t.TempDir(), "img"), OpenOptions{Engine: "uring", Create: true, Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var inflight sync.WaitGroup
	reqs := make([]Request, 16)
	for i := range reqs {
		r := &reqs[i]
		*r = Request{Kind: Read, Off: int64(i) * 4096, Buf: alignbuf.Alloc(4096)}
		r.Done = func(r *Request) {
			if r.Err != nil || stop.Load() {
				inflight.Done()
				return
			}
			if _, err := dev.Submit(r); err != nil {
				inflight.Done()
			}
		}
		inflight.Add(1)
		if _, err := dev.Submit(r); err != nil {
			t.Fatal(err)
		}
	}
	registered := make(chan error, 1)
	go func() {
		registered <- dev.(BufferRegistrar).RegisterBuffers([][]byte{alignbuf.Alloc(64 << 10)})
	}()
	select {
	case err := <-registered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RegisterBuffers did not return within 10 s while requests completed (deadlock)")
	}
	stop.Store(true)
	inflight.Wait()
	for i := range reqs {
		if reqs[i].Err != nil {
			t.Fatalf("request %d: %v", i, reqs[i].Err)
		}
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
}
