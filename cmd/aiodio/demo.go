package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/device"
	"github.com/spf13/cobra"
)

// `aiodio demo`: a verified mixed workload on a temporary volume (issue 5).
// The image is poisoned with a marker before mkfs; every byte read is
// compared with an in-memory model of each file, and any marker byte read is
// counted as stale data (I1).

func init() { addCommand(newDemoCmd) }

type demoOptions struct {
	seconds float64
	size    sizeValue
	engine  string
	dir     string
	qd      int
	files   int
	seed    uint64
	policy  string
}

func newDemoCmd(a *app) *cobra.Command {
	o := demoOptions{seconds: 4, size: 64 << 20, engine: "auto", qd: 32, files: 4, seed: 1}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a verified mixed workload on a temporary volume",
		Long: "demo fills a temporary image with a poison marker, makes a volume on it and,\n" +
			"for --seconds, runs a mixed workload on several files: asynchronous direct\n" +
			"reads and writes (also sub-block ones) through a Ring at --qd, asynchronous\n" +
			"buffered reads and writes, extending appends, fsyncs, synchronous buffered\n" +
			"I/O, truncates and reads across end of file. Every byte read is compared with\n" +
			"an in-memory model of the files; a marker byte read is stale data. At the\n" +
			"end every file is read back whole, the volume is closed, checked with fsck,\n" +
			"reopened and read again. It prints a result table and fails if a single\n" +
			"byte differs, a stale byte was read, or fsck finds anything.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd.Context(), a, o) },
	}
	f := cmd.Flags()
	f.Float64Var(&o.seconds, "seconds", o.seconds, "run time of the mixed workload")
	f.Var(&o.size, "size", "size of the temporary image")
	f.StringVar(&o.engine, "engine", o.engine, "device engine: auto, uring or threads")
	f.StringVar(&o.dir, "dir", "", "directory of the temporary image (default $TMPDIR or /tmp)")
	f.IntVar(&o.qd, "qd", o.qd, "queue depth (ring ops in flight)")
	f.IntVar(&o.files, "files", o.files, "number of files worked on")
	f.Uint64Var(&o.seed, "seed", o.seed, "seed of the op choice and the data")
	f.StringVar(&o.policy, "hole-policy", "unwritten", "how direct writes fill holes: unwritten or fallback")
	return cmd
}

func checkEngine(e string) error {
	switch e {
	case "auto", "uring", "threads":
		return nil
	}
	return usagef("unknown engine %q (want auto, uring or threads)", e)
}

const (
	demoBlock = 4096
	demoMaxIO = 64 << 10
)

// demoPoison is written over the whole image before mkfs; reading it back
// through the volume means stale data was exposed.
var demoPoison = []byte("PoIsOn-AiOdIo-\xde\xad")

// openDevice opens devices; tests replace it to inject faults.
var openDevice = device.Open

// demoArmed is called once the volume is open and the files exist; tests
// use it to start injecting faults.
var demoArmed = func() {}

func runDemo(ctx context.Context, a *app, o demoOptions) error {
	if err := checkEngine(o.engine); err != nil {
		return err
	}
	if o.seconds <= 0 || o.seconds > 3600 {
		return usagef("--seconds %g out of range (0, 3600]", o.seconds)
	}
	if o.qd < 1 || o.qd > 1024 {
		return usagef("--qd %d out of range [1, 1024]", o.qd)
	}
	if _, err := parsePolicy(o.policy); err != nil {
		return err
	}
	if o.files < 1 || o.files > 64 {
		return usagef("--files %d out of range [1, 64]", o.files)
	}
	size := int64(o.size)
	if size < 8<<20 || size%demoBlock != 0 {
		return usagef("--size %s must be at least 8MiB and a multiple of %d", formatSize(size), demoBlock)
	}
	// Half the data area for the files; each at most 8 MiB.
	maxFile := min(int64(8<<20), size/2/int64(o.files)) &^ (demoBlock - 1)
	if maxFile < 4*demoMaxIO {
		return usagef("--size %s is too small for %d files", formatSize(size), o.files)
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
	if err := poisonImage(ctx, path, size); err != nil {
		return err
	}
	if err := aiodio.Mkfs(path, aiodio.MkfsOptions{}); err != nil {
		return fmt.Errorf("mkfs: %w", err)
	}

	// The hooks are read here, not on the workload's goroutine, which a hung
	// device may leave running after runDemo returns.
	d := &demo{a: a, o: o, path: path, maxFile: maxFile, openDev: openDevice, armed: demoArmed,
		rng: rand.New(rand.NewPCG(o.seed, 0x61696f64696f))}
	// The workload runs on its own goroutine so that a hung device is
	// reported (no progress for demoStall) instead of hanging the command.
	finished := make(chan error, 1)
	go func() { finished <- d.run(ctx) }() // reported through finished, or abandoned when hung
	var runErr error
	last, idle := int64(-1), time.Duration(0)
	tick := time.NewTicker(100 * time.Millisecond)
	for done := false; !done; {
		select {
		case runErr = <-finished:
			done = true
		case <-tick.C:
			if b := d.beat.Load(); b != last {
				last, idle = b, 0
			} else if idle += 100 * time.Millisecond; idle >= demoStall {
				runErr = fmt.Errorf("%w: nothing completed in %v", errDeviceHung, demoStall)
				done = true
			}
		}
	}
	tick.Stop()
	if errors.Is(runErr, errDeviceHung) {
		return runErr // its goroutine is stuck in the device: left to the exit
	}
	d.printTable()
	if d.mismatches > 0 || d.stale > 0 {
		return errors.Join(fmt.Errorf("verification FAILED: %d mismatched bytes, %d stale bytes seen (first: %s)",
			d.mismatches, d.stale, d.firstBad), runErr)
	}
	if runErr != nil {
		return runErr
	}
	fmt.Fprintf(a.stdout, "OK: every byte read was verified (%s), 0 stale bytes seen, 0 mismatches, fsck clean\n", fmtBytes(d.verified))
	return nil
}

// poisonImage writes demoPoison over the whole image.
func poisonImage(ctx context.Context, path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("poisoning the image: %w", err)
	}
	defer f.Close()
	buf := bytes.Repeat(demoPoison, (1<<20)/len(demoPoison))
	for off := int64(0); off < size; off += int64(len(buf)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := f.WriteAt(buf[:min(int64(len(buf)), size-off)], off); err != nil {
			return fmt.Errorf("poisoning the image: %w", err)
		}
	}
	return nil
}

// errDeviceHung says the device stopped completing requests.
var errDeviceHung = errors.New("the device stopped completing requests")

// demoStall is how long the demo waits without any progress before it calls
// the device hung (tests shorten it).
var demoStall = 30 * time.Second

// Op kinds of the demo, also the rows of its table.
const (
	kDirectRead = iota
	kDirectWrite
	kAppend
	kBufRead
	kBufWrite
	kFsync
	kSyncBuf  // synchronous buffered write + read
	kTruncate // truncate down or up
	kEOFRead  // direct read across end of file, with Stat
	kFinal    // final read of every file, direct and buffered
	kRemount  // read of every file after close, fsck and reopen
	numKinds
)

var kindNames = [numKinds]string{"direct read", "direct write", "append", "buffered read", "buffered write",
	"fsync", "sync buffered", "truncate", "read across EOF", "final verify", "after remount"}

// demoStat is one row of the table.
type demoStat struct {
	ops, bytes           int64
	hist                 latHist
	verified, stale, bad int64
	reads                bool
}

// span is a range of a file used by an op in flight.
type span struct {
	off, end int64
	write    bool
	slot     int
}

// demoFile is one file with its model.
type demoFile struct {
	name     string
	d, b     *aiodio.File // O_DIRECT and buffered handles
	data     []byte       // model: content; zero past size
	size     int64        // size after the ops completed so far
	end      int64        // size once every write in flight completed
	inflight []span
	draining bool
}

func (f *demoFile) overlaps(off, end int64, write bool) bool {
	for _, s := range f.inflight {
		if off < s.end && s.off < end && (write || s.write) {
			return true
		}
	}
	return false
}

func (f *demoFile) remove(slot int) {
	for i, s := range f.inflight {
		if s.slot == slot {
			f.inflight[i] = f.inflight[len(f.inflight)-1]
			f.inflight = f.inflight[:len(f.inflight)-1]
			return
		}
	}
}

// demoSlot is one ring op in flight.
type demoSlot struct {
	kind  int
	file  *demoFile
	off   int64
	n     int
	k     int    // the op's data is buf[k:k+n] (k > 0: misaligned memory)
	buf   []byte // demoMaxIO+512 bytes, page-aligned
	start time.Time
	busy  bool
}

type demo struct {
	a       *app
	o       demoOptions
	path    string
	maxFile int64
	rng     *rand.Rand
	openDev func(string, device.OpenOptions) (device.Device, error)
	armed   func()

	v     *aiodio.Volume
	dev   device.Device
	files []*demoFile
	slots []*demoSlot
	pool  []byte // random data the writes are cut from
	gen   uint64

	beat    atomic.Int64 // progress, for the hang watchdog
	stats   [numKinds]demoStat
	elapsed time.Duration

	verified, stale, mismatches int64
	firstBad                    string
}

func (d *demo) open() error {
	dev, err := d.openDev(d.path, device.OpenOptions{Engine: d.o.engine, Exclusive: true, Logger: d.a.log, QueueDepth: min(d.o.qd, 64)})
	if err != nil {
		return fmt.Errorf("opening %s: %w", d.path, err)
	}
	policy, _ := parsePolicy(d.o.policy)
	v, err := aiodio.OpenDevice(dev, aiodio.Options{Logger: d.a.log, HolePolicy: policy})
	if err != nil {
		dev.Close()
		return fmt.Errorf("opening the volume: %w", err)
	}
	d.dev, d.v = dev, v
	return nil
}

func (d *demo) close() error {
	err := d.v.Close()
	if cerr := d.dev.Close(); err == nil {
		err = cerr
	}
	d.v, d.dev = nil, nil
	return err
}

func (d *demo) run(ctx context.Context) (err error) {
	if err := d.open(); err != nil {
		return err
	}
	defer func() {
		if d.v != nil {
			if cerr := d.close(); err == nil && cerr != nil {
				err = fmt.Errorf("closing the volume: %w", cerr)
			}
		}
	}()
	info := d.dev.Info()
	mode := "direct I/O"
	if info.Cached {
		mode = "cached: the filesystem refused O_DIRECT"
	}
	fmt.Fprintf(d.a.stdout, "aiodio demo: volume on %s (%s, poisoned before mkfs), engine %s (%s), sector %d B, hole policy %s, %d files, queue depth %d, seed %d\n",
		d.path, formatSize(int64(d.o.size)), info.Engine, mode, info.LogicalBlockSize, d.o.policy, d.o.files, d.o.qd, d.o.seed)
	for i := range d.o.files {
		f := &demoFile{name: fmt.Sprintf("demo/f%d", i), data: make([]byte, d.maxFile)}
		if i == 0 {
			if err := d.v.Mkdir("demo", 0o755); err != nil {
				return err
			}
		}
		if f.d, err = d.v.OpenFile(f.name, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_DIRECT, 0o644); err != nil {
			return err
		}
		if f.b, err = d.v.OpenFile(f.name, os.O_RDWR, 0); err != nil {
			return err
		}
		d.files = append(d.files, f)
	}
	d.pool = make([]byte, 1<<20)
	for i := range d.pool {
		d.pool[i] = byte(d.rng.Uint32())
	}
	for range d.o.qd {
		d.slots = append(d.slots, &demoSlot{buf: aiodio.AlignedBuffer(demoMaxIO + 512)})
	}
	d.armed()
	if err := d.mixed(ctx); err != nil {
		return err
	}
	if err := d.finalVerify(kFinal); err != nil {
		return err
	}
	for _, f := range d.files {
		if err := errors.Join(f.d.Close(), f.b.Close()); err != nil {
			return fmt.Errorf("closing %s: %w", f.name, err)
		}
	}
	if err := d.close(); err != nil {
		return fmt.Errorf("closing the volume: %w", err)
	}
	findings, err := aiodio.Fsck(d.path)
	if err != nil {
		return fmt.Errorf("fsck: %w", err)
	}
	if len(findings) > 0 {
		for _, f := range findings {
			fmt.Fprintln(d.a.stdout, "fsck:", f)
		}
		return fmt.Errorf("fsck after the demo: %d finding(s)", len(findings))
	}
	if err := d.open(); err != nil {
		return fmt.Errorf("reopening: %w", err)
	}
	for _, f := range d.files {
		if f.d, err = d.v.OpenFile(f.name, os.O_RDONLY|syscall.O_DIRECT, 0); err != nil {
			return err
		}
		if f.b, err = d.v.OpenFile(f.name, os.O_RDONLY, 0); err != nil {
			return err
		}
	}
	return d.finalVerify(kRemount)
}

// fill writes data for a write of n bytes at off into p: a slice of the
// random pool, with every 512-byte sector stamped with the write's
// generation and offset so that no two writes look alike.
func (d *demo) fill(p []byte, off int64) {
	d.gen++
	start := d.rng.IntN(len(d.pool) - len(p) + 1)
	copy(p, d.pool[start:])
	for i := 0; i+16 <= len(p); i += 512 {
		binary.LittleEndian.PutUint64(p[i:], d.gen)
		binary.LittleEndian.PutUint64(p[i+8:], uint64(off)+uint64(i))
	}
}

// verify compares p, read at off of f, with the model and counts poison.
func (d *demo) verify(kind int, f *demoFile, off int64, p []byte) {
	st := &d.stats[kind]
	st.verified += int64(len(p))
	d.verified += int64(len(p))
	// Poison: whole 16-byte cells at 16-aligned offsets (blocks are
	// block-aligned on the device, so file and device cells coincide).
	for i := int((16 - off%16) % 16); i+16 <= len(p); i += 16 {
		if bytes.Equal(p[i:i+16], demoPoison) {
			st.stale += 16
			d.stale += 16
		}
	}
	want := f.data[off : off+int64(len(p))]
	if bytes.Equal(p, want) {
		return
	}
	bad := int64(0)
	first := -1
	for i := range p {
		if p[i] != want[i] {
			bad++
			if first < 0 {
				first = i
			}
		}
	}
	st.bad += bad
	d.mismatches += bad
	if d.firstBad == "" {
		d.firstBad = fmt.Sprintf("%s of %s at %d: %d bytes differ from offset %d", kindNames[kind], f.name, off, bad, off+int64(first))
	}
	d.a.log.Error("demo: mismatch", "op", kindNames[kind], "file", f.name, "off", off, "len", len(p), "bytes", bad, "first", off+int64(first))
}

// apply records a completed write in the model.
func (f *demoFile) apply(off int64, p []byte) {
	copy(f.data[off:], p)
	f.size = max(f.size, off+int64(len(p)))
	f.end = max(f.end, f.size)
}

// pick returns a file that is not draining (nil if none).
func (d *demo) pick() *demoFile {
	i := d.rng.IntN(len(d.files))
	for k := range d.files {
		if f := d.files[(i+k)%len(d.files)]; !f.draining {
			return f
		}
	}
	return nil
}

// ioLen returns a random length: sector multiples, often whole blocks.
func (d *demo) ioLen() int {
	if d.rng.IntN(3) == 0 {
		return (1 + d.rng.IntN(demoMaxIO/demoBlock)) * demoBlock
	}
	return (1 + d.rng.IntN(16)) * 512
}

// prepare chooses the next ring op for slot s; false when nothing fits now.
func (d *demo) prepare(s *demoSlot) (aiodio.Op, bool) {
	for try := 0; try < 8; try++ {
		f := d.pick()
		if f == nil {
			return aiodio.Op{}, false
		}
		r := d.rng.IntN(100)
		var kind int
		switch {
		case r < 30:
			kind = kDirectRead
		case r < 58:
			kind = kDirectWrite
		case r < 73:
			kind = kAppend
		case r < 83:
			kind = kBufRead
		case r < 96:
			kind = kBufWrite
		default:
			kind = kFsync
		}
		var off int64
		n := d.ioLen()
		switch kind {
		case kFsync:
			s.kind, s.file, s.off, s.n, s.k = kind, f, 0, 0, 0
			return aiodio.Op{Code: aiodio.OpFsync, File: f.d}, true
		case kDirectRead, kBufRead:
			if f.size == 0 {
				continue
			}
			off = d.rng.Int64N(f.size) &^ 511
			n = int(min(int64(n), f.size-off))
		case kDirectWrite, kBufWrite:
			if f.size > 0 && d.rng.IntN(4) != 0 {
				off = d.rng.Int64N(f.size) &^ 511 // inside: overwrite, or fill a hole
			} else {
				off = d.rng.Int64N(f.end+1) &^ 511
			}
		case kAppend:
			off = f.end
		}
		// Now and then a direct op misaligned in offset, length and memory
		// (served through bounce buffers and read-modify-write).
		k := 0
		if (kind == kDirectRead || kind == kDirectWrite) && d.rng.IntN(8) == 0 {
			off += d.rng.Int64N(512)
			n = max(1, n-d.rng.IntN(512))
			k = 1 + d.rng.IntN(511)
			if kind == kDirectRead {
				if off >= f.size {
					continue
				}
				n = int(min(int64(n), f.size-off))
			}
		}
		end := off + int64(n)
		if end > d.maxFile {
			continue
		}
		write := kind == kDirectWrite || kind == kBufWrite || kind == kAppend
		if f.overlaps(off, end, write) {
			continue
		}
		s.kind, s.file, s.off, s.n, s.k = kind, f, off, n, k
		buf := s.buf[k : k+n]
		op := aiodio.Op{Code: aiodio.OpRead, File: f.d, Buf: buf, Off: off}
		if kind == kBufRead || kind == kBufWrite {
			op.File = f.b
		}
		if write {
			op.Code = aiodio.OpWrite
			d.fill(buf, off)
			f.end = max(f.end, end)
		} else {
			clear(buf)
		}
		f.inflight = append(f.inflight, span{off: off, end: end, write: write, slot: -1})
		return op, true
	}
	return aiodio.Op{}, false
}

// mixed runs the ring workload for o.seconds, with maintenance (synchronous
// buffered I/O, truncates, reads across EOF) on one drained file at a time.
func (d *demo) mixed(ctx context.Context) error {
	dur := time.Duration(d.o.seconds * float64(time.Second))
	r, err := d.v.NewRing(d.o.qd)
	if err != nil {
		return err
	}
	defer r.Close()
	bar := newTimedProgress(d.a, "mixed workload", dur)
	start := time.Now()
	deadline := start.Add(dur)
	comps := make([]aiodio.Completion, d.o.qd)
	inflight := 0
	var opErr error
	completed := int64(0)
	nextMaint := 0
	submit := func() {
		for i, s := range d.slots {
			if s.busy || opErr != nil || ctx.Err() != nil || !time.Now().Before(deadline) {
				continue
			}
			op, ok := d.prepare(s)
			if !ok {
				return
			}
			f := s.file
			if op.Code != aiodio.OpFsync {
				f.inflight[len(f.inflight)-1].slot = i
			}
			op.UserData = uint64(i)
			s.start = time.Now()
			n, err := r.Submit(op)
			if err != nil || n != 1 {
				if op.Code != aiodio.OpFsync {
					f.remove(i)
				}
				opErr = fmt.Errorf("submitting %s of %s at %d: %w", kindNames[s.kind], f.name, s.off, err)
				return
			}
			s.busy = true
			inflight++
		}
	}
	for {
		for _, f := range d.files {
			if f.draining && len(f.inflight) == 0 {
				if opErr == nil {
					opErr = d.maintain(f)
				}
				f.draining = false
			}
		}
		submit()
		if inflight == 0 {
			if opErr != nil || ctx.Err() != nil || !time.Now().Before(deadline) {
				break
			}
			continue
		}
		got, err := r.Wait(ctx, 1, comps)
		if err != nil {
			if ctx.Err() != nil {
				opErr = cmpErr(opErr, ctx.Err())
				got, err = r.Wait(context.Background(), 1, comps)
			}
			if err != nil {
				return errors.Join(opErr, fmt.Errorf("waiting for completions: %w", err))
			}
		}
		now := time.Now()
		for _, c := range comps[:got] {
			i := int(c.UserData)
			s := d.slots[i]
			s.busy = false
			inflight--
			completed++
			d.beat.Add(1)
			f := s.file
			st := &d.stats[s.kind]
			st.ops++
			st.hist.add(now.Sub(s.start))
			if s.kind != kFsync {
				f.remove(i)
			}
			if c.Err != nil || c.N != s.n {
				opErr = cmpErr(opErr, fmt.Errorf("%s of %s at %d: %d of %d bytes: %w", kindNames[s.kind], f.name, s.off, c.N, s.n, c.Err))
				continue
			}
			st.bytes += int64(c.N)
			switch s.kind {
			case kDirectWrite, kBufWrite, kAppend:
				f.apply(s.off, s.buf[s.k:s.k+s.n])
			case kDirectRead, kBufRead:
				st.reads = true
				d.verify(s.kind, f, s.off, s.buf[s.k:s.k+s.n])
			}
		}
		bar.update(completed)
		// Maintenance: every 100 completions one file is drained (no new
		// ops), then worked on synchronously at the top of the loop.
		if opErr == nil && int(completed/100) > nextMaint && now.Before(deadline) {
			nextMaint = int(completed / 100)
			d.files[nextMaint%len(d.files)].draining = true
		}
	}
	d.elapsed = time.Since(start)
	bar.finish(completed)
	return opErr
}

// maintain runs synchronous ops on f, which has nothing in flight.
func (d *demo) maintain(f *demoFile) error {
	defer d.beat.Add(1)
	st := &d.stats[kSyncBuf]
	// A buffered write at any byte offset, possibly extending.
	n := 1 + d.rng.IntN(32<<10)
	off := d.rng.Int64N(f.size + 8192)
	if off+int64(n) <= d.maxFile {
		buf := make([]byte, n)
		d.fill(buf, off)
		t0 := time.Now()
		if _, err := f.b.WriteAt(buf, off); err != nil {
			return fmt.Errorf("buffered write of %s at %d: %w", f.name, off, err)
		}
		st.hist.add(time.Since(t0))
		st.ops++
		st.bytes += int64(n)
		f.apply(off, buf)
	}
	// A buffered read of a random range.
	if f.size > 0 {
		off := d.rng.Int64N(f.size)
		n := min(int64(1+d.rng.IntN(32<<10)), f.size-off)
		buf := make([]byte, n)
		t0 := time.Now()
		if _, err := f.b.ReadAt(buf, off); err != nil {
			return fmt.Errorf("buffered read of %s at %d: %w", f.name, off, err)
		}
		st.hist.add(time.Since(t0))
		st.ops++
		st.bytes += n
		st.reads = true
		d.verify(kSyncBuf, f, off, buf)
	}
	// Now and then a truncate, down or up.
	if d.rng.IntN(3) == 0 {
		tst := &d.stats[kTruncate]
		ns := d.rng.Int64N(d.maxFile / 2)
		if d.rng.IntN(3) == 0 {
			ns &^= demoBlock - 1
		}
		t0 := time.Now()
		if err := f.d.Truncate(ns); err != nil {
			return fmt.Errorf("truncate %s to %d: %w", f.name, ns, err)
		}
		tst.hist.add(time.Since(t0))
		tst.ops++
		if ns < f.size {
			clear(f.data[ns:f.size])
		}
		f.size, f.end = ns, ns
	}
	// A direct read across end of file returns exactly the bytes up to it
	// (I4); Stat agrees with the model.
	est := &d.stats[kEOFRead]
	fi, err := f.d.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", f.name, err)
	}
	if fi.Size() != f.size {
		return fmt.Errorf("stat %s: size %d, want %d", f.name, fi.Size(), f.size)
	}
	if f.size > 0 {
		off := max(0, f.size-int64(1+d.rng.IntN(8192))) &^ 511
		buf := aiodio.AlignedBuffer(8192 + 512)
		t0 := time.Now()
		n, err := f.d.ReadAt(buf, off)
		est.hist.add(time.Since(t0))
		est.ops++
		want := f.size - off
		if int64(n) != want || err != io.EOF {
			return fmt.Errorf("direct read of %s at %d across EOF %d: got %d bytes, %v; want %d, io.EOF", f.name, off, f.size, n, err, want)
		}
		est.bytes += int64(n)
		est.reads = true
		d.verify(kEOFRead, f, off, buf[:n])
	}
	return nil
}

// finalVerify reads every file whole, direct and buffered.
func (d *demo) finalVerify(kind int) error {
	st := &d.stats[kind]
	st.reads = true
	for _, f := range d.files {
		for _, h := range []*aiodio.File{f.d, f.b} {
			buf := aiodio.AlignedBuffer(int(f.size) + demoBlock)
			t0 := time.Now()
			n, err := h.ReadAt(buf, 0)
			st.hist.add(time.Since(t0))
			st.ops++
			d.beat.Add(1)
			if int64(n) != f.size || (err != nil && err != io.EOF) {
				return fmt.Errorf("%s: reading %s whole: %d of %d bytes: %v", kindNames[kind], f.name, n, f.size, err)
			}
			st.bytes += int64(n)
			d.verify(kind, f, 0, buf[:n])
		}
	}
	return nil
}

func (d *demo) printTable() {
	t := newTable("op", "ops", "IOPS", "MiB/s", "p50", "p99", "verified", "stale", "mismatches")
	secs := d.elapsed.Seconds()
	var tot demoStat
	for k := range numKinds {
		s := &d.stats[k]
		if s.ops == 0 {
			continue
		}
		iops, mibs := "-", "-"
		if k < kFinal && secs > 0 {
			iops = fmtCount(float64(s.ops) / secs)
			mibs = fmt.Sprintf("%.1f", float64(s.bytes)/(1<<20)/secs)
			tot.ops += s.ops
			tot.bytes += s.bytes
			for b, c := range s.hist.counts {
				tot.hist.counts[b] += c
			}
			tot.hist.n += s.hist.n
		}
		ver, stale, bad := "-", "-", "-"
		if s.reads {
			ver, stale, bad = fmtBytes(s.verified), fmt.Sprint(s.stale), fmt.Sprint(s.bad)
		}
		t.row(kindNames[k], fmt.Sprint(s.ops), iops, mibs, fmtLat(s.hist.quantile(0.5)), fmtLat(s.hist.quantile(0.99)), ver, stale, bad)
	}
	if secs > 0 {
		t.row("total", fmt.Sprint(tot.ops+d.stats[kFinal].ops+d.stats[kRemount].ops),
			fmtCount(float64(tot.ops)/secs), fmt.Sprintf("%.1f", float64(tot.bytes)/(1<<20)/secs),
			fmtLat(tot.hist.quantile(0.5)), fmtLat(tot.hist.quantile(0.99)),
			fmtBytes(d.verified), fmt.Sprint(d.stale), fmt.Sprint(d.mismatches))
	}
	t.write(d.a.stdout)
	fmt.Fprintf(d.a.stdout, "IOPS and MiB/s over the %.1fs mixed phase; stale = poison bytes read (must be 0)\n", secs)
}

// parsePolicy parses --hole-policy.
func parsePolicy(s string) (aiodio.HolePolicy, error) {
	switch s {
	case "unwritten":
		return aiodio.Unwritten, nil
	case "fallback", "buffered-fallback":
		return aiodio.BufferedFallback, nil
	}
	return 0, usagef("unknown --hole-policy %q (want unwritten or fallback)", s)
}
