package dio

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aiodio/aiodio/device/sim"
	"github.com/aiodio/aiodio/internal/alignbuf"
)

// TestSerializeUnalignedBaseline: with Options.SerializeUnaligned (the
// ocfs2 baseline of the I6 benchmark) sub-block writes into distinct new
// blocks run one at a time — the second is not submitted while the first
// is in flight, and under NOWAIT it is refused with EAGAIN — while aligned
// writes are not held back. (Without the option they run together:
// TestSeed002_DisjointSubBlockWritesRunInParallel.)
func TestSerializeUnalignedBaseline(t *testing.T) {
	dev := sim.New(sim.Options{Size: testDevSize, SectorSize: 512, Hold: true})
	ext := newFakeExtents(firstDev, testDevSize/testBS)
	e, err := New(dev, ext, Options{BlockSize: testBS, SerializeUnaligned: true})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, dev: dev, ext: ext, e: e, in: NewInode(testIno, 0, nil)}
	t.Cleanup(func() {
		dev.SetHold(false)
		dev.ReleaseAll()
		e.Close()
		dev.Close()
	})
	r.in.GrowSize(8 * testBS)
	a := r.newOp(bytes.Repeat([]byte{'a'}, 1024), 0, 0)
	if err := e.Write(&a.Op); err != nil {
		t.Fatal(err)
	}
	pa := r.waitHeld(1)
	n := r.newOp(bytes.Repeat([]byte{'n'}, 1024), 2*testBS, NoWait)
	if err := e.Write(&n.Op); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("NOWAIT unaligned write while another is in flight: %v, want EAGAIN", err)
	}
	// An aligned write is not serialized.
	al := r.newOp(alignbuf.Alloc(testBS), 3*testBS, 0)
	if err := e.Write(&al.Op); err != nil {
		t.Fatal(err)
	}
	r.waitHeld(2)
	b := r.newOp(bytes.Repeat([]byte{'b'}, 1024), testBS+1024, 0)
	berr := make(chan error, 1)
	go func() { berr <- e.Write(&b.Op) }()
	yield()
	if h := len(dev.Held()); h != 2 {
		t.Fatalf("%d requests held: the second unaligned write was not serialized", h)
	}
	if err := dev.Release(pa[0]); err != nil {
		t.Fatal(err)
	}
	<-a.done
	r.waitHeld(2) // al's and b's
	dev.SetHold(false)
	dev.ReleaseAll()
	if err := <-berr; err != nil {
		t.Fatal(err)
	}
	<-b.done
	<-al.done
	for _, o := range []*asyncOp{a, b, al} {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
	}
	got := r.readAll(2 * testBS)
	if !bytes.Equal(got[:1024], a.Buf) || !bytes.Equal(got[testBS+1024:testBS+2048], b.Buf) {
		t.Fatal("data wrong")
	}
	r.checkIdle()
	// The slot is free again.
	if err := r.in.takeUnaligned(context.Background(), true); err != nil {
		t.Fatalf("unaligned slot still taken: %v", err)
	}
	r.in.releaseUnaligned()
}

// BenchmarkUnaligned8Writers (issue 5 target: range locks ≥ 3× whole-file
// serialization): 8 goroutines, each with one 1 KiB sector-aligned direct
// write in flight at a time, each into a distinct new block (a hole inside
// the file size: allocation, zero padding, conversion at end-I/O) of one
// file, on a sim device with 100µs per request. "rangelocks" is aiodio's
// I6 scheme; "wholefile" adds the 2011 ocfs2 per-inode serialization
// (Options.SerializeUnaligned). ns/op is wall time per write; compare the
// two: go test -run '^$' -bench Unaligned8Writers -benchtime 2000x ./internal/dio
func BenchmarkUnaligned8Writers(b *testing.B) {
	for _, mode := range []struct {
		name string
		ser  bool
	}{{"rangelocks", false}, {"wholefile", true}} {
		b.Run(mode.name, func(b *testing.B) {
			benchUnaligned(b, 8, mode.ser)
		})
	}
}

func benchUnaligned(b *testing.B, writers int, serialize bool) {
	const perWriter = 64 // blocks each writer cycles through
	devSize := int64(firstDev+writers*perWriter+64) * testBS
	dev := sim.New(sim.Options{Size: devSize, SectorSize: 512, Latency: 100 * time.Microsecond})
	ext := newFakeExtents(firstDev, devSize/testBS)
	e, err := New(dev, ext, Options{BlockSize: testBS, SerializeUnaligned: serialize})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { e.Close(); dev.Close() }()
	in := NewInode(testIno, int64(writers*perWriter)*testBS, nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	lat := make([][]time.Duration, writers) // per writer: each write's latency
	b.ReportAllocs()
	b.SetBytes(1024)
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := alignbuf.Alloc(1024)
			for i := 0; next.Add(1) <= int64(b.N); i++ {
				blk := int64(w + writers*(i%perWriter))
				if i >= perWriter {
					// Make it a new block again: only this writer
					// touches it and its last write completed.
					ext.punch(testIno, blk)
				}
				t0 := time.Now()
				if _, err := e.WriteAt(in, buf, blk*testBS+1024, 0); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) > 0 {
		slices.Sort(all)
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
}
