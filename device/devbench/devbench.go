package devbench

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/alignbuf"
)

// Workload describes one benchmark run.
type Workload struct {
	Name       string
	BlockSize  int  // bytes per request
	QueueDepth int  // requests kept in flight
	Random     bool // random block-aligned offsets; else sequential, wrapping
	Write      bool // writes (of random bytes); else reads
	// Duration of the run; 0 means 5 s.
	Duration time.Duration
	// Span is the byte range [0, Span) used; 0 or more than the device
	// means the whole device.
	Span int64
}

// Workloads are the standard workloads of `aiodio bench device`.
var Workloads = []Workload{
	{Name: "randread-4k-qd32", BlockSize: 4096, QueueDepth: 32, Random: true},
	{Name: "randwrite-4k-qd32", BlockSize: 4096, QueueDepth: 32, Random: true, Write: true},
	{Name: "seqwrite-128k-qd8", BlockSize: 128 << 10, QueueDepth: 8, Write: true},
	{Name: "seqread-128k-qd8", BlockSize: 128 << 10, QueueDepth: 8},
}

// Lookup returns the standard workload with the given name.
func Lookup(name string) (Workload, bool) {
	for _, w := range Workloads {
		if w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}

// Result is what a run measured.
type Result struct {
	Ops      int64
	Bytes    int64
	Elapsed  time.Duration
	IOPS     float64
	MiBps    float64
	P50, P99 time.Duration
}

// histogram is a log-linear latency histogram in nanoseconds.
type histogram struct {
	counts [64 * subBuckets]atomic.Int64
}

const subBits = 4
const subBuckets = 1 << subBits

func bucketOf(ns int64) int {
	if ns < subBuckets {
		if ns < 0 {
			return 0
		}
		return int(ns)
	}
	e := bits.Len64(uint64(ns)) - 1 // ns in [2^e, 2^(e+1))
	m := int(uint64(ns)>>(e-subBits)) & (subBuckets - 1)
	return (e-subBits+1)*subBuckets + m
}

// bucketUpper returns the upper bound (exclusive) of bucket i in ns.
func bucketUpper(i int) int64 {
	if i < subBuckets {
		return int64(i) + 1
	}
	e := i/subBuckets + subBits - 1
	m := int64(i % subBuckets)
	return (int64(1)<<e + m<<(e-subBits)) + int64(1)<<(e-subBits)
}

func (h *histogram) add(d time.Duration) { h.counts[bucketOf(int64(d))].Add(1) }

func (h *histogram) quantile(q float64) time.Duration {
	var total int64
	for i := range h.counts {
		total += h.counts[i].Load()
	}
	if total == 0 {
		return 0
	}
	rank := int64(q*float64(total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return time.Duration(bucketUpper(i))
		}
	}
	return time.Duration(bucketUpper(len(h.counts) - 1))
}

// slot is one in-flight request of a run.
type slot struct {
	req device.Request
	// one holds &req: passing one[:]... to the interface method Submit
	// does not allocate, while Submit(&req) would build a heap slice.
	one   [1]*device.Request
	r     *run
	rng   *rand.Rand
	start time.Time
}

type run struct {
	dev      device.Device
	w        Workload
	blocks   int64 // span in blocks
	cursor   atomic.Int64
	stop     atomic.Bool
	ops      atomic.Int64
	inflight sync.WaitGroup
	errOnce  sync.Once
	err      error
	hist     *histogram
	deadline time.Time
}

func (r *run) fail(err error) {
	r.errOnce.Do(func() { r.err = err })
	r.stop.Store(true)
}

// next picks the request's next offset; now is its submission time.
func (s *slot) next(now time.Time) {
	r := s.r
	var blk int64
	if r.w.Random {
		blk = s.rng.Int64N(r.blocks)
	} else {
		blk = (r.cursor.Add(1) - 1) % r.blocks
	}
	s.req.Off = blk * int64(r.w.BlockSize)
	s.start = now
}

func (s *slot) done(req *device.Request) {
	r := s.r
	now := time.Now()
	if req.Err != nil {
		r.fail(fmt.Errorf("devbench: %s: %w", r.w.Name, req.Err))
		r.inflight.Done()
		return
	}
	r.hist.add(now.Sub(s.start))
	r.ops.Add(1)
	if r.stop.Load() || now.After(r.deadline) {
		r.stop.Store(true)
		r.inflight.Done()
		return
	}
	s.next(now) // one clock read per op: this completion's end is the next start
	if _, err := r.dev.Submit(s.one[:]...); err != nil {
		r.fail(fmt.Errorf("devbench: %s: resubmit: %w", r.w.Name, err))
		r.inflight.Done()
	}
}

// Run runs w against dev until w.Duration passes or ctx is done, calling
// progress (if not nil) about ten times a second with the operations done
// so far. A request error stops the run and is returned with the partial
// result; so is ctx's error when it ended the run early.
func Run(ctx context.Context, dev device.Device, w Workload, progress func(done int64)) (Result, error) {
	in := dev.Info()
	if w.BlockSize <= 0 || w.BlockSize%in.LogicalBlockSize != 0 || w.BlockSize > in.MaxIO {
		return Result{}, fmt.Errorf("devbench: %s: block size %d must be a positive multiple of the logical block size %d, at most %d: %w",
			w.Name, w.BlockSize, in.LogicalBlockSize, in.MaxIO, syscall.EINVAL)
	}
	if w.QueueDepth <= 0 {
		w.QueueDepth = 1
	}
	if w.Duration <= 0 {
		w.Duration = 5 * time.Second
	}
	span := w.Span
	if span <= 0 || span > in.Size {
		span = in.Size
	}
	r := &run{dev: dev, w: w, blocks: span / int64(w.BlockSize), hist: new(histogram)}
	if r.blocks < 1 {
		return Result{}, fmt.Errorf("devbench: %s: span %d smaller than one block of %d: %w", w.Name, span, w.BlockSize, syscall.EINVAL)
	}
	slots := make([]*slot, w.QueueDepth)
	kind := device.Read
	if w.Write {
		kind = device.Write
	}
	seed := uint64(time.Now().UnixNano())
	for i := range slots {
		s := &slot{r: r, rng: rand.New(rand.NewPCG(seed, uint64(i)))}
		buf := alignbuf.Alloc(w.BlockSize)
		for j := range buf {
			buf[j] = byte(s.rng.Uint32())
		}
		s.req = device.Request{Kind: kind, Buf: buf, Done: s.done}
		s.one[0] = &s.req
		slots[i] = s
	}

	start := time.Now()
	r.deadline = start.Add(w.Duration)
	for _, s := range slots {
		s.next(time.Now())
		r.inflight.Add(1)
		if _, err := dev.Submit(s.one[:]...); err != nil {
			r.inflight.Done()
			r.fail(fmt.Errorf("devbench: %s: submit: %w", w.Name, err))
			break
		}
	}
	finished := make(chan struct{})
	go func() { r.inflight.Wait(); close(finished) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var ctxErr error
wait:
	for {
		select {
		case <-finished:
			break wait
		case <-tick.C:
			if progress != nil {
				progress(r.ops.Load())
			}
		case <-ctx.Done():
			ctxErr = ctx.Err()
			r.stop.Store(true)
			<-finished
			break wait
		}
	}
	elapsed := time.Since(start)
	ops := r.ops.Load()
	if progress != nil {
		progress(ops)
	}
	res := Result{Ops: ops, Bytes: ops * int64(w.BlockSize), Elapsed: elapsed,
		P50: r.hist.quantile(0.50), P99: r.hist.quantile(0.99)}
	if secs := elapsed.Seconds(); secs > 0 {
		res.IOPS = float64(ops) / secs
		res.MiBps = float64(res.Bytes) / (1 << 20) / secs
	}
	return res, errors.Join(r.err, ctxErr)
}
