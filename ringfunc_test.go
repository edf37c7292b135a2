package aiodio

import (
	"context"
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
)

// hangLimit bounds how long the function-ring tests wait for something that
// a deadlock would never let happen; it detects a hang, it times nothing.
const hangLimit = 20 * time.Second

// TestRingFuncDeliversOnce: a function ring calls its function exactly once
// per accepted op — direct reads and writes, buffered ops, fsync, an op the
// engine fails (EIO) — never for an op Submit rejected (I2); Wait on it is
// EINVAL; ops resubmitted from the function keep N in flight until a count
// is reached; Close waits for a call of the function that is still running.
func TestRingFuncDeliversOnce(t *testing.T) {
	v := newSimVolume(t, 64<<20, Options{}, sim.Options{Seed: 21})
	f := mustOpen(t, v.Volume, "d", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT)
	b := mustOpen(t, v.Volume, "b", os.O_RDWR|os.O_CREATE)
	if err := f.Fallocate(0, 0, 64*4096); err != nil {
		t.Fatal(err)
	}
	const inFlight, total = 8, 200
	var (
		mu        sync.Mutex
		seen      = map[uint64]int{}
		submitted = 0
		done      = make(chan struct{})
		bufs      = make([][]byte, inFlight)
		r         *Ring
	)
	for i := range bufs {
		bufs[i] = AlignedBuffer(4096)
	}
	next := func(slot int) Op {
		ud := uint64(submitted)<<8 | uint64(slot)
		submitted++
		off := int64(submitted%64) * 4096
		switch submitted % 5 {
		case 0:
			return Op{Code: OpRead, File: f, Buf: bufs[slot], Off: off, UserData: ud}
		case 1:
			return Op{Code: OpWrite, File: b, Buf: bufs[slot][:1000], Off: off + 7, UserData: ud}
		case 2:
			return Op{Code: OpFsync, File: b, UserData: ud}
		default:
			return Op{Code: OpWrite, File: f, Buf: bufs[slot], Off: off, UserData: ud}
		}
	}
	var err error
	r, err = v.NewRingFunc(inFlight, func(c Completion) {
		mu.Lock()
		defer mu.Unlock()
		seen[c.UserData]++
		if c.Err != nil {
			t.Errorf("op %#x: %v", c.UserData, c.Err)
		}
		if submitted < total {
			op := next(int(c.UserData & 0xff))
			if n, err := r.Submit(op); n != 1 {
				t.Errorf("resubmit from the function: %v", err)
			}
		}
		if len(seen) == total {
			close(done)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Wait(context.Background(), 0, make([]Completion, 1)); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Wait on a function ring: %v, want EINVAL", err)
	}
	// A rejected op is never delivered.
	if n, err := r.Submit(Op{Code: OpRead, File: f, Buf: bufs[0], Off: -1, UserData: 1 << 60}); n != 0 || err == nil {
		t.Fatalf("negative offset accepted: %d %v", n, err)
	}
	mu.Lock()
	for slot := range inFlight {
		if n, err := r.Submit(next(slot)); n != 1 {
			t.Fatalf("submit: %v", err)
		}
	}
	mu.Unlock()
	select {
	case <-done:
	case <-time.After(hangLimit):
		t.Fatalf("hang: %d of %d ops delivered", len(seen), total)
	}
	mu.Lock()
	for ud, n := range seen {
		if n != 1 {
			t.Errorf("op %#x delivered %d times", ud, n)
		}
	}
	if seen[1<<60] != 0 {
		t.Error("a rejected op was delivered")
	}
	mu.Unlock()

	// An injected EIO is delivered once, with the error; Close waits for a
	// call of the function still running.
	release := make(chan struct{})
	got := make(chan Completion, 2)
	r2, err := v.NewRingFunc(2, func(c Completion) {
		got <- c
		<-release
	})
	if err != nil {
		t.Fatal(err)
	}
	v.sim.HoldIf(func(rq *device.Request) bool { return rq.Kind == device.Read })
	if n, err := r2.Submit(Op{Code: OpRead, File: f, Buf: bufs[0], UserData: 7}); n != 1 {
		t.Fatal(err)
	}
	held, err := v.sim.WaitHeld(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	v.sim.HoldIf(nil)
	if err := v.sim.Fail(held[0], syscall.EIO); err != nil {
		t.Fatal(err)
	}
	c := <-got
	if c.UserData != 7 || !errors.Is(c.Err, syscall.EIO) {
		t.Errorf("failed read delivered as %+v, want EIO", c)
	}
	closed := make(chan error, 1)
	go func() { closed <- r2.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while the function was still running", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b.Close()
}

// TestRingFuncSubmitFromFunctionNeverWaits: the function runs on the
// device's completion thread, so a Submit from it must not wait. Here a
// truncate holds the file's inode lock while it waits for two direct reads
// in flight (I7); the first completes, on the sim device's one completion
// goroutine, and the function submits a direct write to the file. Had that
// Submit waited for the inode lock, the completion goroutine would be stuck
// in it, the second read's completion could never be delivered, and
// truncate would wait for ever. The write is tried with RWF_NOWAIT,
// refused, and continues on its own goroutine once truncate is done.
// (Checked by hand: issuing it without RWF_NOWAIT hangs here.)
func TestRingFuncSubmitFromFunctionNeverWaits(t *testing.T) {
	v := newSimVolume(t, 64<<20, Options{}, sim.Options{Seed: 22})
	f := mustOpen(t, v.Volume, "f", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT)
	old := AlignedBuffer(16 * 4096)
	for i := range old {
		old[i] = 'o'
	}
	mustWrite(t, f, old, 0)
	reads := [2][]byte{AlignedBuffer(4096), AlignedBuffer(4096)}
	write := AlignedBuffer(4096)
	for i := range write {
		write[i] = 'w'
	}
	delivered := make(chan Completion, 3)
	var r *Ring
	var err error
	r, err = v.NewRingFunc(4, func(c Completion) {
		if c.UserData == 0 {
			// The truncate below holds the inode lock.
			if n, err := r.Submit(Op{Code: OpWrite, File: f, Buf: write, Off: 2 * 4096, UserData: 2}); n != 1 {
				t.Errorf("submit from the function: %v", err)
			}
		}
		delivered <- c
	})
	if err != nil {
		t.Fatal(err)
	}
	v.sim.HoldIf(func(rq *device.Request) bool { return rq.Kind == device.Read })
	for i := range reads {
		if n, err := r.Submit(Op{Code: OpRead, File: f, Buf: reads[i], Off: int64(i) * 4096, UserData: uint64(i)}); n != 1 {
			t.Fatal(err)
		}
	}
	held, err := v.sim.WaitHeld(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	v.sim.HoldIf(nil)
	truncated := make(chan error, 1)
	go func() { truncated <- f.Truncate(12 * 4096) }()
	// Wait until truncate holds the inode lock exclusively (it then waits
	// for the two reads).
	for deadline := time.Now().Add(hangLimit); ; {
		if w, _ := f.in.d.Lock.Held(); w {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("truncate never took the inode lock")
		}
		time.Sleep(time.Millisecond)
	}
	v.sim.Release(held[0])
	v.sim.Release(held[1])
	for range 3 {
		select {
		case c := <-delivered:
			if c.Err != nil || c.N != 4096 {
				t.Errorf("op %d: %d bytes, %v", c.UserData, c.N, c.Err)
			}
			if c.UserData < 2 && reads[c.UserData][0] != 'o' {
				t.Errorf("read %d returned %q", c.UserData, reads[c.UserData][0])
			}
		case <-time.After(hangLimit):
			t.Fatal("hang: the function's Submit waited on the completion goroutine (truncate holds the lock it wanted)")
		}
	}
	if err := <-truncated; err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	got := AlignedBuffer(3 * 4096)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if got[0] != 'o' || got[2*4096] != 'w' || got[3*4096-1] != 'w' {
		t.Errorf("after the write from the function: blocks read %q %q", got[0], got[2*4096])
	}
	f.Close()
}

// completeBeforeReturn is a device whose Submit returns only after the
// requests it accepted have completed: the completion then always reaches
// the direct engine before the submitter drops its own reference, so the
// op completes on the submitting goroutine, inside Ring.Submit — the race a
// fast device wins now and then.
type completeBeforeReturn struct{ device.Device }

func (d completeBeforeReturn) Submit(reqs ...*device.Request) (int, error) {
	var wg sync.WaitGroup
	for _, r := range reqs {
		done := r.Done
		wg.Add(1)
		r.Done = func(q *device.Request) {
			q.Done = done
			done(q)
			wg.Done()
		}
	}
	n, err := d.Device.Submit(reqs...)
	for _, r := range reqs[n:] {
		r.Done = nil
		wg.Done()
	}
	wg.Wait()
	return n, err
}

// TestRingFuncNeverCalledInsideSubmit: a function ring never calls its
// function inside Submit, even when the op completes before Submit
// returns. A caller may hold the lock its function takes while it submits
// (the function itself does, when it resubmits); a call inside Submit
// would then deadlock. (Checked by hand: delivering such a completion
// inline hangs here.)
func TestRingFuncNeverCalledInsideSubmit(t *testing.T) {
	d := sim.New(sim.Options{Size: 64 << 20, Seed: 23})
	if err := MkfsDevice(d, MkfsOptions{}); err != nil {
		t.Fatal(err)
	}
	v := openTestVolume(t, completeBeforeReturn{d}, Options{})
	f := mustOpen(t, v.Volume, "f", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT)
	data := AlignedBuffer(4 * 4096)
	for i := range data {
		data[i] = byte(i / 4096)
	}
	mustWrite(t, f, data, 0)
	var mu sync.Mutex
	delivered := make(chan Completion, 4)
	r, err := v.NewRingFunc(4, func(c Completion) {
		mu.Lock()
		defer mu.Unlock()
		delivered <- c
	})
	if err != nil {
		t.Fatal(err)
	}
	bufs := make([][]byte, 4)
	submitted := make(chan error, 1)
	go func() {
		mu.Lock()
		defer mu.Unlock()
		for i := range bufs {
			bufs[i] = AlignedBuffer(4096)
			if n, err := r.Submit(Op{Code: OpRead, File: f, Buf: bufs[i], Off: int64(i) * 4096, UserData: uint64(i)}); n != 1 {
				submitted <- err
				return
			}
		}
		submitted <- nil
	}()
	select {
	case err := <-submitted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(hangLimit):
		t.Fatal("hang: the function was called inside Submit, while its caller held the function's lock")
	}
	for range bufs {
		c := <-delivered
		if c.Err != nil || c.N != 4096 || bufs[c.UserData][0] != byte(c.UserData) {
			t.Errorf("read %d: %d bytes, %v, data %d", c.UserData, c.N, c.Err, bufs[c.UserData][0])
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}
