package device_test

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/alignbuf"
)

// benchFlushMix keeps qd requests in flight: 4 KiB random reads with one
// Flush per every requests (the mix of `aiodio demo`, where the io_uring
// engine on tmpfs was 3-4x slower than the thread pool). Reports the mean
// latency of reads and of flushes.
func benchFlushMix(b *testing.B, d device.Device, qd, every int) {
	type slot struct {
		req   device.Request
		one   [1]*device.Request
		rng   *rand.Rand
		start time.Time
	}
	span := min(d.Info().Size, benchSpan) / 4096
	var issued atomic.Int64
	var wg sync.WaitGroup
	n := int64(b.N)
	var failed atomic.Value
	var rsum, rcnt, fsum, fcnt atomic.Int64
	buf := make([]*slot, qd)
	setup := func(s *slot, k int64) {
		if k%int64(every) == 0 {
			s.req.Kind = device.Flush
		} else {
			s.req.Kind = device.Read
			s.req.Off = s.rng.Int64N(span) * 4096
		}
		s.start = time.Now()
	}
	for i := range buf {
		s := &slot{rng: rand.New(rand.NewPCG(uint64(i), 7))}
		s.one[0] = &s.req
		s.req = device.Request{Kind: device.Read, Buf: alignbuf.Alloc(4096)}
		s.req.Done = func(r *device.Request) {
			el := time.Since(s.start).Nanoseconds()
			if r.Kind == device.Flush {
				fsum.Add(el)
				fcnt.Add(1)
			} else {
				rsum.Add(el)
				rcnt.Add(1)
			}
			if r.Err != nil {
				failed.Store(r.Err)
			}
			k := issued.Add(1)
			if k > n {
				wg.Done()
				return
			}
			setup(s, k)
			if _, err := d.Submit(s.one[:]...); err != nil {
				failed.Store(err)
				wg.Done()
			}
		}
		buf[i] = s
	}
	b.ResetTimer()
	issued.Store(int64(qd))
	for i, s := range buf {
		wg.Add(1)
		setup(s, int64(i+1))
		if _, err := d.Submit(s.one[:]...); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
	if v := failed.Load(); v != nil {
		b.Fatal(v)
	}
	if c := rcnt.Load(); c > 0 {
		b.ReportMetric(float64(rsum.Load())/float64(c)/1e3, "read-us")
	}
	if c := fcnt.Load(); c > 0 {
		b.ReportMetric(float64(fsum.Load())/float64(c)/1e3, "flush-us")
	}
}

func BenchmarkUringShmFlushMixQD32(b *testing.B) {
	benchFlushMix(b, benchImage(b, shmBenchDir(b), "uring"), 32, 20)
}

func BenchmarkThreadsShmFlushMixQD32(b *testing.B) {
	benchFlushMix(b, benchImage(b, shmBenchDir(b), "threads"), 32, 20)
}
