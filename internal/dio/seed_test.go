package dio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
	"github.com/aiodio/aiodio/internal/alignbuf"
	"github.com/aiodio/aiodio/internal/meta"
)

// writeFile prepares blocks [fb, fb+n) as written, holding data, and sets
// the size (a file that existed before the test).
func (r *rig) writeFile(fb, n, size int64, data []byte) {
	r.ext.setWritten(testIno, fb, n, size)
	for b := fb; b < fb+n; b++ {
		blk := make([]byte, testBS)
		if data != nil {
			copy(blk, data[(b-fb)*testBS:])
		}
		r.dev.WriteRaw(r.ext.devBlock(testIno, b)*testBS, blk)
	}
	r.in.GrowSize(size)
}

func (r *rig) readAll(n int) []byte {
	r.t.Helper()
	got := make([]byte, n)
	k, err := r.e.ReadAt(r.in, got, 0, 0)
	if err != nil && err != io.EOF {
		r.t.Fatalf("read back: %d, %v", k, err)
	}
	return got[:k]
}

func (r *rig) waitHeld(n int) []*sim.Pending {
	r.t.Helper()
	ps, err := r.dev.WaitHeld(ctxT(r.t), n)
	if err != nil {
		r.t.Fatalf("waiting for %d held requests (have %d): %v", n, len(r.dev.Held()), err)
	}
	return ps
}

// yield lets other goroutines run for a while (no timing is asserted: it
// only gives a broken implementation the chance to show itself).
func yield() {
	for i := 0; i < 2000; i++ {
		runtime.Gosched()
	}
}

// TestSeed000_AIOExtendNoStaleRead (seed 000, I1/I8): during an extending
// async direct write, neither readers nor the size (what Stat reports) run
// ahead of the data: the size stays at the old EOF until every request of
// the write completed, then it covers the write. Readers never see the
// poison the device holds in the newly allocated blocks.
//
// Checked by hand: raising the size at submission (in.GrowSize(end) right
// after d.submit() in Write) makes this test fail ("size 8192 while ...").
func TestSeed000_AIOExtendNoStaleRead(t *testing.T) {
	r := newRig(t, rigOpts{sim: sim.Options{Hold: true, MaxIO: 4096}})
	buf := alignbuf.Alloc(8192)
	copy(buf, pattern(8192, 1))
	a := r.newOp(buf, 0, 0)
	if err := r.e.Write(&a.Op); err != nil {
		t.Fatal(err)
	}
	ps := r.waitHeld(2) // split at MaxIO: two requests
	check := func(when string) {
		if s := r.in.Size(); s != 0 {
			t.Fatalf("size %d while %s", s, when)
		}
		got := make([]byte, 8192)
		n, err := r.e.ReadAt(r.in, got, 0, 0)
		if n != 0 || err != io.EOF {
			t.Fatalf("read while %s = %d, %v; want 0, EOF", when, n, err)
		}
	}
	check("both requests are in flight")
	if err := r.dev.Release(ps[1]); err != nil {
		t.Fatal(err)
	}
	<-ps[1].Completed()
	check("one request is still in flight")
	if a.completed() {
		t.Fatal("write completed with a request in flight")
	}
	r.dev.Release(ps[0])
	<-a.done
	if a.N != 8192 || a.Err != nil {
		t.Fatalf("write = %d, %v", a.N, a.Err)
	}
	if s := r.in.Size(); s != 8192 {
		t.Fatalf("size after completion %d", s)
	}
	r.dev.SetHold(false)
	if got := r.readAll(8192); !bytes.Equal(got, buf) {
		t.Fatal("data mismatch after completion")
	}
	r.checkIdle()
}

// TestSeed000_FallbackWaitsForDirectPart (seed 000 items 3 and 4, I2/I3,
// HolePolicy BufferedFallback): a write over an allocated block followed by
// a hole inside the size submits the allocated part directly, then waits
// for it before falling back (the caller's buffer is not given back while
// the device still reads it: sim copies write data at completion), and it
// completes once, only after the buffered remainder was written back.
//
// Checked by hand: not waiting for the direct part (removing "<-d.wake" in
// finishFallback) makes this test fail: the fallback runs while the
// direct request is still held.
func TestSeed000_FallbackWaitsForDirectPart(t *testing.T) {
	r := newRig(t, rigOpts{policy: BufferedFallback, sim: sim.Options{Hold: true}})
	r.writeFile(0, 1, 8192, nil) // block 0 written, block 1 a hole, size 8 KiB
	buf := alignbuf.Alloc(8192)
	want := pattern(8192, 5)
	copy(buf, want)
	var callsAtDone []string
	a := r.newOp(buf, 0, 0)
	inner := a.Op.Done
	a.Op.Done = func(op *Op) { callsAtDone = r.cache.Calls(); inner(op) }
	errc := make(chan error, 1)
	go func() { errc <- r.e.Write(&a.Op) }()
	ps := r.waitHeld(1)
	if ps[0].Off != r.ext.devBlock(testIno, 0)*testBS || ps[0].Len != 4096 {
		t.Fatalf("direct part = %v; want block 0 only", ps[0])
	}
	yield()
	for _, c := range r.cache.Calls() {
		if strings.HasPrefix(c, "writeat") {
			t.Fatalf("fell back (%s) while the direct part is in flight", c)
		}
	}
	if a.completed() {
		t.Fatal("completed while the direct part is in flight")
	}
	r.dev.SetHold(false)
	r.dev.Release(ps[0])
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	<-a.done
	if a.N != 8192 || a.Err != nil {
		t.Fatalf("write = %d, %v", a.N, a.Err)
	}
	if !slices.Contains(callsAtDone, "writeandwait 4096 4096") {
		t.Fatalf("completed before the fallback was written back; calls %q", callsAtDone)
	}
	// The caller reuses its buffer: the device must hold the data already.
	for i := range buf {
		buf[i] = 0xEE
	}
	if got := r.dev.ReadRaw(r.ext.devBlock(testIno, 0)*testBS, 4096); !bytes.Equal(got, want[:4096]) {
		t.Fatal("direct part on the device is not the caller's data")
	}
	if got := r.readAll(8192); !bytes.Equal(got, want) {
		t.Fatal("file content mismatch")
	}
	r.checkIdle()
}

// TestSeed001_WriteInsideSizeNoStaleExposure (seed 001, I1): a direct write
// into a hole inside the file size never makes the new block readable
// before its data lands. Unwritten: the block reads as zeros until
// end-I/O converts it; BufferedFallback: the write goes through the cache
// and write-back, and the result is exact.
//
// Checked by hand: converting the extent at allocation (ConvertWritten
// right after AllocUnwritten in prepareWrite) makes the Unwritten case
// fail: the concurrent read returns the device's poison.
func TestSeed001_WriteInsideSizeNoStaleExposure(t *testing.T) {
	t.Run("Unwritten", func(t *testing.T) {
		r := newRig(t, rigOpts{sim: sim.Options{Hold: true}})
		r.in.GrowSize(16384) // four holes inside the size
		buf := alignbuf.Alloc(4096)
		copy(buf, pattern(4096, 3))
		a := r.newOp(buf, 4096, 0)
		if err := r.e.Write(&a.Op); err != nil {
			t.Fatal(err)
		}
		ps := r.waitHeld(1)
		r.dev.SetHold(false)
		got := r.readAll(16384)
		if !bytes.Equal(got, make([]byte, 16384)) {
			t.Fatalf("read during the write shows non-zero bytes (poison at %d)", bytes.Index(got, poison[:4]))
		}
		r.dev.Release(ps[0])
		<-a.done
		got = r.readAll(16384)
		if !bytes.Equal(got[4096:8192], buf) || !bytes.Equal(got[:4096], make([]byte, 4096)) {
			t.Fatal("content after completion")
		}
		r.checkIdle()
	})
	t.Run("BufferedFallback", func(t *testing.T) {
		r := newRig(t, rigOpts{policy: BufferedFallback})
		r.in.GrowSize(16384)
		want := pattern(6000, 4)
		if n, err := r.e.WriteAt(r.in, want, 3000, 0); n != 6000 || err != nil {
			t.Fatal(n, err)
		}
		got := r.readAll(16384)
		if !bytes.Equal(got[3000:9000], want) || !bytes.Equal(got[:3000], make([]byte, 3000)) ||
			!bytes.Equal(got[9000:], make([]byte, 16384-9000)) {
			t.Fatal("content mismatch (stale or lost bytes)")
		}
		if !slices.Contains(r.cache.Calls(), "writeat 3000 6000") {
			t.Fatalf("expected the whole write through the cache; calls %q", r.cache.Calls())
		}
		r.checkIdle()
	})
}

// TestSeed001_DirectReadWritesBackDirtyPages (seed 001, I5): a direct read
// writes back dirty cached pages of its range first, so it returns what a
// buffered write stored, not the older bytes on the device.
//
// Checked by hand: removing the WriteAndWait call in Read makes this fail.
func TestSeed001_DirectReadWritesBackDirtyPages(t *testing.T) {
	r := newRig(t, rigOpts{})
	r.writeFile(0, 1, 4096, pattern(4096, 1))
	newer := pattern(4096, 2)
	r.cache.dirtyPage(0, newer)
	if got := r.readAll(4096); !bytes.Equal(got, newer) {
		t.Fatal("direct read returned the device's older bytes: dirty page not written back first")
	}
}

// TestSeed001_TruncateWaitsForDrain (seed 001, I7): Inode.Drain (what
// truncate and punch call) waits for in-flight direct I/O, and new direct
// I/O waits while it holds the inode lock.
//
// Checked by hand: removing the DIO.Wait call from Inode.Drain makes this
// fail ("Drain returned with a write in flight").
func TestSeed001_TruncateWaitsForDrain(t *testing.T) {
	r := newRig(t, rigOpts{sim: sim.Options{Hold: true}})
	buf := alignbuf.Alloc(4096)
	a := r.newOp(buf, 0, 0)
	if err := r.e.Write(&a.Op); err != nil {
		t.Fatal(err)
	}
	ps := r.waitHeld(1)
	drained := make(chan error, 1)
	go func() { drained <- r.in.Drain(ctxT(t), false) }()
	for {
		if w, _ := r.in.Lock.Held(); w {
			break
		}
		runtime.Gosched()
	}
	yield()
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) with a write in flight", err)
	default:
	}
	// New direct I/O waits (NOWAIT: EAGAIN) while truncate holds the lock.
	b := r.newOp(alignbuf.Alloc(4096), 8192, NoWait)
	if err := r.e.Write(&b.Op); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("NOWAIT write during drain = %v, want EAGAIN", err)
	}
	r.dev.SetHold(false)
	r.dev.Release(ps[0])
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if !a.completed() {
		t.Fatal("Drain returned before the write completed")
	}
	// Holding the drained lock: a blocking write must not reach the device.
	before := r.dev.Stats().Submitted
	c := r.newOp(alignbuf.Alloc(4096), 0, 0)
	cerr := make(chan error, 1)
	go func() { cerr <- r.e.Write(&c.Op) }()
	yield()
	if s := r.dev.Stats().Submitted; s != before {
		t.Fatalf("a write submitted %d requests while truncate holds the inode", s-before)
	}
	r.in.SetSizeLocked(0) // the truncate itself
	r.in.Lock.Unlock()
	if err := <-cerr; err != nil {
		t.Fatal(err)
	}
	<-c.done
	r.checkIdle()
}

// TestSeed001_ErrorPathsReleaseLocks (seed 001 "fix various deadlocks due
// to not releasing locks on error paths", I9, I2): a failure at each stage
// either rejects the op (nothing completed) or completes it once with the
// error; afterwards every lock can be taken again and the drain is empty.
//
// Checked by hand: dropping the range unlock from Write's prepareWrite
// error path makes the "rmw read EIO" and "ENOSPC" cases fail in
// checkIdle; dropping in.DIO.End() there makes them fail too.
func TestSeed001_ErrorPathsReleaseLocks(t *testing.T) {
	type tc struct {
		name     string
		setup    func(r *rig)
		buf      []byte
		off      int64
		read     bool
		rejected bool // else completed with an error
		errno    error
	}
	cases := []tc{
		{name: "data write EIO", off: 0, buf: alignbuf.Alloc(8192), errno: syscall.EIO,
			setup: func(r *rig) { r.dev.FailRange(sim.OpWrite, 0, testDevSize) }},
		{name: "rmw read EIO", off: 100, buf: make([]byte, 50), rejected: true, errno: syscall.EIO,
			setup: func(r *rig) {
				r.writeFile(0, 1, 4096, nil)
				r.dev.FailRange(sim.OpRead, 0, testDevSize)
			}},
		{name: "ENOSPC", off: 0, buf: make([]byte, 100), rejected: true, errno: syscall.ENOSPC,
			setup: func(r *rig) { r.ext.failAlloc = fmt.Errorf("fake: %w", syscall.ENOSPC) }},
		{name: "convert error", off: 0, buf: make([]byte, 100), errno: syscall.EIO,
			setup: func(r *rig) { r.ext.failConvert = fmt.Errorf("fake: %w", syscall.EIO) }},
		{name: "invalidate EBUSY", off: 0, buf: make([]byte, 100), rejected: true, errno: syscall.EBUSY,
			setup: func(r *rig) { r.cache.invalErrs = []error{syscall.EBUSY} }},
		{name: "read EIO", off: 0, buf: make([]byte, 4096), read: true, errno: syscall.EIO,
			setup: func(r *rig) {
				r.writeFile(0, 1, 4096, nil)
				r.dev.FailRange(sim.OpRead, 0, testDevSize)
			}},
		{name: "EOF tail zeroing EIO", off: 5000, buf: make([]byte, 10), rejected: true, errno: syscall.EIO,
			setup: func(r *rig) {
				r.writeFile(0, 1, 300, nil)
				r.dev.FailRange(sim.OpRead, 0, testDevSize)
			}},
		{name: "range lock NOWAIT", off: 0, buf: make([]byte, 10), rejected: true, errno: syscall.EAGAIN,
			setup: func(r *rig) {
				r.in.GrowSize(4096)
				r.in.Ranges.TryLock(&heldRange)
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, rigOpts{})
			c.setup(r)
			sizeBefore := r.in.Size()
			flags := uint32(0)
			if c.errno == syscall.EAGAIN {
				flags = NoWait
			}
			a := r.newOp(c.buf, c.off, flags)
			var err error
			if c.read {
				err = r.e.Read(&a.Op)
			} else {
				err = r.e.Write(&a.Op)
			}
			if c.rejected {
				if !errors.Is(err, c.errno) {
					t.Fatalf("err = %v, want rejection with %v", err, c.errno)
				}
				yield()
				if a.completed() {
					t.Fatal("rejected op was completed")
				}
			} else {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				<-a.done
				if a.N != 0 || !errors.Is(a.Err, c.errno) {
					t.Fatalf("completion = %d, %v; want 0, %v", a.N, a.Err, c.errno)
				}
			}
			if heldRange.End != 0 && c.errno == syscall.EAGAIN {
				r.in.Ranges.Unlock(&heldRange)
			}
			if !c.read && r.in.Size() != sizeBefore {
				t.Fatalf("size raised to %d by a failed write", r.in.Size())
			}
			if !c.read && r.ext.state(testIno, 0) == meta.Written && c.off == 0 {
				t.Fatal("block of a failed write converted to written")
			}
			r.checkIdle()
		})
	}
}

var heldRange = rangeFor(0, 1)

// TestSeed002_SubBlockWritesSameNewBlockSerialize (seed 002, I6): a second
// sub-block write into a block the first one is still filling (unwritten,
// zero-padded) waits for it on the block range lock, then sees the block
// written and overwrites only its own sectors: both writers' data survive.
//
// Checked by hand: making lockSpan return an empty span lets the second
// write be submitted while the first is in flight (caught here) and its
// zero padding then destroys the first writer's sector.
func TestSeed002_SubBlockWritesSameNewBlockSerialize(t *testing.T) {
	r := newRig(t, rigOpts{sim: sim.Options{Hold: true}})
	r.in.GrowSize(8192)
	a := r.newOp(bytes.Repeat([]byte{'A'}, 512), 0, 0)
	b := r.newOp(bytes.Repeat([]byte{'B'}, 512), 1024, 0)
	if err := r.e.Write(&a.Op); err != nil {
		t.Fatal(err)
	}
	pa := r.waitHeld(1)
	berr := make(chan error, 1)
	go func() { berr <- r.e.Write(&b.Op) }()
	for r.in.Ranges.Len() < 2 && len(r.dev.Held()) < 2 {
		runtime.Gosched()
	}
	if n := len(r.dev.Held()); n != 1 {
		t.Fatalf("%d requests in flight: the second sub-block write was not serialized", n)
	}
	r.dev.Release(pa[0])
	<-a.done
	pb := r.waitHeld(1)
	r.dev.Release(pb[0])
	if err := <-berr; err != nil {
		t.Fatal(err)
	}
	<-b.done
	r.dev.SetHold(false)
	got := r.readAll(4096)
	want := make([]byte, 4096)
	copy(want, a.Buf)
	copy(want[1024:], b.Buf)
	if !bytes.Equal(got, want) {
		t.Fatalf("block content wrong: sector 0 %q..., sector 2 %q...", got[:4], got[1024:1028])
	}
	r.checkIdle()
}

// TestSeed002_ConcurrentSubBlockWritesNoMix (seed 002, I6): many concurrent
// async sector-aligned sub-block writes, each with its own byte, into the
// same new blocks (with extensions and EOF-tail zeroing in the mix),
// completing in a seeded random order: every sector ends with the byte of
// one writer whose range covers it, and sectors nobody wrote read zeros:
// never poison, never a mix.
//
// Checked by hand: an empty lockSpan makes this fail (covered sectors
// zeroed by a later writer's padding) within a few rounds. It also caught
// a real bug: the EOF-tail zeroing used the size read before the drain
// wait, so it zeroed data of writes that completed during that wait.
func TestSeed002_ConcurrentSubBlockWritesNoMix(t *testing.T) {
	for round := 0; round < 20; round++ {
		r := newRig(t, rigOpts{sim: sim.Options{Seed: int64(round), Completers: 2}})
		const blocks = 3
		type w struct{ off, n int64 }
		ws := make([]w, 24)
		var wg sync.WaitGroup
		for i := range ws {
			off := int64((i*7+round*3)%(blocks*8)) * 512
			n := int64(1+(i*5+round)%3) * 512
			if off+n > blocks*4096 {
				n = blocks*4096 - off
			}
			ws[i] = w{off, n}
			wg.Add(1)
			go func(id byte) {
				defer wg.Done()
				p := bytes.Repeat([]byte{id}, int(n))
				if k, err := r.e.WriteAt(r.in, p, off, 0); k != int(n) || err != nil {
					t.Errorf("write %d: %d, %v", id, k, err)
				}
			}(byte(i + 1))
		}
		wg.Wait()
		size := r.in.Size()
		got := r.readAll(int(size))
		for s := int64(0); s < size/512; s++ {
			sec := got[s*512 : (s+1)*512]
			var cover []byte
			for i, x := range ws {
				if x.off <= s*512 && s*512 < x.off+x.n {
					cover = append(cover, byte(i+1))
				}
			}
			v := sec[0]
			if !bytes.Equal(sec, bytes.Repeat([]byte{v}, 512)) {
				t.Fatalf("round %d sector %d mixes bytes (%q...)", round, s, sec[:16])
			}
			if len(cover) == 0 && v != 0 || len(cover) > 0 && !bytes.Contains(cover, []byte{v}) {
				t.Fatalf("round %d sector %d holds %d; writers covering it: %v", round, s, v, cover)
			}
		}
		r.checkIdle()
	}
}

// TestSeed002_DisjointSubBlockWritesRunInParallel (seed 002 / issue 5 part
// 4): sub-block writes into distinct new blocks take disjoint range locks
// and are all on the device at once, unlike the whole-inode serialization of
// the 2011 ocfs2 patch.
//
// Checked by hand: locking the whole file (lockSpan returning [0, 1<<40))
// makes WaitHeld(8) time out and this test fail.
func TestSeed002_DisjointSubBlockWritesRunInParallel(t *testing.T) {
	r := newRig(t, rigOpts{sim: sim.Options{Hold: true}})
	r.in.GrowSize(8 * 4096)
	ops := make([]*asyncOp, 8)
	var wg sync.WaitGroup
	for i := range ops {
		ops[i] = r.newOp(bytes.Repeat([]byte{byte('a' + i)}, 512), int64(i)*4096+512, 0)
		wg.Add(1)
		go func(a *asyncOp) {
			defer wg.Done()
			if err := r.e.Write(&a.Op); err != nil {
				t.Error(err)
			}
		}(ops[i])
	}
	r.waitHeld(8)
	if p := r.dev.PeakInFlight(); p < 8 {
		t.Fatalf("PeakInFlight = %d, want 8", p)
	}
	r.dev.SetHold(false)
	r.dev.ReleaseAll()
	wg.Wait()
	for i, a := range ops {
		<-a.done
		if a.Err != nil {
			t.Fatalf("op %d: %v", i, a.Err)
		}
	}
	got := r.readAll(8 * 4096)
	for i := 0; i < 8; i++ {
		blk := got[i*4096 : (i+1)*4096]
		if !bytes.Equal(blk[512:1024], ops[i].Buf) || !bytes.Equal(blk[:512], make([]byte, 512)) ||
			!bytes.Equal(blk[1024:], make([]byte, 3072)) {
			t.Fatalf("block %d content wrong", i)
		}
	}
	r.checkIdle()
}

// TestSeed003_PartialDirectThenFallbackExactBytes (seed 003, I4): after a
// partial direct write the buffered remainder starts at exactly the byte
// where the direct part ended, nothing is written twice, and the result
// counts every byte.
//
// Checked by hand: starting the remainder at op.Off instead of dend in
// bufferedRemainder makes this fail ("writeat 100 ..." and a wrong count).
func TestSeed003_PartialDirectThenFallbackExactBytes(t *testing.T) {
	r := newRig(t, rigOpts{policy: BufferedFallback})
	old := pattern(3*4096, 50)
	r.writeFile(0, 1, 3*4096, old)
	r.ext.setWritten(testIno, 2, 1, 3*4096)
	r.dev.WriteRaw(r.ext.devBlock(testIno, 2)*testBS, old[8192:])
	// Block 0 written, block 1 a hole inside the size, block 2 written.
	data := pattern(11900, 9)
	n, err := r.e.WriteAt(r.in, data, 100, 0)
	if n != 11900 || err != nil {
		t.Fatalf("write = %d, %v; want 11900, nil", n, err)
	}
	var writes []string
	for _, c := range r.cache.Calls() {
		if strings.HasPrefix(c, "writeat") {
			writes = append(writes, c)
		}
	}
	if !slices.Equal(writes, []string{"writeat 4096 7904"}) {
		t.Fatalf("buffered part = %q, want exactly [writeat 4096 7904]", writes)
	}
	want := append([]byte(nil), old...)
	copy(want[4096:8192], make([]byte, 4096))
	copy(want[100:], data)
	if got := r.readAll(3 * 4096); !bytes.Equal(got, want) {
		t.Fatal("file content mismatch")
	}
	r.checkIdle()
}

// TestSeed003_EIOOnSomeRequestsOneCompletion (seed 003, I2/I3/I9): EIO on
// some of an op's device requests gives exactly one completion carrying
// the error, after every request finished, with op state recycled through
// the pool (use after free shows up under -race and as double
// completions), locks released and the drain ended.
//
// Checked by hand: completing the op from requestDone on the first error
// (instead of dropping a reference) makes this fail with double
// completions and races.
func TestSeed003_EIOOnSomeRequestsOneCompletion(t *testing.T) {
	r := newRig(t, rigOpts{sim: sim.Options{MaxIO: 4096, Seed: 11, Completers: 2}})
	r.writeFile(0, 16, 16*4096, nil)
	dev3 := r.ext.devBlock(testIno, 3) * testBS
	dev9 := r.ext.devBlock(testIno, 9) * testBS
	r.dev.FailRange(sim.OpWrite, dev3, 512)
	r.dev.FailRange(sim.OpWrite, dev9, 512)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := alignbuf.Alloc(16 * 4096)
			for i := 0; i < 25; i++ {
				a := r.newOp(buf, 0, 0)
				if err := r.e.Write(&a.Op); err != nil {
					t.Error(err)
					return
				}
				<-a.done
				if a.N != 0 || !errors.Is(a.Err, syscall.EIO) {
					t.Errorf("completion = %d, %v; want 0, EIO", a.N, a.Err)
				}
				// A clean op right after reuses pooled state.
				b := r.newOp(buf[:4096], 0, 0)
				if err := r.e.Write(&b.Op); err != nil {
					t.Error(err)
					return
				}
				<-b.done
				if b.N != 4096 || b.Err != nil {
					t.Errorf("clean op = %d, %v", b.N, b.Err)
				}
			}
		}()
	}
	wg.Wait()
	yield() // any duplicate completion would be reported by newOp's Done
	r.checkIdle()
}

// TestSeed003_RejectedNeverCompleted (seed 003 update, I2): an op the
// engine rejects is never completed; an op the device rejects (closed
// device) after the engine accepted it completes once with the error.
func TestSeed003_RejectedNeverCompleted(t *testing.T) {
	r := newRig(t, rigOpts{})
	a := r.newOp(make([]byte, 10), -1, 0)
	if err := r.e.Write(&a.Op); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("negative offset: %v", err)
	}
	r.dev.Close()
	b := r.newOp(alignbuf.Alloc(4096), 0, 0)
	if err := r.e.Write(&b.Op); err != nil {
		t.Fatalf("engine rejected: %v", err)
	}
	<-b.done
	if !errors.Is(b.Err, syscall.EBADF) || b.N != 0 {
		t.Fatalf("completion = %d, %v; want EBADF", b.N, b.Err)
	}
	yield()
	if a.completed() {
		t.Fatal("rejected op completed")
	}
	r.checkIdle()
}

// TestSeed004_InvalidationFailureBeforeSubmit (seed 004, I5/I2): a failed
// invalidation before submission fails the op with the error and submits
// nothing; a failed invalidation after completion never changes the
// result; a clean page a buffered reader loaded while the write was in
// flight is dropped after it completes.
//
// Checked by hand: ignoring the first Invalidate's error in Write makes
// the first half fail (requests submitted, no error); removing the
// second Invalidate in endWrite makes the last check fail.
func TestSeed004_InvalidationFailureBeforeSubmit(t *testing.T) {
	r := newRig(t, rigOpts{sim: sim.Options{Hold: true}})
	r.cache.invalErrs = []error{fmt.Errorf("fake page busy: %w", syscall.EBUSY)}
	a := r.newOp(alignbuf.Alloc(4096), 0, 0)
	if err := r.e.Write(&a.Op); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("err = %v, want EBUSY", err)
	}
	if s := r.dev.Stats().Submitted; s != 0 {
		t.Fatalf("%d requests submitted after a failed invalidation", s)
	}
	yield()
	if a.completed() {
		t.Fatal("failed op completed too")
	}
	r.checkIdle()

	// Second invalidation fails: the outcome is unchanged.
	r.cache.invalErrs = []error{nil, fmt.Errorf("fake page busy: %w", syscall.EBUSY)}
	b := r.newOp(alignbuf.Alloc(4096), 0, 0)
	if err := r.e.Write(&b.Op); err != nil {
		t.Fatal(err)
	}
	ps := r.waitHeld(1)
	// A buffered reader faults the old (zero) page in meanwhile.
	r.cache.mu.Lock()
	r.cache.pages[0] = make([]byte, testBS)
	r.cache.mu.Unlock()
	r.dev.Release(ps[0])
	<-b.done
	if b.N != 4096 || b.Err != nil {
		t.Fatalf("completion = %d, %v; want 4096, nil", b.N, b.Err)
	}

	// And once more with a working invalidation: the stale page goes.
	r.cache.mu.Lock()
	r.cache.invalErrs = nil
	r.cache.mu.Unlock()
	c := r.newOp(alignbuf.Alloc(4096), 0, 0)
	if err := r.e.Write(&c.Op); err != nil {
		t.Fatal(err)
	}
	ps = r.waitHeld(1)
	r.cache.mu.Lock()
	r.cache.pages[0] = make([]byte, testBS)
	r.cache.mu.Unlock()
	r.dev.Release(ps[0])
	<-c.done
	r.cache.mu.Lock()
	_, stale := r.cache.pages[0]
	r.cache.mu.Unlock()
	if stale {
		t.Fatal("clean page loaded during the write survived its completion")
	}
	r.checkIdle()
}

// TestNowaitEAGAIN: RWF_NOWAIT returns EAGAIN instead of waiting for the
// inode lock, a block range lock or the drain, and submits nothing.
func TestNowaitEAGAIN(t *testing.T) {
	r := newRig(t, rigOpts{sim: sim.Options{Hold: true}})
	r.in.Lock.TryLock()
	for _, write := range []bool{false, true} {
		a := r.newOp(alignbuf.Alloc(4096), 0, NoWait)
		var err error
		if write {
			err = r.e.Write(&a.Op)
		} else {
			err = r.e.Read(&a.Op)
		}
		if !errors.Is(err, syscall.EAGAIN) {
			t.Fatalf("write=%v under a held inode lock: %v, want EAGAIN", write, err)
		}
	}
	r.in.Lock.Unlock()
	// A sub-block write holds block 0's range lock while in flight.
	a := r.newOp(make([]byte, 512), 0, 0)
	if err := r.e.Write(&a.Op); err != nil {
		t.Fatal(err)
	}
	ps := r.waitHeld(1)
	b := r.newOp(make([]byte, 512), 1024, NoWait)
	if err := r.e.Write(&b.Op); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("NOWAIT write into a locked block: %v, want EAGAIN", err)
	}
	// A write that must zero past EOF needs the drain: in flight → EAGAIN.
	r.dev.Release(ps[0])
	<-a.done
	c := r.newOp(make([]byte, 512), 512, 0)
	if err := r.e.Write(&c.Op); err != nil {
		t.Fatal(err)
	}
	ps = r.waitHeld(1)
	d := r.newOp(make([]byte, 10), 20000, NoWait)
	if err := r.e.Write(&d.Op); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("NOWAIT write needing the drain: %v, want EAGAIN", err)
	}
	if s := r.dev.Stats().Submitted; s != 2 {
		t.Fatalf("%d requests submitted, want 2", s)
	}
	r.dev.Release(ps[0])
	<-c.done
	yield()
	if b.completed() || d.completed() {
		t.Fatal("rejected NOWAIT op completed")
	}
	r.checkIdle()
}

// TestDSyncCommits (I10): an RWF_DSYNC write completes only after a
// metadata commit; a plain overwrite does not commit.
//
// Checked by hand: dropping the DSync Commit in endWrite makes it fail
// ("commits at completion = 0 (err <nil>), want 1").
func TestDSyncCommits(t *testing.T) {
	r := newRig(t, rigOpts{})
	var commitsAtDone int
	a := r.newOp(alignbuf.Alloc(4096), 0, DSync)
	inner := a.Op.Done
	a.Op.Done = func(op *Op) { commitsAtDone = r.ext.commitCount(); inner(op) }
	if err := r.e.Write(&a.Op); err != nil {
		t.Fatal(err)
	}
	<-a.done
	if commitsAtDone != 1 || a.Err != nil {
		t.Fatalf("commits at completion = %d (err %v), want 1", commitsAtDone, a.Err)
	}
	if _, err := r.e.WriteAt(r.in, alignbuf.Alloc(4096), 0, 0); err != nil {
		t.Fatal(err)
	}
	if c := r.ext.commitCount(); c != 1 {
		t.Fatalf("plain overwrite committed (%d)", c)
	}
}

// TestSubSectorRMWExcludesOverwrites (I6 for StrictAlignment false): a
// write with a partial sector read-modify-writes that sector; it must not
// read it while an aligned overwrite of the same sector (which takes no
// range lock) is in flight, or it would write the old bytes back over the
// overwrite after it completed.
//
// Checked by hand: starting such writes with the inode lock shared (excl
// := false in Write) makes this fail: the overwrite's bytes are lost.
func TestSubSectorRMWExcludesOverwrites(t *testing.T) {
	r := newRig(t, rigOpts{sim: sim.Options{Hold: true}})
	r.writeFile(0, 1, 4096, pattern(4096, 1))
	over := alignbuf.Alloc(512)
	copy(over, bytes.Repeat([]byte{'O'}, 512))
	a := r.newOp(over, 0, 0)
	if err := r.e.Write(&a.Op); err != nil {
		t.Fatal(err)
	}
	pa := r.waitHeld(1)
	b := r.newOp(bytes.Repeat([]byte{'U'}, 100), 100, 0)
	berr := make(chan error, 1)
	go func() { berr <- r.e.Write(&b.Op) }()
	// Wait until the unaligned write either drains (holding the inode lock
	// exclusive, as it must) or has its edge-sector read on the device.
	for {
		if w, _ := r.in.Lock.Held(); w {
			break
		}
		if len(r.dev.Held()) > 1 {
			// Broken (the unaligned write went ahead): let it finish
			// entirely before the overwrite lands, the interleaving that
			// loses data.
			for !b.completed() {
				for _, p := range r.dev.Held() {
					if p != pa[0] {
						r.dev.Release(p)
					}
				}
				runtime.Gosched()
			}
			break
		}
		runtime.Gosched()
	}
	r.dev.SetHold(false)
	r.dev.Release(pa[0])
	<-a.done
	if err := <-berr; err != nil {
		t.Fatal(err)
	}
	<-b.done
	want := pattern(4096, 1)
	copy(want, over)
	copy(want[100:], b.Buf)
	if got := r.readAll(4096); !bytes.Equal(got, want) {
		t.Fatalf("sector 0 = %q..., want the overwrite's bytes around the unaligned write", got[:8])
	}
	r.checkIdle()
}

// TestSubSectorRMWHoldsUntilEndIO (I6 for StrictAlignment false; found by
// TestConcurrentWritersNoLossNoStale): a write with a partial sector writes
// the whole sector back from a read-modify-write; while that write is in
// flight, an aligned overwrite of the same sector submitted after it must
// not reach the device, or the RMW's older bytes could land after it and
// erase it. Partial-sector writes therefore keep the inode lock exclusive
// until their end-I/O.
//
// Checked by hand: releasing the lock at submission (holdLock never set)
// lets the overwrite be held together with the RMW write; completing the
// overwrite first then loses its bytes and fails this test.
func TestSubSectorRMWHoldsUntilEndIO(t *testing.T) {
	r := newRig(t, rigOpts{sim: sim.Options{Hold: true}})
	r.writeFile(0, 1, 4096, pattern(4096, 1))
	ctx := ctxT(t)
	b := r.newOp(bytes.Repeat([]byte{'U'}, 100), 100, 0)
	berr := make(chan error, 1)
	go func() { berr <- r.e.Write(&b.Op) }()
	isWrite := func(p *sim.Pending) bool { return p.Kind == device.Write }
	rd, err := r.dev.WaitFor(ctx, func(p *sim.Pending) bool { return p.Kind == device.Read })
	if err != nil {
		t.Fatal(err)
	}
	r.dev.Release(rd) // the edge-sector read
	pb, err := r.dev.WaitFor(ctx, isWrite)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-berr; err != nil {
		t.Fatal(err)
	}
	over := alignbuf.Alloc(512)
	copy(over, bytes.Repeat([]byte{'O'}, 512))
	a := r.newOp(over, 0, 0)
	aerr := make(chan error, 1)
	go func() { aerr <- r.e.Write(&a.Op) }()
	yield()
	if held := r.dev.Held(); len(held) > 1 {
		// Broken: the overwrite is on the device with the RMW write still
		// in flight. Complete it first, the order that loses it.
		for _, p := range held {
			if p != pb {
				r.dev.Release(p)
				<-p.Completed()
			}
		}
	}
	r.dev.Release(pb)
	<-b.done
	r.dev.SetHold(false)
	r.dev.ReleaseAll()
	if err := <-aerr; err != nil {
		t.Fatal(err)
	}
	<-a.done
	if a.Err != nil || b.Err != nil {
		t.Fatal(a.Err, b.Err)
	}
	want := pattern(4096, 1)
	copy(want, over)
	if got := r.readAll(4096); !bytes.Equal(got, want) {
		t.Fatalf("sector 0 = %q...%q, want the later overwrite's bytes", got[:4], got[100:104])
	}
	r.checkIdle()
}
