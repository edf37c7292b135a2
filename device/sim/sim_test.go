package sim_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// aligned returns an n-byte buffer whose address is a multiple of 4096.
func aligned(n int) []byte {
	b := make([]byte, n+4096)
	a := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) & 4095)
	off := 0
	if a != 0 {
		off = 4096 - a
	}
	return b[off : off+n : off+n]
}

func filled(n int, v byte) []byte {
	b := aligned(n)
	for i := range b {
		b[i] = v
	}
	return b
}

func newDev(t *testing.T, o sim.Options) *sim.Device {
	t.Helper()
	d := sim.New(o)
	t.Cleanup(func() { d.Close() })
	return d
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// do submits one request and waits for its completion.
func do(t *testing.T, d device.Device, kind device.Kind, off int64, buf []byte) (int, error) {
	t.Helper()
	done := make(chan struct{})
	r := &device.Request{Kind: kind, Off: off, Buf: buf, Done: func(*device.Request) { close(done) }}
	if n, err := d.Submit(r); n != 1 {
		t.Fatalf("submit %v at %d: %v", kind, off, err)
	}
	<-done
	return r.N, r.Err
}

func mustDo(t *testing.T, d device.Device, kind device.Kind, off int64, buf []byte) {
	t.Helper()
	if _, err := do(t, d, kind, off, buf); err != nil {
		t.Fatalf("%v at %d: %v", kind, off, err)
	}
}

func TestInfoAndDefaults(t *testing.T) {
	d := newDev(t, sim.Options{})
	in := d.Info()
	if in.Size != sim.DefaultSize || in.LogicalBlockSize != 512 || in.PhysicalBlockSize != 512 ||
		in.MemAlign != 512 || in.MaxIO != sim.DefaultMaxIO || in.Engine != "sim" {
		t.Fatalf("info = %+v", in)
	}
	for _, o := range []sim.Options{
		{SectorSize: 1000},
		{SectorSize: 4096, PhysicalBlockSize: 512},
		{Size: 1000},
		{Size: -512},
		{Size: sim.MaxSize + 512},
		{Size: 4096, Image: make([]byte, 8192)},
		{MaxIO: 100},
		{Latency: -1},
	} {
		if _, err := sim.Open(o); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("Open(%+v) = %v, want EINVAL", o, err)
		}
	}
}

func TestReadAfterWriteVectored(t *testing.T) {
	d := newDev(t, sim.Options{Size: 1 << 20, Seed: 1})
	a, b := filled(512, 'a'), filled(1024, 'b')
	done := make(chan *device.Request, 1)
	w := &device.Request{Kind: device.Write, Off: 4096, Bufs: [][]byte{a, b}, Done: func(r *device.Request) { done <- r }}
	if _, err := d.Submit(w); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Err != nil || r.N != 1536 {
		t.Fatalf("write: n=%d err=%v", r.N, r.Err)
	}
	got := aligned(1536)
	if n, err := do(t, d, device.Read, 4096, got); err != nil || n != 1536 {
		t.Fatalf("read: n=%d err=%v", n, err)
	}
	want := append(bytes.Repeat([]byte{'a'}, 512), bytes.Repeat([]byte{'b'}, 1024)...)
	if !bytes.Equal(got, want) || !bytes.Equal(d.ReadRaw(4096, 1536), want) {
		t.Fatal("read back differs from what was written")
	}
	// Vectored read scatters.
	x, y := aligned(1024), aligned(512)
	r := &device.Request{Kind: device.Read, Off: 4096, Bufs: [][]byte{x, y}, Done: func(r *device.Request) { done <- r }}
	if _, err := d.Submit(r); err != nil {
		t.Fatal(err)
	}
	<-done
	if !bytes.Equal(append(x, y...), want) {
		t.Fatal("vectored read differs")
	}
	if n, err := do(t, d, device.Flush, 0, nil); err != nil || n != 0 {
		t.Fatalf("flush: n=%d err=%v", n, err)
	}
	if n, err := do(t, d, device.Write, 0, nil); err != nil || n != 0 {
		t.Fatalf("empty write: n=%d err=%v", n, err)
	}
}

func TestSubmitValidation(t *testing.T) {
	d := newDev(t, sim.Options{Size: 1 << 20, SectorSize: 4096, MemAlign: 512, MaxIO: 64 << 10})
	var calls atomic.Int32
	done := func(*device.Request) { calls.Add(1) }
	buf := aligned(8192)
	cases := []struct {
		name string
		r    *device.Request
		msg  string
	}{
		{"nil", nil, "nil request"},
		{"no done", &device.Request{Kind: device.Read, Buf: buf}, "Done"},
		{"kind", &device.Request{Kind: 7, Buf: buf, Done: done}, "unknown"},
		{"offset", &device.Request{Kind: device.Read, Off: 512, Buf: buf, Done: done}, "4096"},
		{"negative", &device.Request{Kind: device.Read, Off: -4096, Buf: buf, Done: done}, "negative"},
		{"length", &device.Request{Kind: device.Write, Buf: buf[:4608], Done: done}, "4096"},
		{"vec length", &device.Request{Kind: device.Write, Bufs: [][]byte{buf[:4096], buf[4096:4608]}, Done: done}, "4096"},
		{"address", &device.Request{Kind: device.Read, Buf: aligned(4097)[1:], Done: done}, "aligned to 512"},
		{"past end", &device.Request{Kind: device.Read, Off: 1<<20 - 4096, Buf: buf, Done: done}, "past the end"},
		{"maxio", &device.Request{Kind: device.Read, Buf: aligned(128 << 10), Done: done}, "max I/O"},
	}
	for _, c := range cases {
		n, err := d.Submit(c.r)
		if n != 0 || !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: Submit = %d, %v; want 0 and EINVAL mentioning %q", c.name, n, err, c.msg)
		}
	}
	// Partial acceptance: the requests before the bad one complete.
	ok := &device.Request{Kind: device.Write, Buf: buf[:4096], Done: done}
	bad := &device.Request{Kind: device.Write, Off: 100, Buf: buf[:4096], Done: done}
	never := &device.Request{Kind: device.Write, Buf: buf[:4096], Done: done}
	if n, err := d.Submit(ok, bad, never); n != 1 || !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Submit(ok, bad, never) = %d, %v", n, err)
	}
	// Double submission of an in-flight request is refused.
	d.SetHold(true)
	r := &device.Request{Kind: device.Read, Buf: buf[:4096], Done: done}
	if _, err := d.Submit(r); err != nil {
		t.Fatal(err)
	}
	if n, err := d.Submit(r); n != 0 || !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("double submit = %d, %v", n, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 2 {
		t.Fatalf("Done called %d times, want 2 (ok and r)", got)
	}
	if n, err := d.Submit(&device.Request{Kind: device.Flush, Done: done}); n != 0 || !errors.Is(err, syscall.EBADF) {
		t.Fatalf("submit after close = %d, %v; want EBADF", n, err)
	}
	if n, err := d.Submit(); n != 0 || err != nil {
		t.Fatalf("empty submit = %d, %v", n, err)
	}
	if err := d.Close(); err != nil {
		t.Fatal("second close:", err)
	}
}

// completionOrder submits n writes as held, releases them together and
// returns the submission numbers in completion order.
func completionOrder(t *testing.T, o sim.Options, n int) []uint64 {
	o.Hold = true
	d := sim.New(o)
	defer d.Close()
	var mu sync.Mutex
	var order []uint64
	var wg sync.WaitGroup
	reqs := make([]*device.Request, n)
	for i := range reqs {
		reqs[i] = &device.Request{Kind: device.Write, Off: int64(i) * 512, Buf: aligned(512), Ctx: uint64(i + 1),
			Done: func(r *device.Request) {
				mu.Lock()
				order = append(order, r.Ctx.(uint64))
				mu.Unlock()
				wg.Done()
			}}
	}
	wg.Add(n)
	if _, err := d.Submit(reqs...); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WaitHeld(ctx(t), n); err != nil {
		t.Fatal(err)
	}
	d.ReleaseAll()
	wg.Wait()
	// The log agrees with what Done saw.
	for i, e := range d.Log() {
		if e.SubmitSeq != order[i] || e.CompleteSeq != uint64(i+1) {
			t.Fatalf("log[%d] = %+v, Done order %v", i, e, order)
		}
	}
	return order
}

func TestDeterministicOrder(t *testing.T) {
	const n = 32
	a := completionOrder(t, sim.Options{Size: 64 << 10, Seed: 7}, n)
	b := completionOrder(t, sim.Options{Size: 64 << 10, Seed: 7}, n)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("same seed, different orders:\n%v\n%v", a, b)
	}
	reordered := false
	for seed := int64(0); seed < 5; seed++ {
		c := completionOrder(t, sim.Options{Size: 64 << 10, Seed: seed}, n)
		for i, s := range c {
			if s != uint64(i+1) {
				reordered = true
			}
		}
	}
	if !reordered {
		t.Fatal("no seed reordered completions")
	}
	differ := false
	for seed := int64(8); seed < 12 && !differ; seed++ {
		differ = fmt.Sprint(completionOrder(t, sim.Options{Size: 64 << 10, Seed: seed}, n)) != fmt.Sprint(a)
	}
	if !differ {
		t.Fatal("different seeds always give the same order")
	}
	o := completionOrder(t, sim.Options{Size: 64 << 10, Seed: 7, Ordered: true}, n)
	for i, s := range o {
		if s != uint64(i+1) {
			t.Fatalf("Ordered: completion order %v", o)
		}
	}
}

// TestDeterministicChain: requests submitted from Done and one batch without
// hold also complete in a seed-determined order.
func TestDeterministicChain(t *testing.T) {
	run := func(seed int64) string {
		d := sim.New(sim.Options{Seed: seed})
		defer d.Close()
		var log []string // only touched by Done, which runs on one goroutine
		var wg sync.WaitGroup
		left := 40
		var done func(r *device.Request)
		done = func(r *device.Request) {
			log = append(log, fmt.Sprint(r.Ctx))
			if left > 0 {
				left--
				next := &device.Request{Kind: device.Read, Off: int64(left) * 512, Buf: aligned(512), Ctx: left, Done: done}
				wg.Add(1)
				if _, err := d.Submit(next); err != nil {
					panic(err)
				}
			}
			wg.Done()
		}
		var batch []*device.Request
		for i := range 8 {
			batch = append(batch, &device.Request{Kind: device.Write, Off: int64(i) * 512, Buf: aligned(512), Ctx: -i, Done: done})
		}
		wg.Add(len(batch))
		if _, err := d.Submit(batch...); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		return strings.Join(log, ",")
	}
	if a, b := run(3), run(3); a != b {
		t.Fatalf("same seed, different orders:\n%s\n%s", a, b)
	}
}

func goid() string {
	var b [64]byte
	s := string(b[:runtime.Stack(b[:], false)])
	return strings.Fields(s)[1]
}

func TestDoneOnSimGoroutine(t *testing.T) {
	d := newDev(t, sim.Options{Seed: 1})
	me := goid()
	var other atomic.Bool
	done := make(chan struct{})
	r := &device.Request{Kind: device.Flush, Done: func(*device.Request) {
		other.Store(goid() != me)
		// Submitting from Done must not deadlock on the sim's lock.
		rr := &device.Request{Kind: device.Flush, Done: func(*device.Request) { close(done) }}
		if _, err := d.Submit(rr); err != nil {
			panic(err)
		}
	}}
	if _, err := d.Submit(r); err != nil {
		t.Fatal(err)
	}
	<-done
	if !other.Load() {
		t.Fatal("Done ran on the submitting goroutine")
	}
}

func TestHoldIfAndRelease(t *testing.T) {
	d := newDev(t, sim.Options{Seed: 2})
	d.HoldIf(func(r *device.Request) bool { return r.Kind == device.Write && r.Off == 8192 })
	mustDo(t, d, device.Write, 0, filled(512, 1)) // flows
	held := &device.Request{Kind: device.Write, Off: 8192, Buf: filled(512, 2), Ctx: "held"}
	var done atomic.Int32
	held.Done = func(*device.Request) { done.Add(1) }
	if _, err := d.Submit(held); err != nil {
		t.Fatal(err)
	}
	p, err := d.WaitFor(ctx(t), func(p *sim.Pending) bool { return p.Overlaps(8192, 1) })
	if err != nil {
		t.Fatal(err)
	}
	if p.Req != held || p.Kind != device.Write || p.Off != 8192 || p.Len != 512 || p.Seq != 2 {
		t.Fatalf("pending = %v %+v", p, p)
	}
	mustDo(t, d, device.Read, 0, aligned(512)) // still flows while a write is held
	if d.InFlight() != 1 || len(d.Held()) != 1 || done.Load() != 0 {
		t.Fatalf("inflight=%d held=%d done=%d", d.InFlight(), len(d.Held()), done.Load())
	}
	if d.ReadRaw(8192, 1)[0] != 0 {
		t.Fatal("held write reached the medium")
	}
	if err := d.Release(p); err != nil {
		t.Fatal(err)
	}
	<-p.Completed()
	if done.Load() != 1 || d.ReadRaw(8192, 1)[0] != 2 {
		t.Fatal("released write did not complete")
	}
	if err := d.Release(p); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("second release = %v", err)
	}
	d.HoldIf(nil)
	mustDo(t, d, device.Write, 8192, filled(512, 3))
	if s := d.Stats(); s.Held != 1 || s.Writes != 3 || s.Reads != 1 || s.Completed != 4 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestPeakInFlight(t *testing.T) {
	d := newDev(t, sim.Options{Hold: true})
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		r := &device.Request{Kind: device.Write, Off: int64(i) * 4096, Buf: aligned(4096), Done: func(*device.Request) { wg.Done() }}
		if _, err := d.Submit(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.WaitHeld(ctx(t), 3); err != nil {
		t.Fatal(err)
	}
	d.ReleaseAll()
	wg.Wait()
	if d.PeakInFlight() != 3 || d.InFlight() != 0 {
		t.Fatalf("peak=%d inflight=%d", d.PeakInFlight(), d.InFlight())
	}
	d.ResetPeak()
	if d.PeakInFlight() != 0 {
		t.Fatal("ResetPeak")
	}
}

// TestCopyAtCompletion proves the late-DMA check: the medium gets the bytes
// the buffer holds at completion, and a read fills its buffer at completion.
func TestCopyAtCompletion(t *testing.T) {
	d := newDev(t, sim.Options{Hold: true})
	buf := filled(4096, 'o') // "old"
	w := &device.Request{Kind: device.Write, Off: 0, Buf: buf, Done: func(*device.Request) {}}
	if _, err := d.Submit(w); err != nil {
		t.Fatal(err)
	}
	ps, err := d.WaitHeld(ctx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf { // the caller reuses its buffer too early
		buf[i] = 'n'
	}
	if err := d.Release(ps[0]); err != nil {
		t.Fatal(err)
	}
	<-ps[0].Completed()
	if got := d.ReadRaw(0, 4096); !bytes.Equal(got, bytes.Repeat([]byte{'n'}, 4096)) {
		t.Fatalf("medium has %q..., want the buffer's content at completion", got[:8])
	}

	rbuf := aligned(4096)
	r := &device.Request{Kind: device.Read, Off: 0, Buf: rbuf, Done: func(*device.Request) {}}
	if _, err := d.Submit(r); err != nil {
		t.Fatal(err)
	}
	ps, err = d.WaitHeld(ctx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if rbuf[0] != 0 {
		t.Fatal("read filled its buffer at submission")
	}
	d.WriteRaw(0, bytes.Repeat([]byte{'z'}, 512))
	d.ReleaseAll()
	<-ps[0].Completed()
	if rbuf[0] != 'z' || rbuf[512] != 'n' {
		t.Fatalf("read got %q %q, want the medium at completion", rbuf[0], rbuf[512])
	}
}

func TestFlushMakesEarlierWritesDurable(t *testing.T) {
	d := newDev(t, sim.Options{Size: 64 << 10, Seed: 5})
	mustDo(t, d, device.Write, 0, filled(512, 'a'))
	if d.Unflushed() != 1 || d.DurableImage()[0] != 0 || d.ReadRaw(0, 1)[0] != 'a' {
		t.Fatal("completed write must be visible but not durable")
	}
	// A flush covers only writes completed before it was submitted.
	d.HoldIf(func(r *device.Request) bool { return r.Kind == device.Flush })
	f := &device.Request{Kind: device.Flush}
	fdone := make(chan struct{})
	f.Done = func(*device.Request) { close(fdone) }
	if _, err := d.Submit(f); err != nil {
		t.Fatal(err)
	}
	p, err := d.WaitFor(ctx(t), func(p *sim.Pending) bool { return p.Kind == device.Flush })
	if err != nil {
		t.Fatal(err)
	}
	mustDo(t, d, device.Write, 512, filled(512, 'b')) // completes while the flush is pending
	if err := d.Release(p); err != nil {
		t.Fatal(err)
	}
	<-fdone
	img := d.DurableImage()
	if img[0] != 'a' || img[512] != 0 || d.Unflushed() != 1 {
		t.Fatalf("durable %q %q, unflushed %d: want a, 0, 1", img[0], img[512], d.Unflushed())
	}
	d.HoldIf(nil)
	mustDo(t, d, device.Flush, 0, nil)
	if d.DurableImage()[512] != 'b' || d.Unflushed() != 0 {
		t.Fatal("second flush did not make the later write durable")
	}
	wt := newDev(t, sim.Options{Size: 64 << 10, WriteThrough: true})
	mustDo(t, wt, device.Write, 0, filled(512, 'w'))
	if wt.DurableImage()[0] != 'w' {
		t.Fatal("WriteThrough write not durable")
	}
}

// TestCrashSemantics: flushed data survives every seed; unflushed and
// in-flight writes are lost, kept or torn at physical-block granularity.
func TestCrashSemantics(t *testing.T) {
	const pbs = 1024
	base := sim.Options{Size: 64 << 10, SectorSize: 512, PhysicalBlockSize: pbs}
	d := newDev(t, base)
	mustDo(t, d, device.Write, 0, filled(8192, 'F'))
	mustDo(t, d, device.Flush, 0, nil)
	// Unflushed: an overwrite of part of the flushed range (starting mid
	// physical block) and a write elsewhere.
	mustDo(t, d, device.Write, 512, filled(4096, 'U'))
	mustDo(t, d, device.Write, 16384, filled(8192, 'V'))
	// In flight (held) at the crash.
	d.SetHold(true)
	w := &device.Request{Kind: device.Write, Off: 32768, Buf: filled(4096, 'I')}
	var werr error
	wdone := make(chan struct{})
	w.Done = func(r *device.Request) { werr = r.Err; close(wdone) }
	if _, err := d.Submit(w); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WaitHeld(ctx(t), 1); err != nil {
		t.Fatal(err)
	}

	// checkUnits: every physical block of [off, off+n) is all old or all new.
	checkUnits := func(img []byte, off, n int, old, nw byte) (newUnits, oldUnits int) {
		t.Helper()
		for s := off; s < off+n; {
			e := min((s/pbs+1)*pbs, off+n)
			switch seg := img[s:e]; {
			case bytes.Count(seg, []byte{nw}) == len(seg):
				newUnits++
			case bytes.Count(seg, []byte{old}) == len(seg):
				oldUnits++
			default:
				t.Fatalf("physical block at %d is torn inside: starts %q, ends %q", s, seg[:8], seg[len(seg)-8:])
			}
			s = e
		}
		return
	}
	var torn, lost, kept int
	for seed := int64(0); seed < 200; seed++ {
		img := d.CrashImage(sim.CrashOptions{Seed: seed, KeepUnflushed: 0.3, TearUnflushed: 0.4})
		if !bytes.Equal(img[:512], bytes.Repeat([]byte{'F'}, 512)) ||
			!bytes.Equal(img[4608:8192], bytes.Repeat([]byte{'F'}, 8192-4608)) {
			t.Fatalf("seed %d: flushed data lost", seed)
		}
		checkUnits(img, 512, 4096, 'F', 'U')
		for _, r := range []struct {
			off, n int
			nw     byte
		}{{16384, 8192, 'V'}, {32768, 4096, 'I'}} {
			nu, ou := checkUnits(img, r.off, r.n, 0, r.nw)
			switch {
			case ou == 0:
				kept++
			case nu == 0:
				lost++
			default:
				torn++
			}
		}
		if a, b := img, d.CrashImage(sim.CrashOptions{Seed: seed, KeepUnflushed: 0.3, TearUnflushed: 0.4}); !bytes.Equal(a, b) {
			t.Fatalf("seed %d: crash image not deterministic", seed)
		}
	}
	if torn == 0 || lost == 0 || kept == 0 {
		t.Fatalf("kept %d lost %d torn %d: want all three outcomes", kept, lost, torn)
	}
	var fates []sim.CrashWrite
	d.CrashImage(sim.CrashOptions{Seed: 3, KeepUnflushed: 0.3, TearUnflushed: 0.4,
		Observe: func(w sim.CrashWrite) { fates = append(fates, w) }})
	if len(fates) != 3 || fates[0].Off != 512 || fates[1].Off != 16384 || !fates[2].InFlight || fates[2].Seq != 5 {
		t.Fatalf("observed fates %+v", fates)
	}
	if img := d.CrashImage(sim.CrashOptions{Seed: 1}); !bytes.Equal(img, d.DurableImage()) {
		t.Fatal("zero CrashOptions must keep exactly the durable image")
	}
	if img := d.CrashImage(sim.CrashOptions{KeepUnflushed: 1, SkipInFlight: true}); !bytes.Equal(img, d.Image()) {
		t.Fatal("KeepUnflushed 1 without in-flight writes must keep what reads see")
	}

	// Power cut: the held write completes with EIO/ErrCrashed, later
	// requests fail too, and the new device serves the surviving image.
	nd := d.Crash(sim.CrashOptions{Seed: 9, KeepUnflushed: 1})
	defer nd.Close()
	<-wdone
	if !errors.Is(werr, syscall.EIO) || !errors.Is(werr, sim.ErrCrashed) {
		t.Fatalf("in-flight write after crash: %v", werr)
	}
	if _, err := do(t, d, device.Read, 0, aligned(512)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read on crashed device: %v", err)
	}
	got := aligned(4096)
	mustDo(t, nd, device.Read, 32768, got)
	if !bytes.Equal(got, bytes.Repeat([]byte{'I'}, 4096)) {
		t.Fatal("KeepUnflushed 1: in-flight write missing after crash")
	}
	if !bytes.Equal(nd.DurableImage(), nd.Image()) || nd.Info() != d.Info() || len(nd.Held()) != 0 {
		t.Fatal("crash device: image not durable, or different geometry, or holding")
	}
	mustDo(t, nd, device.Write, 0, filled(512, 'N')) // not held: Hold was cleared
}

func TestInjectRange(t *testing.T) {
	d := newDev(t, sim.Options{Seed: 3})
	mustDo(t, d, device.Write, 4096, filled(4096, 'x'))
	inj := d.FailRange(sim.OpWrite, 5000, 1)
	var reqs []*device.Request
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		reqs = append(reqs, &device.Request{Kind: device.Write, Off: int64(i) * 4096, Buf: filled(4096, 'y'),
			Done: func(*device.Request) { wg.Done() }})
	}
	wg.Add(1)
	rd := &device.Request{Kind: device.Read, Off: 4096, Buf: aligned(512), Done: func(*device.Request) { wg.Done() }}
	if _, err := d.Submit(append(reqs, rd)...); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, r := range reqs {
		if i == 1 {
			var ie *sim.InjectedError
			if !errors.Is(r.Err, syscall.EIO) || !errors.Is(r.Err, sim.ErrInjected) || !errors.As(r.Err, &ie) ||
				ie.Off != 4096 || r.N != 0 {
				t.Fatalf("write %d: n=%d err=%v", i, r.N, r.Err)
			}
		} else if r.Err != nil || r.N != 4096 {
			t.Fatalf("write %d: n=%d err=%v", i, r.N, r.Err)
		}
	}
	if rd.Err != nil {
		t.Fatalf("read in the range must not fail a write-only fault: %v", rd.Err)
	}
	if d.ReadRaw(4096, 1)[0] != 'x' {
		t.Fatal("failed write changed the medium")
	}
	if inj.Hits() != 1 || d.Stats().Injected != 1 || d.Stats().Errors != 1 {
		t.Fatalf("hits=%d stats=%+v", inj.Hits(), d.Stats())
	}
	inj.Remove()
	mustDo(t, d, device.Write, 4096, filled(4096, 'z'))
}

func TestInjectAfterAndFlush(t *testing.T) {
	d := newDev(t, sim.Options{Seed: 4})
	d.Inject(sim.Fault{Ops: sim.OpRead, After: 2, Count: 1, Err: syscall.ENOSPC})
	for i := range 5 {
		_, err := do(t, d, device.Read, 0, aligned(512))
		if (i == 2) != (err != nil) {
			t.Fatalf("read %d: %v", i, err)
		}
		if i == 2 && (!errors.Is(err, syscall.ENOSPC) || !errors.Is(err, sim.ErrInjected)) {
			t.Fatalf("read 2: %v", err)
		}
	}
	all := d.FailAfter(1)
	mustDo(t, d, device.Write, 0, filled(512, 1))
	if _, err := do(t, d, device.Flush, 0, nil); !errors.Is(err, syscall.EIO) {
		t.Fatalf("second request after FailAfter(1): %v", err)
	}
	all.Remove()
	ff := d.FailFlush()
	mustDo(t, d, device.Read, 0, aligned(512))
	if _, err := do(t, d, device.Flush, 0, nil); !errors.Is(err, sim.ErrInjected) {
		t.Fatalf("flush: %v", err)
	}
	if d.DurableImage()[0] != 0 {
		t.Fatal("failed flush made data durable")
	}
	ff.Remove()
	mustDo(t, d, device.Flush, 0, nil)
	if d.DurableImage()[0] != 1 {
		t.Fatal("flush after removing the fault")
	}
}

func TestFailHeld(t *testing.T) {
	d := newDev(t, sim.Options{Hold: true})
	errDisk := errors.New("disk on fire")
	var got error
	r := &device.Request{Kind: device.Write, Buf: filled(512, 1), Done: func(r *device.Request) { got = r.Err }}
	if _, err := d.Submit(r); err != nil {
		t.Fatal(err)
	}
	ps, err := d.WaitHeld(ctx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Fail(ps[0], errDisk); err != nil {
		t.Fatal(err)
	}
	<-ps[0].Completed()
	if !errors.Is(got, errDisk) || !errors.Is(got, sim.ErrInjected) || d.ReadRaw(0, 1)[0] != 0 {
		t.Fatalf("Fail: %v", got)
	}
	if err := d.Fail(ps[0], nil); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("Fail of completed request: %v", err)
	}
}

func TestCloseDrainsHeld(t *testing.T) {
	d := sim.New(sim.Options{Hold: true, Latency: time.Millisecond, LatencyJitter: true})
	var n atomic.Int32
	for i := range 10 {
		r := &device.Request{Kind: device.Write, Off: int64(i) * 512, Buf: filled(512, byte(i)), Done: func(*device.Request) { n.Add(1) }}
		if _, err := d.Submit(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 10 {
		t.Fatalf("Close returned with %d of 10 completions", n.Load())
	}
	if d.ReadRaw(9*512, 1)[0] != 9 {
		t.Fatal("drained write did not reach the medium")
	}
}

func TestLatency(t *testing.T) {
	for _, jitter := range []bool{false, true} {
		d := sim.New(sim.Options{Seed: 6, Latency: 200 * time.Microsecond, LatencyJitter: jitter})
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Add(1)
			r := &device.Request{Kind: device.Write, Off: int64(i) * 512, Buf: filled(512, 1), Done: func(*device.Request) { wg.Done() }}
			if _, err := d.Submit(r); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		if s := d.Stats(); s.Writes != 50 {
			t.Fatalf("stats %+v", s)
		}
		d.Close()
	}
}

// TestConcurrentExactlyOnce: many submitters, requests resubmitted from
// their own Done, faults and holds mixed in; every accepted request
// completes exactly once (run with -race).
func TestConcurrentExactlyOnce(t *testing.T) {
	d := sim.New(sim.Options{Size: 1 << 20, Seed: 11})
	d.FailRange(sim.OpRead, 0, 4096)
	d.HoldIf(func(r *device.Request) bool { return r.Off == 8192 })
	stop := make(chan struct{})
	var releaser sync.WaitGroup
	releaser.Add(1)
	go func() {
		defer releaser.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			d.ReleaseAll()
			runtime.Gosched()
		}
	}()
	const workers, each = 4, 200
	var completions [workers * each]atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var inner sync.WaitGroup
			for i := range each {
				id := w*each + i
				kind := device.Kind(i % 3)
				r := &device.Request{Kind: kind, Off: int64(i%64) * 4096, Buf: aligned(4096)}
				resubmitted := false
				inner.Add(1)
				r.Done = func(r *device.Request) {
					completions[id].Add(1)
					if !resubmitted && kind == device.Write {
						resubmitted = true
						completions[id].Add(-1)
						if _, err := d.Submit(r); err != nil {
							panic(err)
						}
						return
					}
					inner.Done()
				}
				if _, err := d.Submit(r); err != nil {
					t.Error(err)
					inner.Done()
				}
			}
			inner.Wait()
		}()
	}
	wg.Wait()
	close(stop)
	releaser.Wait()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range completions {
		if n := completions[i].Load(); n != 1 {
			t.Fatalf("request %d completed %d times", i, n)
		}
	}
	if s := d.Stats(); s.Submitted != s.Completed || s.Errors == 0 || s.Held == 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPoisonFindRaw(t *testing.T) {
	d := newDev(t, sim.Options{Size: 64 << 10, Image: []byte("hello")})
	if string(d.ReadRaw(0, 5)) != "hello" || string(d.DurableImage()[:5]) != "hello" {
		t.Fatal("Image option")
	}
	marker := []byte("POISON!")
	d.Poison(marker)
	img := d.Image()
	if !bytes.HasPrefix(img, marker) || bytes.Count(img, marker) != len(img)/len(marker) {
		t.Fatal("Poison did not fill the medium")
	}
	if !bytes.Equal(d.DurableImage(), img) {
		t.Fatal("Poison is not durable")
	}
	d.Fill(0)
	if d.Find(marker) != -1 {
		t.Fatal("Fill left the marker")
	}
	d.WriteRaw(4096, marker)
	if d.Find(marker) != 4096 {
		t.Fatal("Find")
	}
	got := aligned(512)
	mustDo(t, d, device.Read, 4096, got)
	if !bytes.HasPrefix(got, marker) {
		t.Fatal("read does not see WriteRaw")
	}
	if len(d.ReadRaw(64<<10-2, 100)) != 2 || len(d.ReadRaw(-5, 3)) != 3 || len(d.ReadRaw(1<<30, 3)) != 0 {
		t.Fatal("ReadRaw clipping")
	}
}

func TestScribbleFailedRead(t *testing.T) {
	d := newDev(t, sim.Options{Size: 64 << 10, Scribble: []byte("JUNK")})
	d.FailRange(sim.OpRead, 0, 512)
	buf := aligned(1024)
	if _, err := do(t, d, device.Read, 0, buf); !errors.Is(err, sim.ErrInjected) {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, bytes.Repeat([]byte("JUNK"), 256)) {
		t.Fatalf("failed read buffer starts %q, want scribbled", buf[:8])
	}
}

// TestConcurrentCompleters: with several completers, Done callbacks run in
// parallel (one blocks until another has run) and every request completes
// once.
func TestConcurrentCompleters(t *testing.T) {
	d := newDev(t, sim.Options{Size: 64 << 10, Completers: 4, Hold: true})
	first := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	// Done of the first request waits for the second's Done: only
	// possible with concurrent completers.
	a := &device.Request{Kind: device.Flush, Done: func(*device.Request) { <-first; wg.Done() }}
	b := &device.Request{Kind: device.Flush, Done: func(*device.Request) { close(first); wg.Done() }}
	if _, err := d.Submit(a); err != nil {
		t.Fatal(err)
	}
	ps, err := d.WaitHeld(ctx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	d.Release(ps[0])
	if _, err := d.Submit(b); err != nil {
		t.Fatal(err)
	}
	d.ReleaseAll()
	wg.Wait()
}

// TestLargeSparseDevice: a 1 TiB device costs only what is written to it.
func TestLargeSparseDevice(t *testing.T) {
	d := newDev(t, sim.Options{Size: sim.MaxSize, SectorSize: 4096, MemAlign: 4096})
	d.Poison([]byte("STALE!"))
	off := int64(sim.MaxSize - 8192)
	mustDo(t, d, device.Write, off, filled(4096, 'e'))
	mustDo(t, d, device.Flush, 0, nil)
	got := aligned(8192)
	mustDo(t, d, device.Read, off, got)
	if !bytes.Equal(got[:4096], bytes.Repeat([]byte{'e'}, 4096)) || !bytes.Contains(got[4096:], []byte("STALE!")) {
		t.Fatal("large device read back")
	}
	nd := d.Crash(sim.CrashOptions{})
	defer nd.Close()
	if !bytes.Equal(nd.ReadRaw(off, 4096), bytes.Repeat([]byte{'e'}, 4096)) || nd.Find([]byte("STALE!")) != 0 {
		t.Fatal("large device after crash")
	}
}
