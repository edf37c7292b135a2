package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/alignbuf"
	"github.com/spf13/cobra"
)

// The device-level demo of issue 2: a verified workload straight on a
// device.Device over a temporary image. The volume-level demo replaces it.

func init() { addCommand(newDemoCmd) }

type demoOptions struct {
	seconds float64
	size    sizeValue
	engine  string
	dir     string
	qd      int
	seed    uint64
}

func newDemoCmd(a *app) *cobra.Command {
	o := demoOptions{seconds: 4, size: 64 << 20, engine: "auto", qd: 32, seed: 1}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a verified asynchronous direct-I/O workload on a temporary image",
		Long: "demo creates a temporary image, opens it with the fastest usable engine, and\n" +
			"runs asynchronous random 4 KiB writes of a seeded pattern at a fixed queue\n" +
			"depth, a flush, then reads every written block back and compares every byte.\n" +
			"It prints a result table and fails if a single byte differs.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd.Context(), a, o) },
	}
	f := cmd.Flags()
	f.Float64Var(&o.seconds, "seconds", o.seconds, "run time of the workload (split between writes and reads)")
	f.Var(&o.size, "size", "size of the temporary image")
	f.StringVar(&o.engine, "engine", o.engine, "device engine: auto, uring or threads")
	f.StringVar(&o.dir, "dir", "", "directory of the temporary image (default $TMPDIR or /tmp)")
	f.IntVar(&o.qd, "qd", o.qd, "queue depth (requests in flight)")
	f.Uint64Var(&o.seed, "seed", o.seed, "seed of the block choice and the data pattern")
	return cmd
}

func checkEngine(e string) error {
	switch e {
	case "auto", "uring", "threads":
		return nil
	}
	return usagef("unknown engine %q (want auto, uring or threads)", e)
}

const demoBlock = 4096

// openDevice opens devices; tests replace it to inject faults.
var openDevice = device.Open

func runDemo(ctx context.Context, a *app, o demoOptions) error {
	if err := checkEngine(o.engine); err != nil {
		return err
	}
	if o.seconds <= 0 || o.seconds > 3600 {
		return usagef("--seconds %g out of range (0, 3600]", o.seconds)
	}
	if o.qd < 1 || o.qd > 4096 {
		return usagef("--qd %d out of range [1, 4096]", o.qd)
	}
	size := int64(o.size)
	if size < 1<<20 || size%demoBlock != 0 {
		return usagef("--size %s must be at least 1MiB and a multiple of %d", formatSize(size), demoBlock)
	}
	if int64(o.qd)*demoBlock*2 > size {
		return usagef("--size %s is too small for queue depth %d", formatSize(size), o.qd)
	}
	dir := o.dir
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "aiodio-demo-*.img")
	if err != nil {
		return fmt.Errorf("creating the demo image: %w", err)
	}
	path := f.Name()
	f.Close()
	defer os.Remove(path)

	dev, err := openDevice(path, device.OpenOptions{
		Engine: o.engine, Create: true, Size: size, Exclusive: true, Logger: a.log, QueueDepth: o.qd,
	})
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	info := dev.Info()
	a.log.Info("demo device open", "path", path, "engine", info.Engine, "cached", info.Cached,
		"sector", info.LogicalBlockSize, "memalign", info.MemAlign)
	mode := "direct I/O"
	if info.Cached {
		mode = "cached: the filesystem refused O_DIRECT"
	}
	fmt.Fprintf(a.stdout, "aiodio demo: image %s (%s), engine %s (%s), sector %d B, queue depth %d, seed %d\n",
		path, formatSize(size), info.Engine, mode, info.LogicalBlockSize, o.qd, o.seed)

	d := newDemoRun(dev, size, o)
	total := time.Duration(o.seconds * float64(time.Second))
	rows, runErr := d.run(ctx, a, total)
	// Close drains; a hung device would hang it, so it is left to the exit.
	if !errors.Is(runErr, errDeviceHung) {
		if cerr := dev.Close(); cerr != nil && runErr == nil {
			runErr = fmt.Errorf("closing the device: %w", cerr)
		}
	}
	printDemoTable(a, rows)
	if runErr != nil {
		return runErr
	}
	if d.mismatches > 0 {
		return fmt.Errorf("verification FAILED: %d mismatched bytes in %d blocks", d.mismatches, d.badBlocks)
	}
	fmt.Fprintf(a.stdout, "OK: every byte read back was verified (%s in %d reads), 0 mismatches\n",
		fmtBytes(d.verified), d.verified/demoBlock)
	return nil
}

// demoSlot is one request in flight with its buffer.
type demoSlot struct {
	req   device.Request
	block int64
	start time.Time
}

type demoRow struct {
	phase                string
	ops, bytes           int64
	elapsed              time.Duration
	p50, p99             time.Duration
	verified, mismatches int64
	hasVerify            bool
}

type demoRun struct {
	dev     device.Device
	o       demoOptions
	nblocks int64
	gens    []uint32 // per block: generation of its last write (0: never written)
	busy    []bool   // per block: a write is in flight
	done    chan *demoSlot
	slots   []*demoSlot
	rng     *rand.Rand
	want    []byte

	verified, mismatches, badBlocks int64
}

func newDemoRun(dev device.Device, size int64, o demoOptions) *demoRun {
	n := size / demoBlock
	d := &demoRun{
		dev: dev, o: o, nblocks: n,
		gens: make([]uint32, n), busy: make([]bool, n),
		done: make(chan *demoSlot, o.qd),
		rng:  rand.New(rand.NewPCG(o.seed, 0x61696f64696f)),
		want: make([]byte, demoBlock),
	}
	for range o.qd {
		s := &demoSlot{}
		s.req.Buf = alignbuf.Alloc(demoBlock)
		s.req.Ctx = s
		s.req.Done = func(r *device.Request) { d.done <- r.Ctx.(*demoSlot) }
		d.slots = append(d.slots, s)
	}
	return d
}

// fillPattern writes the content of block b at generation gen into p: an
// xorshift stream seeded from (seed, b, gen), so a block written to the
// wrong place or a stale generation never matches.
func fillPattern(p []byte, seed uint64, b int64, gen uint32) {
	x := seed*0x9e3779b97f4a7c15 ^ uint64(b)*0xbf58476d1ce4e5b9 ^ uint64(gen)*0x94d049bb133111eb
	x |= 1
	for i := 0; i+8 <= len(p); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(p[i:], x)
	}
}

func (d *demoRun) run(ctx context.Context, a *app, total time.Duration) ([]demoRow, error) {
	var rows []demoRow
	w, err := d.writePhase(ctx, a, total/2)
	rows = append(rows, w)
	if err != nil {
		return rows, err
	}
	f, err := d.flushPhase()
	rows = append(rows, f)
	if err != nil {
		return rows, err
	}
	r, err := d.readPhase(ctx, a, total-total/2)
	rows = append(rows, r)
	return rows, err
}

// errDeviceHung says the device stopped completing requests.
var errDeviceHung = errors.New("the device stopped completing requests")

// demoStall is how long the demo waits for a completion before it calls the
// device hung (tests shorten it).
var demoStall = 30 * time.Second

// wait returns the next completed slot. It gives up when the device
// completes nothing for a long time (a hung device would otherwise hang the
// demo); the buffers still in flight are then never reused.
func (d *demoRun) wait() (*demoSlot, error) {
	t := time.NewTimer(demoStall)
	defer t.Stop()
	select {
	case s := <-d.done:
		return s, nil
	case <-t.C:
		return nil, fmt.Errorf("%w: none completed in %v", errDeviceHung, demoStall)
	}
}

func (d *demoRun) checkDone(s *demoSlot) error {
	r := &s.req
	if r.Err != nil {
		return fmt.Errorf("%s of block %d: %w", r.Kind, s.block, r.Err)
	}
	if r.N != len(r.Buf) {
		return fmt.Errorf("%s of block %d: %d of %d bytes", r.Kind, s.block, r.N, len(r.Buf))
	}
	return nil
}

func (d *demoRun) submit(s *demoSlot) error {
	s.start = time.Now()
	if _, err := d.dev.Submit(&s.req); err != nil {
		return fmt.Errorf("submitting %s of block %d: %w", s.req.Kind, s.block, err)
	}
	return nil
}

// pump keeps every slot busy: next prepares and submits a request on a
// slot (false: no more work), complete checks a completed one. It stops
// submitting at the first error, on cancellation or when next has no more
// work, and always waits for every request in flight before it returns.
func (d *demoRun) pump(ctx context.Context, bar *progress, row *demoRow,
	next func(*demoSlot) (bool, error), complete func(*demoSlot) error) error {
	var h latHist
	start := time.Now()
	inflight := 0
	var err error
	for _, s := range d.slots {
		var ok bool
		if ok, err = next(s); !ok || err != nil {
			break
		}
		inflight++
	}
	for inflight > 0 {
		s, werr := d.wait()
		if werr != nil {
			return werr // requests still in flight keep their buffers: never reused
		}
		inflight--
		h.add(time.Since(s.start))
		row.ops++
		row.bytes += int64(s.req.N)
		if cerr := complete(s); cerr != nil && err == nil {
			err = cerr
		}
		if row.ops%128 == 0 {
			bar.update(row.ops)
		}
		if err == nil && ctx.Err() == nil {
			var ok bool
			if ok, err = next(s); ok && err == nil {
				inflight++
			}
		}
	}
	bar.finish(row.ops)
	row.elapsed = time.Since(start)
	row.p50, row.p99 = h.quantile(0.5), h.quantile(0.99)
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// writePhase writes random blocks for dur. A block is never written by two
// requests at once, so its content is the pattern of its last generation.
func (d *demoRun) writePhase(ctx context.Context, a *app, dur time.Duration) (demoRow, error) {
	row := demoRow{phase: "write"}
	deadline := time.Now().Add(dur)
	next := func(s *demoSlot) (bool, error) {
		if !time.Now().Before(deadline) {
			return false, nil
		}
		b := d.rng.Int64N(d.nblocks)
		for d.busy[b] { // at most qd blocks are busy; the image has ≥ 2*qd
			b = d.rng.Int64N(d.nblocks)
		}
		d.busy[b] = true
		d.gens[b]++
		s.block = b
		s.req.Kind = device.Write
		s.req.Off = b * demoBlock
		fillPattern(s.req.Buf, d.o.seed, b, d.gens[b])
		if err := d.submit(s); err != nil {
			d.busy[b] = false
			return false, err
		}
		return true, nil
	}
	complete := func(s *demoSlot) error {
		d.busy[s.block] = false
		return d.checkDone(s)
	}
	err := d.pump(ctx, newTimedProgress(a, "write", dur), &row, next, complete)
	return row, err
}

func (d *demoRun) flushPhase() (demoRow, error) {
	row := demoRow{phase: "flush"}
	s := d.slots[0]
	s.req.Kind, s.req.Off, s.block = device.Flush, 0, -1
	buf := s.req.Buf
	s.req.Buf = nil
	defer func() { s.req.Buf = buf }()
	start := time.Now()
	if err := d.submit(s); err != nil {
		return row, err
	}
	if _, err := d.wait(); err != nil {
		return row, err
	}
	row.elapsed = time.Since(start)
	row.p50, row.p99 = row.elapsed, row.elapsed
	if s.req.Err != nil {
		return row, fmt.Errorf("flush: %w", s.req.Err)
	}
	row.ops = 1
	return row, nil
}

// readPhase reads every written block back in random order and compares it
// with the pattern of its last generation; when time is left it starts
// another pass. At least one full pass always runs.
func (d *demoRun) readPhase(ctx context.Context, a *app, dur time.Duration) (demoRow, error) {
	row := demoRow{phase: "read+verify", hasVerify: true}
	var written []int64
	for b, g := range d.gens {
		if g > 0 {
			written = append(written, int64(b))
		}
	}
	if len(written) == 0 {
		return row, errors.New("nothing was written")
	}
	deadline := time.Now().Add(dur)
	pos := 0
	shuffle := func() {
		d.rng.Shuffle(len(written), func(i, j int) { written[i], written[j] = written[j], written[i] })
	}
	shuffle()
	next := func(s *demoSlot) (bool, error) {
		if pos == len(written) {
			if !time.Now().Before(deadline) {
				return false, nil
			}
			pos = 0
			shuffle()
		}
		s.block = written[pos]
		pos++
		s.req.Kind = device.Read
		s.req.Off = s.block * demoBlock
		clear(s.req.Buf)
		return true, d.submit(s)
	}
	complete := func(s *demoSlot) error {
		if err := d.checkDone(s); err != nil {
			return err
		}
		d.verify(a, s)
		return nil
	}
	err := d.pump(ctx, newTimedProgress(a, "read+verify", dur), &row, next, complete)
	row.verified, row.mismatches = d.verified, d.mismatches
	return row, err
}

// verify compares a block read back with the pattern of its last write.
func (d *demoRun) verify(a *app, s *demoSlot) {
	fillPattern(d.want, d.o.seed, s.block, d.gens[s.block])
	d.verified += int64(len(s.req.Buf))
	if bytes.Equal(s.req.Buf, d.want) {
		return
	}
	d.badBlocks++
	bad := 0
	for i := range d.want {
		if s.req.Buf[i] != d.want[i] {
			bad++
		}
	}
	d.mismatches += int64(bad)
	a.log.Error("demo: mismatch", "block", s.block, "generation", d.gens[s.block], "bytes", bad)
}

func printDemoTable(a *app, rows []demoRow) {
	t := newTable("phase", "ops", "IOPS", "MiB/s", "p50", "p99", "verified", "mismatches")
	for _, r := range rows {
		secs := r.elapsed.Seconds()
		iops, mibs := 0.0, 0.0
		if secs > 0 {
			iops = float64(r.ops) / secs
			mibs = float64(r.bytes) / (1 << 20) / secs
		}
		siops, smibs := fmtCount(iops), fmt.Sprintf("%.1f", mibs)
		if r.bytes == 0 { // flush: one op, no data
			siops, smibs = "-", "-"
		}
		ver, mis := "-", "-"
		if r.hasVerify {
			ver, mis = fmtBytes(r.verified), fmt.Sprint(r.mismatches)
		}
		t.row(r.phase, fmt.Sprint(r.ops), siops, smibs, fmtLat(r.p50), fmtLat(r.p99), ver, mis)
	}
	t.write(a.stdout)
}
