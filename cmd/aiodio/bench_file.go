package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/devbench"
	"github.com/aiodio/aiodio/internal/fiorun"
	"github.com/spf13/cobra"
)

// `aiodio bench file`: the workloads of `bench device` through one
// preallocated, fully written file of a volume (direct I/O driven by a Ring),
// beside fio on the volume's backing image; plus unaligned-4k-8writers (I6:
// block range locks against whole-file serialization) and
// buffered-seqwrite-1g (the page cache against fio psync, direct=0).

func init() { addBenchCommand(newBenchFileCmd) }

const (
	wlUnaligned = "unaligned-4k-8writers"
	wlBuffered  = "buffered-seqwrite-1g"
)

type fileBenchOptions struct {
	workloads   []string
	dir         string
	size        sizeValue // the benchmark file
	bufSize     sizeValue // buffered-seqwrite-1g
	engine      string
	seconds     int
	rounds      int
	compareFio  bool
	json        bool
	writers     int
	unalignedIO int
	ring        string // "func" (NewRingFunc) or "wait" (Submit/Wait)
}

func fileWorkloadNames() []string { return append(workloadNames(), wlUnaligned, wlBuffered) }

func newBenchFileCmd(a *app) *cobra.Command {
	o := fileBenchOptions{size: 1 << 30, bufSize: 1 << 30, engine: "auto", seconds: 5, rounds: 1, writers: 8, unalignedIO: 1024, ring: "func"}
	cmd := &cobra.Command{
		Use:   "file",
		Short: "Benchmark direct, async and buffered I/O through a file of a volume (optionally beside fio)",
		Long: "bench file makes a temporary volume on --dir (the image is written in full first,\n" +
			"so every block is real), creates one file of --size and writes it in full, then\n" +
			"runs each workload through it: the four workloads of bench device as direct I/O\n" +
			"driven by a Ring that keeps the queue depth in flight (--ring func: each\n" +
			"completion's function submits the next op, as fio does; --ring wait: one\n" +
			"goroutine reaps completions with Wait and resubmits them), " + wlUnaligned + "\n" +
			"(8 goroutines writing 1 KiB into distinct new blocks of one file, with block\n" +
			"range locks, then with Options.SerializeUnaligned: the whole-file baseline) and\n" +
			wlBuffered + " (--buffered-size bytes written sequentially through the\n" +
			"page cache in 128 KiB writes, then Sync).\n\n" +
			"--compare-fio runs fio after each round: ioengine=io_uring, direct=1 on the\n" +
			"volume's image file (the whole image: the same device) for the four direct\n" +
			"workloads; ioengine=psync, direct=0, end_fsync=1 on a written file of the same\n" +
			"size in --dir for the buffered one. ratio = aiodio IOPS / fio IOPS; for\n" +
			wlUnaligned + " it is the ratio to the serialized baseline.\n\n" +
			"Workloads: " + strings.Join(fileWorkloadNames(), ", ") + ".",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBenchFile(cmd.Context(), a, o) },
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.workloads, "workload", nil, "workloads to run (repeatable or comma list; default all)")
	f.StringVar(&o.dir, "dir", "", "directory of the temporary image (default $TMPDIR or /tmp)")
	f.Var(&o.size, "size", "size of the benchmark file (the image is larger)")
	f.Var(&o.bufSize, "buffered-size", "bytes written by "+wlBuffered)
	f.StringVar(&o.engine, "engine", o.engine, "device engine: auto, uring or threads")
	f.IntVar(&o.seconds, "seconds", o.seconds, "run time of each timed workload")
	f.IntVar(&o.rounds, "rounds", o.rounds, "run each workload this many times (alternating with fio or the baseline) and report the median round")
	f.BoolVar(&o.compareFio, "compare-fio", false, "run fio after each round and print the ratio")
	f.BoolVar(&o.json, "json", false, "print one JSON object instead of tables")
	f.StringVar(&o.ring, "ring", o.ring, "how the direct workloads drive their ring: func (Volume.NewRingFunc) or wait (Ring.Wait)")
	f.IntVar(&o.writers, "writers", o.writers, "goroutines of "+wlUnaligned)
	f.IntVar(&o.unalignedIO, "unaligned-bs", o.unalignedIO, "bytes per write of "+wlUnaligned+" (a multiple of 512, less than the block size)")
	return cmd
}

// fileBench is one run of `bench file`: the volume, its image, the file.
type fileBench struct {
	a     *app
	o     fileBenchOptions
	dir   string
	image string
	dev   device.Device // the volume's device (opened here to report its engine)
	v     *aiodio.Volume
	f     *aiodio.File // the preallocated, fully written benchmark file
	span  int64
	bs    int
}

func runBenchFile(ctx context.Context, a *app, o fileBenchOptions) error {
	if err := checkBenchFlags(o.engine, o.seconds, o.rounds); err != nil {
		return err
	}
	if o.writers < 1 || o.writers > 256 {
		return usagef("--writers %d out of range [1, 256]", o.writers)
	}
	if o.ring != "func" && o.ring != "wait" {
		return usagef("--ring %q: want func or wait", o.ring)
	}
	if o.unalignedIO < 512 || o.unalignedIO%512 != 0 || o.unalignedIO >= 4096 {
		return usagef("--unaligned-bs %d must be a multiple of 512 below 4096", o.unalignedIO)
	}
	names := o.workloads
	if len(names) == 0 {
		names = fileWorkloadNames()
	}
	var ws []devbench.Workload
	var unaligned, buffered bool
	for _, n := range names {
		n = strings.TrimSpace(n)
		switch n {
		case wlUnaligned:
			unaligned = true
		case wlBuffered:
			buffered = true
		default:
			w, ok := devbench.Lookup(n)
			if !ok {
				return usagef("unknown workload %q (want one of %s)", n, strings.Join(fileWorkloadNames(), ", "))
			}
			ws = append(ws, w)
		}
	}
	if int64(o.size) < 2<<20 || int64(o.size)%(128<<10) != 0 {
		return usagef("--size %s must be a multiple of 128KiB and at least 2MiB", formatSize(int64(o.size)))
	}
	if buffered && (int64(o.bufSize) < 1<<20 || int64(o.bufSize)%(128<<10) != 0) {
		return usagef("--buffered-size %s must be a multiple of 128KiB and at least 1MiB", formatSize(int64(o.bufSize)))
	}
	if o.compareFio {
		if _, err := fiorunLookPath(); err != nil {
			return err
		}
	}
	dir := o.dir
	if dir == "" {
		dir = os.TempDir()
	}
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("--dir: %w", err)
	} else if !st.IsDir() {
		return usagef("--dir %s is not a directory", dir)
	}
	tmp, err := os.MkdirTemp(dir, "aiodio-bench-file-")
	if err != nil {
		return fmt.Errorf("creating the benchmark directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	b := &fileBench{a: a, o: o, dir: tmp, image: filepath.Join(tmp, "volume.img"), span: int64(o.size)}
	// Room: the file, the largest scratch workload, metadata and slack.
	scratch := int64(unalignedRegion) * 4096
	if buffered {
		scratch = max(scratch, int64(o.bufSize))
	}
	imgSize := b.span + scratch + b.span/16 + 64<<20
	imgSize = (imgSize + 1<<20 - 1) &^ (1<<20 - 1)
	defer b.closeVolume()
	if err := b.setup(ctx, imgSize); err != nil {
		return err
	}
	if !o.json {
		info := b.dev.Info()
		mode := "direct I/O"
		if info.Cached {
			mode = "CACHED: the filesystem refused O_DIRECT"
		}
		fmt.Fprintf(a.stdout, "aiodio bench file: volume image %s (%s), engine %s (%s), file of %s, block %d B, %ds per workload\n",
			b.image, formatSize(imgSize), info.Engine, mode, formatSize(b.span), b.bs, o.seconds)
	}
	var rep benchReport
	for _, w := range ws {
		row, err := b.directWorkload(ctx, w)
		if err != nil {
			return fmt.Errorf("workload %s: %w", w.Name, err)
		}
		rep.Workloads = append(rep.Workloads, row)
	}
	if unaligned {
		row, err := b.unalignedWorkload(ctx)
		if err != nil {
			return fmt.Errorf("workload %s: %w", wlUnaligned, err)
		}
		rep.Workloads = append(rep.Workloads, row)
	}
	if buffered {
		row, err := b.bufferedWorkload(ctx)
		if err != nil {
			return fmt.Errorf("workload %s: %w", wlBuffered, err)
		}
		rep.Workloads = append(rep.Workloads, row)
	}
	if err := b.closeVolume(); err != nil {
		return fmt.Errorf("closing the volume: %w", err)
	}
	return printFileBench(a, rep, o.json)
}

// setup writes the whole image (so that fio and aiodio read real blocks),
// makes a volume on it, and creates and fills the benchmark file.
func (b *fileBench) setup(ctx context.Context, imgSize int64) error {
	if err := prepareImage(ctx, b.a, b.image, imgSize); err != nil {
		return err
	}
	if err := aiodio.Mkfs(b.image, aiodio.MkfsOptions{}); err != nil {
		return fmt.Errorf("mkfs: %w", err)
	}
	if err := b.openVolume(false); err != nil {
		return err
	}
	v := b.v
	b.bs = v.BlockSize()
	f, err := v.OpenFile("bench", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
	if err != nil {
		return err
	}
	b.f = f
	// Allocate it in one go (contiguous), then write every block.
	if err := f.Fallocate(0, 0, b.span); err != nil {
		return fmt.Errorf("preallocating the file: %w", err)
	}
	const chunk = 1 << 20
	n := (b.span + chunk - 1) / chunk
	p := newCountProgress(b.a, "fill file "+formatSize(b.span), n)
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for g := range errs {
		wg.Add(1)
		go func() { // joined below
			defer wg.Done()
			buf := aiodio.AlignedBuffer(chunk)
			rng := rand.New(rand.NewPCG(uint64(g), 0x66696c6c))
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				off := i * chunk
				m := min(chunk, b.span-off)
				if _, err := f.WriteAt(buf[:m], off); err != nil {
					errs[g] = err
					return
				}
				done.Add(1)
			}
		}()
	}
	tick := time.NewTicker(200 * time.Millisecond)
	fin := make(chan struct{})
	go func() { wg.Wait(); close(fin) }() // ends with the writers
loop:
	for {
		select {
		case <-fin:
			break loop
		case <-tick.C:
			p.update(done.Load())
		}
	}
	tick.Stop()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("filling the file: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing the file: %w", err)
	}
	p.finish(n)
	return nil
}

// openVolume opens the volume on the image (as aiodio.Open does, but with
// the device opened here so that its engine can be reported), with or
// without the whole-file serialization of unaligned direct writes.
func (b *fileBench) openVolume(serialize bool) error {
	dev, err := openDevice(b.image, device.OpenOptions{Engine: b.o.engine, Exclusive: true, Logger: b.a.log})
	if err != nil {
		return fmt.Errorf("opening %s: %w", b.image, err)
	}
	v, err := aiodio.OpenDevice(dev, aiodio.Options{Logger: b.a.log, SerializeUnaligned: serialize})
	if err != nil {
		dev.Close()
		return fmt.Errorf("opening the volume: %w", err)
	}
	b.dev, b.v = dev, v
	return nil
}

// closeVolume closes the benchmark file (if open), the volume and its device.
func (b *fileBench) closeVolume() error {
	var errs []error
	if b.f != nil {
		errs = append(errs, b.f.Close())
	}
	if b.v != nil {
		errs = append(errs, b.v.Close())
	}
	if b.dev != nil {
		errs = append(errs, b.dev.Close())
	}
	b.f, b.v, b.dev = nil, nil, nil
	return errors.Join(errs...)
}

// reopen closes the volume and opens it again, with the whole-file
// serialization of unaligned direct writes (the I6 baseline) or without.
func (b *fileBench) reopen(serialize bool) error {
	if err := b.closeVolume(); err != nil {
		return fmt.Errorf("closing the volume: %w", err)
	}
	if err := b.openVolume(serialize); err != nil {
		return err
	}
	f, err := b.v.OpenFile("bench", os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		b.closeVolume()
		return err
	}
	b.f = f
	return nil
}

// withProgress runs body for a timed phase, showing its op count.
func withProgress[T any](p *progress, body func(done *atomic.Int64) (T, error)) (T, error) {
	var done atomic.Int64
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() { // stopped before withProgress returns
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				p.update(done.Load())
			}
		}
	}()
	res, err := body(&done)
	close(stop)
	<-finished
	p.finish(done.Load())
	return res, err
}

// directWorkload runs one of the bench device workloads through the file,
// rounds times, each followed by fio when comparing.
func (b *fileBench) directWorkload(ctx context.Context, w devbench.Workload) (benchRow, error) {
	dur := time.Duration(b.o.seconds) * time.Second
	var rounds []benchRow
	for i := range b.o.rounds {
		res, err := withProgress(newTimedProgress(b.a, w.Name, dur), func(done *atomic.Int64) (ringResult, error) {
			if b.o.ring == "wait" {
				return runRing(ctx, b.v, b.f, w, b.span, dur, done)
			}
			return runRingFunc(ctx, b.v, b.f, w, b.span, dur, done)
		})
		if err != nil {
			return benchRow{}, err
		}
		row := benchRow{Name: w.Name, IOPS: res.iops(), MiBps: res.mibps(), P50us: usOf(res.hist.quantile(0.5)), P99us: usOf(res.hist.quantile(0.99))}
		if b.o.compareFio {
			fr, err := fiorun.Run(ctx, fiorun.Job{
				File: b.image, RW: fioRW(w.Random, w.Write), BS: w.BlockSize, IODepth: w.QueueDepth,
				Seconds: b.o.seconds, Engine: "io_uring", Direct: true,
			})
			if err != nil {
				return benchRow{}, err
			}
			addFio(&row, fr)
			b.a.log.Info("bench round", "workload", w.Name, "round", i+1, "iops", row.IOPS, "fio_iops", fr.IOPS, "ratio", *row.Ratio)
		} else {
			b.a.log.Info("bench round", "workload", w.Name, "round", i+1, "iops", row.IOPS)
		}
		rounds = append(rounds, row)
	}
	return medianRound(rounds), nil
}

// ringResult is what runRing measured.
type ringResult struct {
	ops, bytes int64
	elapsed    time.Duration
	hist       *latHist
}

func (r ringResult) iops() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

func (r ringResult) mibps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.bytes) / (1 << 20) / r.elapsed.Seconds()
}

// newRingOps makes the w.QueueDepth ops of a ring benchmark on f, each
// with its own buffer of random bytes, and place, which sets op i's next
// offset in [0, span): random block-aligned, or the next sequential block.
// Nothing is allocated after this.
func newRingOps(f *aiodio.File, w devbench.Workload, span int64) (ops []aiodio.Op, place func(i int), err error) {
	qd, bs := w.QueueDepth, int64(w.BlockSize)
	if span < bs*int64(qd) {
		return nil, nil, fmt.Errorf("file of %d bytes too small for %d × %d", span, qd, bs)
	}
	code := aiodio.OpRead
	if w.Write {
		code = aiodio.OpWrite
	}
	ops = make([]aiodio.Op, qd)
	rng := rand.New(rand.NewPCG(uint64(bs), uint64(qd)))
	for i := range ops {
		buf := aiodio.AlignedBuffer(int(bs))
		for k := range buf {
			buf[k] = byte(rng.Uint32())
		}
		ops[i] = aiodio.Op{Code: code, File: f, Buf: buf, UserData: uint64(i)}
	}
	nblocks := span / bs
	var seq int64
	place = func(i int) {
		if w.Random {
			ops[i].Off = rng.Int64N(nblocks) * bs
		} else {
			ops[i].Off = seq
			seq += bs
			if seq+bs > span {
				seq = 0
			}
		}
	}
	return ops, place, nil
}

// runRing keeps w.QueueDepth direct ops in flight on f for dur through a
// Ring: every completion reaped is resubmitted at once (in one Submit per
// Wait). Everything is set up before the clock starts; the loop allocates
// nothing (ops, buffers, the batch, the completions, the random generator and
// the latency histogram are reused).
func runRing(ctx context.Context, v *aiodio.Volume, f *aiodio.File, w devbench.Workload, span int64, dur time.Duration, done *atomic.Int64) (ringResult, error) {
	qd := w.QueueDepth
	res := ringResult{hist: new(latHist)}
	ops, place, err := newRingOps(f, w, span)
	if err != nil {
		return res, err
	}
	r, err := v.NewRing(qd)
	if err != nil {
		return res, err
	}
	defer r.Close()
	starts := make([]time.Time, qd)
	batch := make([]aiodio.Op, 0, qd)
	comps := make([]aiodio.Completion, qd)
	start := time.Now()
	deadline := start.Add(dur)
	for i := range ops {
		place(i)
		starts[i] = start
		batch = append(batch, ops[i])
	}
	inflight := 0
	n, err := r.Submit(batch...)
	inflight += n
	var opErr error
	if err != nil {
		opErr = fmt.Errorf("submit: %w", err)
	}
	// Wait gets a context that is never done: with a cancellable one the
	// ring registers a context.AfterFunc per call (an allocation and a
	// cost fio does not pay). ctx is checked between Waits instead, which
	// is often enough with QD ops in flight.
	waitCtx := context.Background()
	last := start
	for inflight > 0 {
		if opErr == nil && ctx.Err() != nil { // stop submitting; drain
			opErr = ctx.Err()
		}
		got, err := r.Wait(waitCtx, 1, comps)
		if err != nil {
			return res, errors.Join(opErr, fmt.Errorf("wait: %w", err))
		}
		now := time.Now()
		last = now
		batch = batch[:0]
		for _, c := range comps[:got] {
			i := int(c.UserData)
			inflight--
			res.hist.add(now.Sub(starts[i]))
			res.ops++
			res.bytes += int64(c.N)
			if c.Err != nil || c.N != len(ops[i].Buf) {
				opErr = cmpErr(opErr, fmt.Errorf("%v at %d: %d of %d bytes: %w", ops[i].Code, ops[i].Off, c.N, len(ops[i].Buf), c.Err))
			}
			if opErr == nil && now.Before(deadline) {
				place(i)
				starts[i] = now
				batch = append(batch, ops[i])
			}
		}
		done.Store(res.ops)
		if len(batch) > 0 {
			n, err := r.Submit(batch...)
			inflight += n
			if err != nil {
				opErr = cmpErr(opErr, fmt.Errorf("submit: %w", err))
			}
		}
	}
	res.elapsed = last.Sub(start)
	return res, opErr
}

// runRingFunc keeps w.QueueDepth direct ops in flight on f for dur through
// a function ring (Volume.NewRingFunc): the function records each
// completion and submits the op's next offset at once, on the completion
// thread, as fio resubmits each request it reaps. Nothing is allocated per
// op.
func runRingFunc(ctx context.Context, v *aiodio.Volume, f *aiodio.File, w devbench.Workload, span int64, dur time.Duration, done *atomic.Int64) (ringResult, error) {
	res := ringResult{hist: new(latHist)}
	ops, place, err := newRingOps(f, w, span)
	if err != nil {
		return res, err
	}
	starts := make([]time.Time, w.QueueDepth)
	// mu protects everything the function touches: it may run on several
	// goroutines at once (see NewRingFunc).
	var mu sync.Mutex
	var (
		r        *aiodio.Ring
		opErr    error
		inflight int
		last     time.Time
		finished = make(chan struct{})
	)
	start := time.Now()
	deadline := start.Add(dur)
	end := func() { // one op fewer in flight (mu held)
		if inflight--; inflight == 0 {
			close(finished)
		}
	}
	r, err = v.NewRingFunc(w.QueueDepth, func(c aiodio.Completion) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		i := int(c.UserData)
		last = now
		res.hist.add(now.Sub(starts[i]))
		res.ops++
		res.bytes += int64(c.N)
		done.Store(res.ops)
		if c.Err != nil || c.N != len(ops[i].Buf) {
			opErr = cmpErr(opErr, fmt.Errorf("%v at %d: %d of %d bytes: %w", ops[i].Code, ops[i].Off, c.N, len(ops[i].Buf), c.Err))
		}
		if opErr == nil && now.Before(deadline) && ctx.Err() == nil {
			place(i)
			starts[i] = now
			if _, err := r.Submit(ops[i]); err == nil {
				return
			} else {
				opErr = cmpErr(opErr, fmt.Errorf("submit: %w", err))
			}
		}
		end()
	})
	if err != nil {
		return res, err
	}
	defer r.Close()
	mu.Lock()
	for i := range ops {
		place(i)
		starts[i] = start
		if _, err := r.Submit(ops[i]); err != nil {
			opErr = cmpErr(opErr, fmt.Errorf("submit: %w", err))
			break
		}
		inflight++
	}
	if inflight == 0 {
		close(finished)
	}
	mu.Unlock()
	<-finished
	mu.Lock()
	defer mu.Unlock()
	if opErr == nil {
		opErr = ctx.Err()
	}
	res.elapsed = last.Sub(start)
	return res, opErr
}

// cmpErr keeps the first error.
func cmpErr(first, next error) error {
	if first != nil {
		return first
	}
	return next
}

// unalignedRegion is the number of blocks one phase of unaligned-4k-8writers
// writes before the file is emptied and the phase restarts.
const unalignedRegion = 16384

// unalignedWorkload measures sub-block direct writes to distinct new blocks
// of one file by several goroutines, with aiodio's block range locks, then
// on the volume reopened with Options.SerializeUnaligned (the whole-file
// baseline of seed
// 002's ocfs2 fix: one unaligned write in flight per file).
func (b *fileBench) unalignedWorkload(ctx context.Context) (benchRow, error) {
	name := wlUnaligned
	if b.o.writers != 8 || b.o.unalignedIO != 1024 {
		name = fmt.Sprintf("unaligned-%dB-%dwriters", b.o.unalignedIO, b.o.writers)
	}
	dur := time.Duration(b.o.seconds) * time.Second
	var rounds []benchRow
	for i := range b.o.rounds {
		rl, err := withProgress(newTimedProgress(b.a, name, dur), func(done *atomic.Int64) (ringResult, error) {
			return b.runUnaligned(ctx, dur, done)
		})
		if err != nil {
			return benchRow{}, err
		}
		if err := b.reopen(true); err != nil {
			return benchRow{}, err
		}
		ser, err := withProgress(newTimedProgress(b.a, name+" (serialized)", dur), func(done *atomic.Int64) (ringResult, error) {
			return b.runUnaligned(ctx, dur, done)
		})
		if rerr := b.reopen(false); err == nil {
			err = rerr
		}
		if err != nil {
			return benchRow{}, err
		}
		row := benchRow{Name: name, IOPS: rl.iops(), MiBps: rl.mibps(), P50us: usOf(rl.hist.quantile(0.5)), P99us: usOf(rl.hist.quantile(0.99))}
		base, bmib, b50, b99 := ser.iops(), ser.mibps(), usOf(ser.hist.quantile(0.5)), usOf(ser.hist.quantile(0.99))
		row.BaseIOPS, row.BaseMiBps, row.BaseP50us, row.BaseP99us = &base, &bmib, &b50, &b99
		ratio := 0.0
		if base > 0 {
			ratio = row.IOPS / base
		}
		row.Ratio = &ratio
		b.a.log.Info("bench round", "workload", name, "round", i+1, "iops", row.IOPS, "serialized_iops", base, "ratio", ratio)
		rounds = append(rounds, row)
	}
	return medianRound(rounds), nil
}

// runUnaligned runs o.writers goroutines, each writing o.unalignedIO bytes
// at a sector-aligned offset inside blocks no one wrote yet (writer g takes
// the blocks handed out by a shared counter), so every write allocates and
// zeroes the rest of its block. The file's size is set first, so the blocks
// are holes inside the file. When the region is used up, the phase stops
// (not timed), the file is emptied and synced, and the next phase starts.
func (b *fileBench) runUnaligned(ctx context.Context, dur time.Duration, done *atomic.Int64) (ringResult, error) {
	res := ringResult{hist: new(latHist)}
	f, err := b.v.OpenFile("unaligned", os.O_RDWR|os.O_CREATE|os.O_TRUNC|syscall.O_DIRECT, 0o644)
	if err != nil {
		return res, err
	}
	defer func() {
		f.Close()
		b.v.Remove("unaligned")
		b.v.Sync()
	}()
	bs := int64(b.bs)
	ioSize := b.o.unalignedIO
	region := int64(unalignedRegion)
	if err := f.Truncate(region * bs); err != nil {
		return res, err
	}
	writers := b.o.writers
	hists := make([]latHist, writers)
	bufs := make([][]byte, writers)
	for g := range bufs {
		bufs[g] = aiodio.AlignedBuffer(ioSize)
		for k := range bufs[g] {
			bufs[g][k] = byte(g + 1)
		}
	}
	var elapsed time.Duration
	var total atomic.Int64
	for elapsed < dur && ctx.Err() == nil {
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make([]error, writers)
		phaseStart := time.Now()
		deadline := phaseStart.Add(dur - elapsed)
		for g := range writers {
			wg.Add(1)
			go func() { // joined below
				defer wg.Done()
				buf, h := bufs[g], &hists[g]
				for ctx.Err() == nil {
					blk := next.Add(1) - 1
					if blk >= region {
						return
					}
					// A sector-aligned slot inside the block, varying.
					off := blk*bs + (blk%(bs/int64(ioSize)))*int64(ioSize)
					t0 := time.Now()
					if !t0.Before(deadline) {
						return
					}
					_, err := f.WriteAt(buf, off)
					h.add(time.Since(t0))
					if err != nil {
						errs[g] = fmt.Errorf("write of %d bytes at %d: %w", len(buf), off, err)
						return
					}
					done.Store(total.Add(1))
				}
			}()
		}
		wg.Wait()
		elapsed += time.Since(phaseStart)
		if err := errors.Join(errs...); err != nil {
			return res, err
		}
		if elapsed < dur { // region used up: empty the file (untimed)
			if err := f.Truncate(0); err != nil {
				return res, err
			}
			if err := f.Truncate(region * bs); err != nil {
				return res, err
			}
			if err := f.Sync(); err != nil {
				return res, err
			}
		}
	}
	for g := range hists {
		for k, c := range hists[g].counts {
			res.hist.counts[k] += c
		}
		res.hist.n += hists[g].n
	}
	res.ops = total.Load()
	res.bytes = res.ops * int64(ioSize)
	res.elapsed = elapsed
	return res, ctx.Err()
}

// bufferedWorkload writes o.bufSize bytes sequentially through the page cache
// and syncs, rounds times, each followed by fio (psync, direct=0,
// end_fsync=1) on a written file of the same size in the same directory.
func (b *fileBench) bufferedWorkload(ctx context.Context) (benchRow, error) {
	size := int64(b.o.bufSize)
	name := wlBuffered
	if size != 1<<30 {
		name = "buffered-seqwrite-" + strings.ToLower(strings.TrimSuffix(formatSize(size), "iB"))
	}
	fioFile := filepath.Join(b.dir, "fio-buffered.img")
	if b.o.compareFio {
		if err := prepareImage(ctx, b.a, fioFile, size); err != nil {
			return benchRow{}, err
		}
		defer os.Remove(fioFile)
	}
	const chunk = 128 << 10
	var rounds []benchRow
	for i := range b.o.rounds {
		res, err := withProgress(newCountProgress(b.a, name, size/chunk), func(done *atomic.Int64) (ringResult, error) {
			return b.runBuffered(ctx, size, chunk, done)
		})
		if err != nil {
			return benchRow{}, err
		}
		row := benchRow{Name: name, IOPS: res.iops(), MiBps: res.mibps(), P50us: usOf(res.hist.quantile(0.5)), P99us: usOf(res.hist.quantile(0.99))}
		if b.o.compareFio {
			fr, err := fiorun.Run(ctx, fiorun.Job{
				File: fioFile, RW: "write", BS: chunk, IODepth: 1, Size: size,
				Engine: "psync", Direct: false, EndFsync: true, Once: true,
			})
			if err != nil {
				return benchRow{}, err
			}
			addFio(&row, fr)
			b.a.log.Info("bench round", "workload", name, "round", i+1, "mib_s", row.MiBps, "fio_mib_s", fr.MiBps, "ratio", *row.Ratio)
		}
		rounds = append(rounds, row)
	}
	return medianRound(rounds), nil
}

// runBuffered writes size bytes to a new buffered file in chunk-byte writes,
// syncs it (the time includes the Sync), then removes it.
func (b *fileBench) runBuffered(ctx context.Context, size int64, chunk int, done *atomic.Int64) (ringResult, error) {
	res := ringResult{hist: new(latHist)}
	f, err := b.v.OpenFile("buffered", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return res, err
	}
	defer func() {
		f.Close()
		b.v.Remove("buffered")
		b.v.Sync()
	}()
	buf := make([]byte, chunk)
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	start := time.Now()
	for off := int64(0); off < size; off += int64(chunk) {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		t0 := time.Now()
		n, err := f.WriteAt(buf[:min(int64(chunk), size-off)], off)
		res.hist.add(time.Since(t0))
		if err != nil {
			return res, fmt.Errorf("write at %d: %w", off, err)
		}
		res.ops++
		res.bytes += int64(n)
		done.Store(res.ops)
	}
	if err := f.Sync(); err != nil {
		return res, fmt.Errorf("sync: %w", err)
	}
	res.elapsed = time.Since(start)
	return res, nil
}

// printFileBench prints the report: the direct workloads as bench device
// does, then the unaligned and buffered rows with their own references.
func printFileBench(a *app, rep benchReport, asJSON bool) error {
	if asJSON {
		return printBench(a, rep, true)
	}
	var direct, unaligned, buffered []benchRow
	for _, r := range rep.Workloads {
		switch {
		case r.BaseIOPS != nil:
			unaligned = append(unaligned, r)
		case strings.HasPrefix(r.Name, "buffered-"):
			buffered = append(buffered, r)
		default:
			direct = append(direct, r)
		}
	}
	if len(direct) > 0 {
		if err := printBench(a, benchReport{Workloads: direct}, false); err != nil {
			return err
		}
	}
	us := func(v float64) string { return fmtLat(time.Duration(v * float64(time.Microsecond))) }
	if len(unaligned) > 0 {
		fmt.Fprintln(a.stdout)
		t := newTable("workload", "ops/s", "p50", "p99", "serialized ops/s", "serialized p50", "serialized p99", "ratio")
		for _, r := range unaligned {
			t.row(r.Name, fmtCount(r.IOPS), us(r.P50us), us(r.P99us), fmtCount(*r.BaseIOPS), us(*r.BaseP50us), us(*r.BaseP99us),
				fmt.Sprintf("%.2f", *r.Ratio))
		}
		t.write(a.stdout)
		fmt.Fprintln(a.stdout, "ratio = ops/s with block range locks / ops/s with one unaligned write in flight per file (Options.SerializeUnaligned: the whole-file baseline)")
	}
	if len(buffered) > 0 {
		fmt.Fprintln(a.stdout)
		fio := buffered[0].FioIOPS != nil
		head := []string{"workload", "MiB/s", "p50 write", "p99 write"}
		if fio {
			head = append(head, "fio MiB/s", "ratio")
		}
		t := newTable(head...)
		for _, r := range buffered {
			cells := []string{r.Name, fmt.Sprintf("%.1f", r.MiBps), us(r.P50us), us(r.P99us)}
			if fio {
				cells = append(cells, fmt.Sprintf("%.1f", *r.FioMiBps), fmt.Sprintf("%.2f", *r.Ratio))
			}
			t.row(cells...)
		}
		t.write(a.stdout)
		msg := "MiB/s includes the final Sync"
		if fio {
			msg += "; ratio = aiodio / fio (ioengine=psync, direct=0, end_fsync=1, bs=128k, a written file of the same size in the same directory)"
		}
		fmt.Fprintln(a.stdout, msg)
	}
	return nil
}
