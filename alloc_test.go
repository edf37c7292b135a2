package aiodio

import (
	"context"
	"os"
	"syscall"
	"testing"
)

// TestRingSteadyStateAllocs measures allocations per direct overwrite and
// read through a Ring (Submit + Wait) once warm; DESIGN §8 wants zero. The
// RAM device completes on its own goroutines, whose allocations count too.
func TestRingSteadyStateAllocs(t *testing.T) {
	v, f, buf := allocTestFile(t)
	r, err := v.NewRing(4)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ops := []Op{{Code: OpWrite, File: f, Buf: buf, Off: 8192}, {Code: OpRead, File: f, Buf: buf, Off: 8192}}
	out := make([]Completion, 2)
	ctx := context.Background()
	step := func() {
		for i := range ops {
			if n, err := r.Submit(ops[i]); n != 1 {
				t.Fatal(err)
			}
			if n, err := r.Wait(ctx, 1, out); n != 1 || err != nil || out[0].Err != nil {
				t.Fatalf("wait: %d %v %+v", n, err, out[0])
			}
		}
	}
	for range 100 {
		step()
	}
	allocs := testing.AllocsPerRun(200, step)
	t.Logf("allocations per write+read pair through the ring: %.2f", allocs)
	if allocs >= 1 {
		t.Errorf("steady-state direct ring path allocates %.2f times per write+read pair", allocs)
	}
	sync := func() {
		if n, err := f.WriteAt(buf, 12288); n != len(buf) || err != nil {
			t.Fatal(err)
		}
		if n, err := f.ReadAt(buf, 12288); n != len(buf) || err != nil {
			t.Fatal(err)
		}
	}
	allocs = testing.AllocsPerRun(200, sync)
	t.Logf("allocations per synchronous direct WriteAt+ReadAt: %.2f", allocs)
	if allocs >= 1 {
		t.Errorf("synchronous direct path allocates %.2f times per write+read pair", allocs)
	}
}

// TestRingFuncSteadyStateAllocs is TestRingSteadyStateAllocs for a function
// ring (NewRingFunc): a direct overwrite and a read, each waited for through
// the function, allocate nothing once warm.
func TestRingFuncSteadyStateAllocs(t *testing.T) {
	v, f, buf := allocTestFile(t)
	done := make(chan Completion, 1)
	r, err := v.NewRingFunc(4, func(c Completion) { done <- c })
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ops := []Op{{Code: OpWrite, File: f, Buf: buf, Off: 8192}, {Code: OpRead, File: f, Buf: buf, Off: 8192}}
	step := func() {
		for i := range ops {
			if n, err := r.Submit(ops[i]); n != 1 {
				t.Fatal(err)
			}
			if c := <-done; c.Err != nil || c.N != len(buf) {
				t.Fatalf("completion %+v", c)
			}
		}
	}
	for range 100 {
		step()
	}
	allocs := testing.AllocsPerRun(200, step)
	t.Logf("allocations per write+read pair through a function ring: %.2f", allocs)
	if allocs >= 1 {
		t.Errorf("steady-state direct function-ring path allocates %.2f times per write+read pair", allocs)
	}
}

// allocTestFile skips under -race (allocation counts are meaningless
// there) and returns a RAM volume with a written 1 MiB direct file and a
// 4 KiB aligned buffer; the file is closed when the test ends.
func allocTestFile(t *testing.T) (*testVolume, *File, []byte) {
	t.Helper()
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	v := newMemVolume(t, 64<<20, Options{})
	f := mustOpen(t, v.Volume, "f", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT)
	t.Cleanup(func() { f.Close() })
	mustWrite(t, f, AlignedBuffer(1<<20), 0)
	return v, f, AlignedBuffer(4096)
}

// BenchmarkRingDirect4K measures a 4 KiB direct overwrite + read through a
// ring on a RAM device (go test -bench RingDirect -benchmem).
func BenchmarkRingDirect4K(b *testing.B) {
	v := newMemVolume(b, 64<<20, Options{})
	f := mustOpen(b, v.Volume, "f", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT)
	defer f.Close()
	mustWrite(b, f, AlignedBuffer(1<<20), 0)
	r, _ := v.NewRing(64)
	defer r.Close()
	bufs := make([][]byte, 32)
	for i := range bufs {
		bufs[i] = AlignedBuffer(4096)
	}
	out := make([]Completion, 32)
	ops := make([]Op, 32)
	b.ReportAllocs()
	b.SetBytes(32 * 4096)
	b.ResetTimer()
	for i := range b.N {
		for j := range ops {
			ops[j] = Op{Code: OpCode(i % 2), File: f, Buf: bufs[j], Off: int64(j) * 4096 * 8}
		}
		if n, err := r.Submit(ops...); n != len(ops) {
			b.Fatal(err)
		}
		for got := 0; got < len(ops); {
			n, err := r.Wait(context.Background(), 1, out)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
	}
}

// BenchmarkBufferedReadAt4KParallel measures cached 4 KiB random reads
// through File.ReadAt (issue 4 target: >= 1M ops/s with 2 goroutines).
func BenchmarkBufferedReadAt4KParallel(b *testing.B) {
	v := newMemVolume(b, 256<<20, Options{CacheBytes: 128 << 20})
	f := mustOpen(b, v.Volume, "f", os.O_RDWR|os.O_CREATE)
	defer f.Close()
	const size = 32 << 20
	mustWrite(b, f, make([]byte, size), 0)
	buf := make([]byte, size)
	if _, err := f.ReadAt(buf, 0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(4096)
	b.SetParallelism(1)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		p := make([]byte, 4096)
		x := uint64(12345)
		for pb.Next() {
			x = x*6364136223846793005 + 1442695040888963407
			off := int64(x>>20) % (size / 4096) * 4096
			if _, err := f.ReadAt(p, off); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBufferedReadAt128KSeq measures cached 128 KiB sequential reads
// (issue 4 target: >= 2 GiB/s from one goroutine).
func BenchmarkBufferedReadAt128KSeq(b *testing.B) {
	v := newMemVolume(b, 256<<20, Options{CacheBytes: 128 << 20})
	f := mustOpen(b, v.Volume, "f", os.O_RDWR|os.O_CREATE)
	defer f.Close()
	const size = 32 << 20
	mustWrite(b, f, make([]byte, size), 0)
	p := make([]byte, 128<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	b.ResetTimer()
	var off int64
	for range b.N {
		if _, err := f.ReadAt(p, off); err != nil {
			b.Fatal(err)
		}
		off = (off + int64(len(p))) % size
	}
}

// BenchmarkBufferedWriteSeq128K measures sequential 128 KiB buffered writes
// (with a Sync every 32 MiB) on a RAM device: the page cache, reservation,
// delayed allocation and writeback together.
func BenchmarkBufferedWriteSeq128K(b *testing.B) {
	v := newMemVolume(b, 1<<30, Options{})
	f := mustOpen(b, v.Volume, "f", os.O_RDWR|os.O_CREATE)
	defer f.Close()
	p := make([]byte, 128<<10)
	const span = 512 << 20
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	b.ResetTimer()
	var off int64
	for range b.N {
		if _, err := f.WriteAt(p, off); err != nil {
			b.Fatal(err)
		}
		off += int64(len(p))
		if off%(32<<20) == 0 {
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		if off >= span {
			off = 0
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
}
