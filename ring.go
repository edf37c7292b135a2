package aiodio

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/aiodio/aiodio/internal/dio"
	"golang.org/x/sys/unix"
)

// OpCode says what an Op does.
type OpCode int

const (
	// OpRead reads len(Buf) bytes at Off into Buf.
	OpRead OpCode = iota
	// OpWrite writes Buf at Off.
	OpWrite
	// OpFsync makes the file's data and metadata durable, like File.Sync
	// (Buf and Off are ignored). It is not ordered after ops submitted
	// before it: wait for their completions first.
	OpFsync
)

func (c OpCode) String() string {
	switch c {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case OpFsync:
		return "fsync"
	}
	return fmt.Sprintf("OpCode(%d)", int(c))
}

// Op is one asynchronous operation for Ring.Submit.
//
// Buf belongs to aiodio from the moment Submit accepts the op until its
// Completion is delivered (reaped or not): do not read, write or reuse it
// in between (I3 is only promised to callers who keep this rule).
type Op struct {
	Code OpCode
	File *File
	Buf  []byte
	Off  int64
	// Flags: 0, unix.RWF_NOWAIT (a direct op that would wait for a lock,
	// the drain or a writeback, or a write that needs allocation, completes
	// with EAGAIN instead; see the package doc), and
	// unix.RWF_DSYNC (the op completes once its data and metadata are
	// durable).
	Flags uint32
	// UserData is returned in the op's Completion.
	UserData uint64
}

// Completion is the outcome of one accepted Op. For reads and writes N is
// the byte count; Err is nil when N == len(Buf). A read that reaches end of
// file completes with the bytes up to it and io.EOF (or nil if the whole
// buffer was filled).
type Completion struct {
	UserData uint64
	N        int
	Err      error
}

// MaxRingEntries bounds NewRing's entries.
const MaxRingEntries = 1 << 15

const ringFlags = unix.RWF_NOWAIT | unix.RWF_DSYNC

// Ring is a submission/completion queue in the style of io_uring and
// io_submit: Submit starts ops, Wait reaps their completions. Ops on files
// opened O_DIRECT run asynchronously on the direct engine; other ops run
// through the page cache on a goroutine of their own and complete through
// the ring the same way. A Ring is safe for concurrent use. A ring made by
// NewRingFunc delivers each completion to a function instead (no Wait).
//
// At most entries ops may be in flight or completed-but-not-reaped at once;
// Submit fails with EAGAIN (ErrRingFull) beyond that.
//
// IMPORTANT: Close the Ring (or the Volume) when done; Close waits for every
// accepted op to complete (and, on a function ring, for every call of the
// function to return).
type Ring struct {
	v       *Volume
	entries int

	// mu protects the fields below up to free; cond (on mu) is broadcast
	// when a completion arrives, when the ring closes, and when the last
	// call of a function ring's function returns.
	mu       sync.Mutex
	cond     sync.Cond
	closed   bool
	inflight int          // accepted, not yet completed
	cq       []Completion // completed, not yet reaped: ring buffer of len entries
	cqHead   int
	cqLen    int
	free     []*ringOp // op state, one per entry, reused (no allocation per op)
	// handlers counts deliveries to fn in progress (Close waits for them).
	handlers int

	// fn, when set (NewRingFunc), receives every completion instead of the
	// CQ; set at creation, read-only after.
	fn func(Completion)
}

// ringOp is the state of one accepted op.
type ringOp struct {
	r    *Ring
	f    *File
	code OpCode
	buf  []byte
	off  int64
	flag uint32
	ud   uint64
	dop  dio.Op

	// Function rings only: seq numbers the op's uses (owned by the
	// goroutine that took it from the free list); inSubmit holds the seq
	// of the use whose Submit has not returned yet (0: none), so that a
	// completion arriving before Submit returns is delivered on its own
	// goroutine, never inside the caller's Submit.
	seq      uint64
	inSubmit atomic.Uint64
}

// NewRing returns a ring of entries slots (1..MaxRingEntries).
func (v *Volume) NewRing(entries int) (*Ring, error) {
	return v.newRing("new ring", entries, nil)
}

// NewRingFunc returns a ring of entries slots (1..MaxRingEntries) that
// delivers every completion by calling fn instead of queueing it for Wait
// (which then fails with EINVAL). It is the way to keep many ops in flight
// without a goroutine hand-off per completion: fn may Submit the next op
// at once, as a device's Done callback does.
//
// fn is called exactly once for every accepted op (never for one Submit
// rejected, I2), after the op's slot is free again, so a Submit from fn
// always finds room. It runs on an engine goroutine: for direct I/O the
// device's completion thread, which serves every completion of the volume
// while fn runs, so fn must not block (no I/O of its own, no waiting on
// other goroutines); for buffered ops and fsync a goroutine of their own;
// calls may run concurrently. fn is never called inside a Submit: a
// completion that arrives before its Submit has returned is delivered on a
// goroutine of its own. A Submit made from fn never waits either: a direct
// op that would wait (for a lock, a write-back, a fallback through the page
// cache) is tried with RWF_NOWAIT and, refused, continues on a goroutine of
// its own. fn must not Close the ring or the volume (Close waits for fn).
func (v *Volume) NewRingFunc(entries int, fn func(Completion)) (*Ring, error) {
	if fn == nil {
		return nil, fmt.Errorf("aiodio: new ring func: nil function: %w", syscall.EINVAL)
	}
	return v.newRing("new ring func", entries, fn)
}

func (v *Volume) newRing(what string, entries int, fn func(Completion)) (*Ring, error) {
	if err := v.enter(); err != nil {
		return nil, fmt.Errorf("aiodio: %s: %w", what, err)
	}
	defer v.gate.exit()
	if entries < 1 || entries > MaxRingEntries {
		return nil, fmt.Errorf("aiodio: %s: %d entries, want 1..%d: %w", what, entries, MaxRingEntries, syscall.EINVAL)
	}
	r := &Ring{v: v, entries: entries, free: make([]*ringOp, entries), fn: fn}
	if fn == nil {
		r.cq = make([]Completion, entries)
	}
	r.cond.L = &r.mu
	ops := make([]ringOp, entries)
	for i := range ops {
		ro := &ops[i]
		ro.r = r
		ro.dop.Ptr = ro
		ro.dop.Done = dioDone
		r.free[i] = ro
	}
	v.ringMu.Lock()
	v.rings[r] = struct{}{}
	v.ringMu.Unlock()
	return r, nil
}

// deliver calls the ring's function with c and ends the delivery counted
// in r.handlers.
func (r *Ring) deliver(c Completion) {
	defer func() {
		r.mu.Lock()
		r.handlers--
		if r.handlers == 0 && r.inflight == 0 {
			r.cond.Broadcast()
		}
		r.mu.Unlock()
	}()
	r.fn(c)
}

// Submit starts ops in order, like io_submit: it returns how many it
// accepted, and when that is fewer than len(ops) the error says why
// ops[n] was rejected (ops after it were not looked at). A rejected op is
// never completed. Rejections: a nil File (EBADF), a closed File (EBADF),
// a read of a file not open for reading or a write of one not open for
// writing (EBADF), a directory (EISDIR), a file of another volume, an
// unknown Code or Flags, a negative Off (EINVAL), Off+len(Buf) past
// MaxFileSize (EFBIG), a full ring (EAGAIN), a closed ring (EBADF).
//
// Every other failure (ENOSPC, EIO, EAGAIN under RWF_NOWAIT, ...) is
// reported by the op's Completion. Submit may block while a direct op waits
// for a lock (unless RWF_NOWAIT, or on a function ring: see NewRingFunc).
// Submit() with no ops returns (0, nil).
func (r *Ring) Submit(ops ...Op) (int, error) {
	for i := range ops {
		if err := r.submit(&ops[i]); err != nil {
			return i, err
		}
	}
	return len(ops), nil
}

func (r *Ring) submit(op *Op) error {
	if err := r.validate(op); err != nil {
		return err
	}
	f := op.File
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return ErrRingClosed
	case r.inflight+r.cqLen >= r.entries:
		r.mu.Unlock()
		return ErrRingFull
	}
	if !f.gate.enter() {
		r.mu.Unlock()
		return &fs.PathError{Op: "submit", Path: f.name, Err: ErrFileClosed}
	}
	r.inflight++
	ro := r.free[len(r.free)-1]
	r.free = r.free[:len(r.free)-1]
	r.mu.Unlock()

	ro.f, ro.code, ro.buf, ro.off, ro.flag, ro.ud = f, op.Code, op.Buf, op.Off, op.Flags, op.UserData
	if f.dsync {
		ro.flag |= unix.RWF_DSYNC
	}
	var seq uint64
	if r.fn != nil {
		ro.seq++
		seq = ro.seq
		ro.inSubmit.Store(seq)
	}
	if op.Code != OpFsync && f.direct {
		ro.startDirect()
	} else {
		go ro.runSync()
	}
	if seq != 0 {
		ro.inSubmit.CompareAndSwap(seq, 0)
	}
	return nil
}

// validate is Submit's check of one op (I12).
func (r *Ring) validate(op *Op) error {
	f := op.File
	bad := func(err error) error {
		name := ""
		if f != nil {
			name = f.name
		}
		return &fs.PathError{Op: "submit " + op.Code.String(), Path: name, Err: err}
	}
	if f == nil {
		return bad(fmt.Errorf("nil file: %w", syscall.EBADF))
	}
	if f.v != r.v {
		return bad(fmt.Errorf("file of another volume: %w", syscall.EINVAL))
	}
	if op.Flags&^uint32(ringFlags) != 0 {
		return bad(fmt.Errorf("unknown flags %#x: %w", op.Flags&^uint32(ringFlags), syscall.EINVAL))
	}
	switch op.Code {
	case OpFsync:
		return nil
	case OpRead:
		if !f.rd {
			return bad(ErrNotReadable)
		}
	case OpWrite:
		if !f.wr {
			return bad(ErrNotWritable)
		}
	default:
		return bad(fmt.Errorf("unknown op code %d: %w", int(op.Code), syscall.EINVAL))
	}
	if f.in == nil {
		return bad(syscall.EISDIR)
	}
	if err := checkRange(op.Off, len(op.Buf)); err != nil {
		return bad(err)
	}
	return nil
}

// startDirect hands a direct read or write to the engine; its Done
// completes the op. A rejection by the engine (EAGAIN under RWF_NOWAIT,
// ENOSPC, a failed write-back) completes the op with that error.
//
// On a function ring Submit is typically called from the function, on the
// device's completion thread, which must never wait (a lock held by a
// truncate that waits for this very thread's completions would deadlock
// it). There the op is first issued with RWF_NOWAIT, which refuses before
// submitting anything whenever it would wait; such an op is then issued
// again, allowed to wait, on a goroutine of its own, as io_uring punts a
// request that would block to io-wq.
func (ro *ringOp) startDirect() {
	if ro.f.in.removed.Load() {
		ro.complete(0, ErrRemoved)
		return
	}
	if ro.r.fn == nil || ro.flag&unix.RWF_NOWAIT != 0 {
		ro.settle(ro.issue(ro.flag))
		return
	}
	err := ro.issue(ro.flag | unix.RWF_NOWAIT)
	if errors.Is(err, syscall.EAGAIN) {
		go func() { ro.settle(ro.issue(ro.flag)) }()
		return
	}
	ro.settle(err)
}

// issue prepares the op's dio.Op with flags and hands it to the engine;
// nil means it was submitted (its Done will complete the op).
func (ro *ringOp) issue(flags uint32) error {
	in := ro.f.in
	d := &ro.dop
	d.Inode, d.Buf, d.Off, d.Flags, d.N, d.Err = in.d, ro.buf, ro.off, flags, 0, nil
	if ro.code == OpRead {
		return ro.r.v.dio.Read(d)
	}
	if ro.f.appendMode {
		d.Off = in.d.Size()
	}
	return ro.r.v.dio.Write(d)
}

// settle finishes an issue: nothing to do when it was submitted; a write
// the engine refused because a cached page was busy goes through the page
// cache (unless RWF_NOWAIT: EAGAIN); any other refusal completes the op.
func (ro *ringOp) settle(err error) {
	if err == nil {
		return
	}
	if ro.code == OpWrite && isInvalidateBusy(err) {
		if ro.flag&unix.RWF_NOWAIT != 0 {
			err = fmt.Errorf("%w (%w)", syscall.EAGAIN, err)
		} else {
			ro.off = ro.dop.Off
			go ro.runWriteThrough()
			return
		}
	}
	ro.complete(0, err)
}

// runWriteThrough serves a direct write the engine refused because a cached
// page of its range was busy (see inode.writeThrough).
func (ro *ringOp) runWriteThrough() {
	n, err := ro.f.in.writeThrough(ro.buf, ro.off, ro.flag&unix.RWF_DSYNC != 0)
	ro.complete(n, err)
}

// dioDone is the Done of every ring op's dio.Op.
func dioDone(d *dio.Op) {
	ro := d.Ptr.(*ringOp)
	ro.complete(d.N, d.Err)
}

// runSync runs a buffered op or an fsync on its own goroutine.
func (ro *ringOp) runSync() {
	f := ro.f
	var n int
	var err error
	switch ro.code {
	case OpRead:
		n, err = f.readAt(ro.buf, ro.off)
	case OpWrite:
		n, err = f.writeAt(ro.buf, ro.off, ro.flag&unix.RWF_DSYNC != 0)
	case OpFsync:
		if f.in == nil {
			err = f.v.meta.Commit()
		} else {
			err = f.in.sync()
		}
	}
	ro.complete(n, err)
}

// complete delivers the op's completion, once (I2), and recycles its state.
func (ro *ringOp) complete(n int, err error) {
	r, f := ro.r, ro.f
	if err != nil {
		err = pathError(ro.code.String(), f.name, err)
	}
	c := Completion{UserData: ro.ud, N: n, Err: err}
	ro.f, ro.buf, ro.dop.Buf, ro.dop.Inode = nil, nil, nil, nil
	if r.fn != nil {
		inSubmit := ro.inSubmit.Swap(0) != 0
		r.mu.Lock()
		r.inflight--
		r.handlers++
		r.free = append(r.free, ro)
		r.mu.Unlock()
		f.gate.exit()
		if inSubmit {
			go r.deliver(c)
		} else {
			r.deliver(c)
		}
		return
	}
	r.mu.Lock()
	r.cq[(r.cqHead+r.cqLen)%r.entries] = c
	r.cqLen++
	r.inflight--
	r.free = append(r.free, ro)
	r.cond.Broadcast()
	r.mu.Unlock()
	f.gate.exit()
}

// Wait reaps completions into out, waiting until at least min are
// available. It returns the number copied (at most len(out)), in completion
// order. It returns fewer than min, with a nil error, when no accepted op is
// left in flight; with ctx's error when ctx ends first. min == 0 polls.
// On a closed ring it returns the completions still unreaped, with
// ErrRingClosed.
func (r *Ring) Wait(ctx context.Context, min int, out []Completion) (int, error) {
	if r.fn != nil {
		return 0, fmt.Errorf("aiodio: ring wait: the ring delivers its completions to a function (NewRingFunc): %w", syscall.EINVAL)
	}
	if min < 0 || min > len(out) {
		return 0, fmt.Errorf("aiodio: ring wait: min %d with %d slots: %w", min, len(out), syscall.EINVAL)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() {
			r.mu.Lock()
			r.cond.Broadcast()
			r.mu.Unlock()
		})
		defer stop()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var ctxErr error
	for r.cqLen < min && r.inflight > 0 {
		if ctxErr = ctx.Err(); ctxErr != nil {
			break
		}
		r.cond.Wait()
	}
	n := 0
	for n < len(out) && r.cqLen > 0 {
		out[n] = r.cq[r.cqHead]
		r.cq[r.cqHead] = Completion{}
		r.cqHead = (r.cqHead + 1) % r.entries
		r.cqLen--
		n++
	}
	switch {
	case r.closed:
		return n, ErrRingClosed
	case ctxErr != nil && n < min:
		return n, fmt.Errorf("aiodio: ring wait: %w", ctxErr)
	}
	return n, nil
}

// Close stops the ring accepting ops and waits until every accepted op has
// completed (each exactly once). Completions not yet reaped can still be
// reaped by Wait, which then also returns ErrRingClosed. Close is
// idempotent.
func (r *Ring) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.cond.Broadcast()
	for r.inflight > 0 || r.handlers > 0 {
		r.cond.Wait()
	}
	r.mu.Unlock()
	r.v.ringMu.Lock()
	delete(r.v.rings, r)
	r.v.ringMu.Unlock()
	return nil
}

// Entries returns the ring's size.
func (r *Ring) Entries() int { return r.entries }
