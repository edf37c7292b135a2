package device_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/alignbuf"
)

// benchSpan is the part of the image the benchmarks touch.
const benchSpan = 256 << 20

// benchQD keeps qd requests of bs bytes in flight until b.N have completed;
// each request is resubmitted from its Done callback (the hot path).
func benchQD(b *testing.B, d device.Device, kind device.Kind, bs, qd int) {
	type slot struct {
		req device.Request
		one [1]*device.Request
		rng *rand.Rand
	}
	span := min(d.Info().Size, benchSpan) / int64(bs)
	var issued atomic.Int64
	var wg sync.WaitGroup
	n := int64(b.N)
	slots := make([]*slot, qd)
	var failed atomic.Value
	for i := range slots {
		s := &slot{rng: rand.New(rand.NewPCG(uint64(i), 7))}
		s.one[0] = &s.req
		s.req = device.Request{Kind: kind, Buf: alignbuf.Alloc(bs)}
		s.req.Done = func(r *device.Request) {
			if r.Err != nil {
				failed.Store(r.Err)
			}
			if issued.Add(1) > n {
				wg.Done()
				return
			}
			r.Off = s.rng.Int64N(span) * int64(bs)
			if _, err := d.Submit(s.one[:]...); err != nil {
				failed.Store(err)
				wg.Done()
			}
		}
		slots[i] = s
	}
	// Warm up: fault in the image range (first touch of tmpfs/sparse pages).
	b.ReportAllocs()
	b.SetBytes(int64(bs))
	b.ResetTimer()
	issued.Store(int64(qd))
	for _, s := range slots {
		wg.Add(1)
		s.req.Off = s.rng.Int64N(span) * int64(bs)
		if _, err := d.Submit(s.one[:]...); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
	if v := failed.Load(); v != nil {
		b.Fatal(v)
	}
}

func benchImage(b *testing.B, dir, engine string) device.Device {
	b.Helper()
	path := filepath.Join(dir, "bench.img")
	d, err := device.Open(path, device.OpenOptions{Engine: engine, Create: true, Size: benchSpan})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close(); os.Remove(path) })
	// Fill the image once so reads hit allocated blocks, like fio's layout.
	buf := alignbuf.Alloc(1 << 20)
	var wg sync.WaitGroup
	for off := int64(0); off < benchSpan; off += 1 << 20 {
		wg.Add(1)
		r := &device.Request{Kind: device.Write, Off: off, Buf: buf, Done: func(*device.Request) { wg.Done() }}
		if _, err := d.Submit(r); err != nil {
			b.Fatal(err)
		}
		wg.Wait()
	}
	return d
}

func shmBenchDir(b *testing.B) string {
	dir, err := os.MkdirTemp("/dev/shm", "aiodio-bench-")
	if err != nil {
		b.Skip(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func BenchmarkMemoryRandRead4KQD32(b *testing.B) {
	d := device.NewMemory(benchSpan, 512)
	defer d.Close()
	benchQD(b, d, device.Read, 4096, 32)
}

func BenchmarkUringShmRandRead4KQD32(b *testing.B) {
	benchQD(b, benchImage(b, shmBenchDir(b), "uring"), device.Read, 4096, 32)
}

func BenchmarkUringShmRandWrite4KQD32(b *testing.B) {
	benchQD(b, benchImage(b, shmBenchDir(b), "uring"), device.Write, 4096, 32)
}

func BenchmarkThreadsShmRandRead4KQD32(b *testing.B) {
	benchQD(b, benchImage(b, shmBenchDir(b), "threads"), device.Read, 4096, 32)
}

func BenchmarkThreadsShmRandWrite4KQD32(b *testing.B) {
	benchQD(b, benchImage(b, shmBenchDir(b), "threads"), device.Write, 4096, 32)
}

func BenchmarkUringExt4RandRead4KQD32(b *testing.B) {
	benchQD(b, benchImage(b, b.TempDir(), "uring"), device.Read, 4096, 32)
}

func BenchmarkUringExt4RandWrite4KQD32(b *testing.B) {
	benchQD(b, benchImage(b, b.TempDir(), "uring"), device.Write, 4096, 32)
}

func BenchmarkThreadsExt4RandRead4KQD32(b *testing.B) {
	benchQD(b, benchImage(b, b.TempDir(), "threads"), device.Read, 4096, 32)
}

// benchSync is the pattern of synchronous callers (ReadAt through the dio
// layer): many goroutines, each submitting one request and waiting for it.
func benchSync(b *testing.B, d device.Device, kind device.Kind) {
	span := min(d.Info().Size, benchSpan) / 4096
	var seed atomic.Uint64
	b.ReportAllocs()
	b.SetBytes(4096)
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 1))
		done := make(chan struct{}, 1)
		req := &device.Request{Kind: kind, Buf: alignbuf.Alloc(4096), Done: func(*device.Request) { done <- struct{}{} }}
		one := [1]*device.Request{req}
		for pb.Next() {
			req.Off = rng.Int64N(span) * 4096
			if _, err := d.Submit(one[:]...); err != nil {
				b.Error(err)
				return
			}
			<-done
			if req.Err != nil {
				b.Error(req.Err)
				return
			}
		}
	})
}

func BenchmarkUringShmSyncRead4K(b *testing.B) {
	benchSync(b, benchImage(b, shmBenchDir(b), "uring"), device.Read)
}

func BenchmarkThreadsShmSyncRead4K(b *testing.B) {
	benchSync(b, benchImage(b, shmBenchDir(b), "threads"), device.Read)
}

func BenchmarkUringExt4SyncRead4K(b *testing.B) {
	benchSync(b, benchImage(b, b.TempDir(), "uring"), device.Read)
}

func BenchmarkThreadsExt4SyncRead4K(b *testing.B) {
	benchSync(b, benchImage(b, b.TempDir(), "threads"), device.Read)
}
