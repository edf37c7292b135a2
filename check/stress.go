package check

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrFailed is wrapped by the error Run returns when the target broke an
// invariant (poison or stale data read, mismatches, errors, fsck findings).
var ErrFailed = errors.New("check failed")

// fileState is one file slot: its current incarnation (a new id after each
// recycle), its two handles, and the model of its contents.
type fileState struct {
	slot     int
	id       uint16
	name     string
	direct   File
	buffered File
	dioMem   int
	dioOff   int
	size     int64  // observed size at the last quiescent point
	model    extmap // candidate values of every cell at the last quiescent point
}

// roundInfo is what the verifier needs to know about the round in progress.
type roundInfo struct {
	mods     [][]*opRec // per slot: ops that change contents, in op order
	hasTrunc []bool
	hi       []int64 // per slot: the largest size possible during the round
	removes  []bool  // per slot: the file is removed during the round
}

// failure is a recorded failure, rendered with its op log at the end.
type failure struct {
	msg   string
	slot  int
	id    uint16
	off   int64 // -1: not about a place
	round int   // the round in progress when it was recorded
}

// runner is one Run.
type runner struct {
	t       Target
	cfg     Config
	salt    uint64
	clock   atomic.Int64
	files   []*fileState
	log     []*opRec // every op, in generation order
	byGen   []*opRec // the writes, by generation (increasing)
	rinfo   *roundInfo
	round   int // the round in progress (set between rounds)
	crashes int
	nextID  uint16

	bytesWritten, bytesRead, bytesVerified, poison                     atomic.Int64
	mismatches, errs, completions, busy, nowait, injected, removedErrs atomic.Int64
	staleEIO                                                           atomic.Int64

	// mu protects failures.
	mu       sync.Mutex
	failures []failure
}

func (r *runner) fail(slot int, id uint16, off int64, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.failures) < 12 {
		r.failures = append(r.failures, failure{msg: fmt.Sprintf(format, args...), slot: slot, id: id, off: off, round: r.round})
	}
}

func (r *runner) opError(o *opRec, err error) {
	if r.cfg.ExpectErrors != nil && errors.Is(err, r.cfg.ExpectErrors) {
		r.injected.Add(1)
		return
	}
	if ri := r.rinfo; ri != nil && ri.removes != nil && ri.removes[o.slot] &&
		(errors.Is(err, syscall.ESTALE) || errors.Is(err, syscall.ENOENT)) {
		r.removedErrs.Add(1) // the file was removed under the op (aiodio: ErrRemoved)
		return
	}
	if (o.kind == kSync || o.kind == kAsyncFsync || o.kind.isWrite() && o.flags&unix.RWF_DSYNC != 0) && r.staleCacheEIO(err) {
		return
	}
	r.errs.Add(1)
	r.fail(o.slot, o.id, -1, "unexpected error: %v: %v", o, err)
}

// staleCacheEIO reports (and counts) whether err, from a sync, is the
// target's report of a direct write that collided with buffered I/O (see
// StalePageCacheReporter).
func (r *runner) staleCacheEIO(err error) bool {
	if sr, ok := r.t.(StalePageCacheReporter); ok && sr.StalePageCacheEIO() && errors.Is(err, syscall.EIO) {
		r.staleEIO.Add(1)
		return true
	}
	return false
}

// Run runs the stress workload on t and verifies every byte read (see the
// package documentation). It returns the report, and an error wrapping
// ErrFailed (with the seed) when an invariant broke, or the error that
// stopped the run.
func Run(ctx context.Context, t Target, cfg Config) (Report, error) {
	cfg.defaults()
	r := &runner{t: t, cfg: cfg, salt: uint64(cfg.Seed)*0x9e3779b97f4a7c15 ^ 0x5eed}
	start := time.Now()
	err := r.run(ctx)
	rep := r.report()
	rep.Duration = time.Since(start)
	if err != nil {
		return rep, fmt.Errorf("check %s seed %d: %w", t, cfg.Seed, err)
	}
	if rep.Failed() {
		return rep, fmt.Errorf("check %s seed %d: %d poison bytes, %d mismatches, %d errors, %d completion violations, %d findings: %w",
			t, cfg.Seed, rep.PoisonBytes, rep.Mismatches, rep.Errors, rep.Completions, len(rep.Findings), ErrFailed)
	}
	return rep, nil
}

func (r *runner) logf(format string, args ...any) {
	if r.cfg.Log != nil {
		fmt.Fprintf(r.cfg.Log, format+"\n", args...)
	}
}

func (r *runner) openSlot(fs *fileState, create bool) error {
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE | os.O_TRUNC
	}
	d, err := r.t.OpenFile(fs.name, flag|syscall.O_DIRECT, 0o644)
	if err != nil {
		return fmt.Errorf("open %s O_DIRECT: %w", fs.name, err)
	}
	b, err := r.t.OpenFile(fs.name, os.O_RDWR, 0)
	if err != nil {
		d.Close()
		return fmt.Errorf("open %s: %w", fs.name, err)
	}
	fs.direct, fs.buffered = d, b
	fs.dioMem, fs.dioOff = d.DIOAlign()
	if fs.dioOff <= 0 || fs.dioOff&(fs.dioOff-1) != 0 {
		fs.dioOff = 4096
	}
	return nil
}

func (r *runner) closeSlot(fs *fileState) error {
	var errs []error
	for _, f := range []File{fs.direct, fs.buffered} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	fs.direct, fs.buffered = nil, nil
	return errors.Join(errs...)
}

func (r *runner) newIncarnation(fs *fileState) error {
	r.nextID++
	fs.id = r.nextID
	fs.size = 0
	fs.model.reset()
	if err := r.openSlot(fs, true); err != nil {
		return err
	}
	if r.cfg.FixedSize {
		if err := fs.direct.Truncate(r.cfg.MaxFileSize); err != nil {
			return fmt.Errorf("presize %s: %w", fs.name, err)
		}
		fs.size = r.cfg.MaxFileSize
	}
	return nil
}

func (r *runner) run(ctx context.Context) error {
	cfg := &r.cfg
	r.logf("check %s: seed %d (AIODIO_SEED=%d replays the op sequence), %d ops, %d files", r.t, cfg.Seed, cfg.Seed, cfg.Ops, cfg.Files)
	for i := 0; i < cfg.Files; i++ {
		fs := &fileState{slot: i, name: fmt.Sprintf("%sstress-%d", cfg.Prefix, i)}
		if err := r.newIncarnation(fs); err != nil {
			return err
		}
		r.files = append(r.files, fs)
	}
	defer func() {
		for _, fs := range r.files {
			if fs.direct != nil {
				r.closeSlot(fs)
				if !cfg.Keep {
					r.t.Remove(fs.name)
				}
			}
		}
	}()

	// One queue per worker, or one shared by all (SharedQueue).
	nq := cfg.Workers
	if cfg.SharedQueue {
		nq = 1
	}
	var queues []*queueState
	newQueues := func() error {
		queues = make([]*queueState, nq)
		for i := range queues {
			depth := cfg.QueueDepth * (cfg.Workers / nq)
			q, err := r.t.NewAsync(depth)
			if err != nil {
				return fmt.Errorf("new async queue: %w", err)
			}
			queues[i] = &queueState{q: q, depth: depth, inflight: make(map[uint64]*opRec), bufm: make(map[uint64][]byte)}
		}
		return nil
	}
	if err := newQueues(); err != nil {
		return err
	}
	closeQueues := func() error {
		var errs []error
		for _, q := range queues {
			errs = append(errs, q.q.Close())
		}
		queues = nil
		return errors.Join(errs...)
	}
	defer closeQueues()

	g := &generator{rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 0xa10d10)), cfg: cfg,
		nominal: make([]int64, cfg.Files), unalign: r.t.UnalignedDirect() && !cfg.AlignedDirect}
	g.weights = kindWeights
	for name, w := range cfg.Weights {
		found := false
		for k := kind(0); k < numKinds; k++ {
			if k.String() == name {
				g.weights[k], found = max(w, 0), true
			}
		}
		if !found {
			return fmt.Errorf("config: unknown op kind %q in Weights", name)
		}
	}
	if cfg.FixedSize {
		g.weights[kTruncate] = 0
		for i := range g.nominal {
			g.nominal[i] = cfg.MaxFileSize
		}
	}
	if sum := func() (s int) {
		for _, w := range g.weights {
			s += w
		}
		return
	}(); sum == 0 {
		return fmt.Errorf("config: every op kind has weight 0")
	}
	g.dioOff = 512
	for _, fs := range r.files {
		g.dioOff = max(g.dioOff, fs.dioOff)
	}
	var gen uint32
	idx := 0
	for round := 0; idx < cfg.Ops; round++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Recycle: remove one file and create it anew (new id: its old
		// blocks, freed, go to the others and must never show).
		if cfg.RecycleEvery > 0 && round > 0 && round%cfg.RecycleEvery == 0 {
			fs := r.files[g.rng.IntN(len(r.files))]
			if err := r.closeSlot(fs); err != nil {
				r.errs.Add(1)
				r.fail(fs.slot, fs.id, -1, "close before remove: %v", err)
			}
			if err := r.t.Remove(fs.name); err != nil {
				return fmt.Errorf("remove %s: %w", fs.name, err)
			}
			if err := r.newIncarnation(fs); err != nil {
				return err
			}
			g.nominal[fs.slot] = 0
			if cfg.FixedSize {
				g.nominal[fs.slot] = cfg.MaxFileSize
			}
		}
		ops := make([]*opRec, 0, cfg.RoundOps)
		for i := 0; i < cfg.RoundOps && idx < cfg.Ops; i++ {
			slot := g.rng.IntN(len(r.files))
			o := g.next(idx, round, slot, r.files[slot].id, &gen)
			ops = append(ops, o)
			if o.gen != 0 {
				r.byGen = append(r.byGen, o)
			}
			idx++
		}
		r.log = append(r.log, ops...)
		r.round = round
		if os.Getenv("AIODIO_CHECK_LOGOPS") != "" {
			for _, o := range ops {
				r.logf("op %v", o)
			}
		}
		if err := r.runRound(ctx, ops, queues); err != nil {
			return err
		}
		crasher, canCrash := r.t.(Crasher)
		if canCrash && cfg.CrashEvery > 0 && round > 0 && round%cfg.VerifyEvery == 0 &&
			(round/cfg.VerifyEvery)%cfg.CrashEvery == 0 && (cfg.RecycleEvery <= 0 || round%cfg.RecycleEvery != 0) {
			// Power cut after the round that follows a Sync: every op of
			// the round may be lost, whole or torn; what was synced stays.
			closeQueues() // their volume is about to die; nothing is in flight
			if err := crasher.Crash(cfg.Seed ^ int64(round)); err != nil {
				return fmt.Errorf("crash after round %d: %w", round, err)
			}
			r.crashes++
			for _, fs := range r.files {
				fs.direct, fs.buffered = nil, nil // dead with the old mount
				if r.rinfo.removes[fs.slot] {
					continue // removed in the round (durably or not): endRound recreates it
				}
				if err := r.openSlot(fs, false); err != nil {
					return fmt.Errorf("after the crash of round %d: %w", round, err)
				}
			}
			if err := newQueues(); err != nil {
				return err
			}
			if err := r.endRound(ops, true); err != nil {
				return err
			}
			if c, ok := r.t.(Checker); ok {
				f, err := c.Check()
				for _, s := range f {
					r.fail(-1, 0, -1, "after the crash of round %d: fsck: %s", round, s)
				}
				if err != nil || len(f) > 0 {
					r.mismatches.Add(1)
					r.fail(-1, 0, -1, "after the crash of round %d: fsck error %v, %d findings", round, err, len(f))
				}
			}
			if err := r.verifyAll(ctx, "after crash (direct)", true); err != nil {
				return err
			}
			if err := r.verifyAll(ctx, "after crash (buffered)", false); err != nil {
				return err
			}
		} else if err := r.endRound(ops, false); err != nil {
			return err
		}
		if (round+1)%cfg.VerifyEvery == 0 {
			if err := r.verifyAll(ctx, "periodic", (round%2 == 0 || cfg.DirectVerify) && !cfg.BufferedVerify); err != nil {
				return err
			}
		}
		if cfg.Progress != nil {
			cfg.Progress(idx, cfg.Ops)
		}
		if round%20 == 19 {
			r.logf("round %d: %d ops, %d mismatches, %d poison bytes", round+1, idx, r.mismatches.Load(), r.poison.Load())
		}
	}
	if err := closeQueues(); err != nil {
		r.errs.Add(1)
		r.fail(-1, 0, -1, "closing async queues: %v", err)
	}
	if err := r.t.Sync(); err != nil {
		r.errs.Add(1)
		r.fail(-1, 0, -1, "target sync: %v", err)
	}
	if err := r.verifyAll(ctx, "final direct", true); err != nil {
		return err
	}
	if err := r.verifyAll(ctx, "final buffered", false); err != nil {
		return err
	}
	if ro, ok := r.t.(Reopener); ok && !cfg.NoReopen {
		for _, fs := range r.files {
			if err := r.closeSlot(fs); err != nil {
				r.errs.Add(1)
				r.fail(fs.slot, fs.id, -1, "close before reopen: %v", err)
			}
			fs.direct, fs.buffered = nil, nil
		}
		if err := ro.Reopen(); err != nil {
			return err
		}
		for _, fs := range r.files {
			if err := r.openSlot(fs, false); err != nil {
				return fmt.Errorf("after reopen: %w", err)
			}
		}
		if err := r.verifyAll(ctx, "after reopen (direct)", true); err != nil {
			return err
		}
		if err := r.verifyAll(ctx, "after reopen (buffered)", false); err != nil {
			return err
		}
	}
	return nil
}

// runRound runs ops concurrently on the workers and waits for all of them.
func (r *runner) runRound(ctx context.Context, ops []*opRec, queues []*queueState) error {
	ri := &roundInfo{mods: make([][]*opRec, len(r.files)), hasTrunc: make([]bool, len(r.files)), hi: make([]int64, len(r.files)), removes: make([]bool, len(r.files))}
	for i, fs := range r.files {
		ri.hi[i] = fs.size
	}
	for _, o := range ops {
		if o.kind.modifies() {
			ri.mods[o.slot] = append(ri.mods[o.slot], o)
		}
		switch {
		case o.kind == kRemove:
			ri.removes[o.slot] = true
		case o.kind == kTruncate:
			ri.hasTrunc[o.slot] = true
			ri.hi[o.slot] = max(ri.hi[o.slot], o.off)
		case o.kind.isWrite():
			ri.hi[o.slot] = max(ri.hi[o.slot], o.off+o.n)
		}
	}
	r.rinfo = ri
	if r.cfg.Faults != nil {
		r.cfg.Faults(true)
		defer r.cfg.Faults(false)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, r.cfg.Workers)
	for i := 0; i < r.cfg.Workers; i++ {
		wg.Add(1)
		w := &worker{r: r, qs: queues[i%len(queues)], comps: make([]Completion, r.cfg.QueueDepth)}
		go func() {
			defer wg.Done()
			if err := w.run(ctx, ops, &next); err != nil {
				errc <- err
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timer := time.NewTimer(r.cfg.RoundTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var pending []string
		for _, o := range ops {
			if o.done.Load() == 0 {
				pending = append(pending, o.String())
			}
		}
		r.fail(-1, 0, -1, "HANG: round %d did not finish in %v; ops not completed:\n%s\ngoroutines:\n%s",
			ops[0].round, r.cfg.RoundTimeout, strings.Join(pending, "\n"), buf)
		return fmt.Errorf("round %d hung (deadlock?): %w", ops[0].round, ErrFailed)
	}
	select {
	case err := <-errc:
		return err
	default:
	}
	return nil
}

// queueState is one async queue and the ops in flight on it; workers
// share it when Config.SharedQueue is set.
type queueState struct {
	q     Async
	depth int

	// mu protects inflight and bufm.
	mu       sync.Mutex
	inflight map[uint64]*opRec // by user data; registered before Submit
	bufm     map[uint64][]byte // their buffers
}

func (qs *queueState) count() int {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	return len(qs.inflight)
}

// worker issues ops of a round: sync ones inline, async ones through its
// queue, keeping up to the queue's depth in flight.
type worker struct {
	r     *runner
	qs    *queueState
	comps []Completion
}

func (w *worker) run(ctx context.Context, ops []*opRec, next *atomic.Int64) error {
	for {
		i := int(next.Add(1) - 1)
		if i >= len(ops) {
			break
		}
		o := ops[i]
		if o.kind.isAsync() {
			if err := w.submit(ctx, o); err != nil {
				return err
			}
		} else {
			w.r.execSync(o)
		}
		if w.qs.count() > 0 {
			if err := w.reap(ctx, 0); err != nil {
				return err
			}
		}
	}
	for w.qs.count() > 0 {
		if err := w.reap(ctx, 1); err != nil {
			return err
		}
		runtime.Gosched() // another worker may hold the last ones, about to submit them
	}
	return nil
}

func (w *worker) submit(ctx context.Context, o *opRec) error {
	r := w.r
	fs := r.files[o.slot]
	op := Op{Code: OpFsync, File: fs.direct, Off: 0, Flags: o.flags, UserData: uint64(o.idx) + 1}
	switch o.kind {
	case kAsyncWrite, kAsyncBufWrite:
		op.Code = OpWrite
		op.Buf = r.writeBuf(o)
		op.Off = o.off
	case kAsyncRead, kAsyncBufRead:
		op.Code = OpRead
		op.Buf = r.readBuf(o)
		op.Off = o.off
	}
	if o.kind == kAsyncBufWrite || o.kind == kAsyncBufRead {
		op.File = fs.buffered
	}
	qs := w.qs
	for {
		for qs.count() >= qs.depth {
			if err := w.reap(ctx, 1); err != nil {
				return err
			}
		}
		// Registered before Submit: with a shared queue another worker
		// may reap the completion before Submit returns.
		qs.mu.Lock()
		qs.inflight[op.UserData] = o
		qs.bufm[op.UserData] = op.Buf
		qs.mu.Unlock()
		o.start = r.clock.Add(1)
		n, err := qs.q.Submit(op)
		if n == 1 {
			return nil
		}
		qs.mu.Lock()
		_, still := qs.inflight[op.UserData]
		delete(qs.inflight, op.UserData)
		delete(qs.bufm, op.UserData)
		qs.mu.Unlock()
		if !still {
			r.completions.Add(1)
			r.fail(o.slot, o.id, -1, "%v: rejected by Submit (%v) but completed (I2)", o, err)
			return nil
		}
		if errors.Is(err, syscall.EAGAIN) {
			if err := w.reap(ctx, 1); err != nil {
				return err
			}
			runtime.Gosched()
			continue
		}
		o.err = err
		o.done.Store(r.clock.Add(1))
		r.opError(o, fmt.Errorf("submit rejected the op: %w", err))
		return nil
	}
}

func (w *worker) reap(ctx context.Context, min int) error {
	n, err := w.qs.q.Wait(ctx, min, w.comps)
	for _, c := range w.comps[:n] {
		w.qs.mu.Lock()
		o, ok := w.qs.inflight[c.UserData]
		buf := w.qs.bufm[c.UserData]
		delete(w.qs.inflight, c.UserData)
		delete(w.qs.bufm, c.UserData)
		w.qs.mu.Unlock()
		if !ok {
			w.r.completions.Add(1)
			w.r.fail(-1, 0, -1, "completion for an op not in flight (duplicate or unknown, I2): user data %d, n %d, err %v", c.UserData, c.N, c.Err)
			continue
		}
		w.r.complete(o, buf, c.N, c.Err)
	}
	if err != nil {
		return fmt.Errorf("async wait (%d in flight): %w", w.qs.count(), err)
	}
	return nil
}
