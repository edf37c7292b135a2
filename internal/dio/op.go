package dio

import (
	"sync"
	"sync/atomic"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/lock"
	"github.com/aiodio/aiodio/internal/meta"
)

// dop is the engine's state for one Op from acceptance to completion. It is
// pooled (Engine.ops) with its requests, mappings and range-lock entry, so
// the steady-state path allocates nothing.
//
// References (seed 003, "bio_count race"): refs counts one reference for the
// submitter plus one per accepted device request. Whoever drops the last one
// runs end-I/O, exactly once; nothing touches the dop after it is put back.
type dop struct {
	e  *Engine
	op *Op
	in *Inode

	write bool
	// refs: see the type doc; atomic.
	refs atomic.Int32
	// mu protects err (the first error of any device request).
	mu  sync.Mutex
	err error

	maps     []meta.Mapping
	reqStore []device.Request
	reqs     []*device.Request
	reqDone  func(*device.Request)

	// buf is the memory the device requests use: the caller's Buf, or a
	// bounce buffer (bounced) that covers file bytes [xs, xs+len(buf)).
	buf     []byte
	bounced bool
	xs      int64
	// lastBufEnd is the end (in buf) of the last request built.
	lastBufEnd int

	// Read: cnt bytes up to EOF.
	cnt int
	// Write: [off, dend) is the direct part.
	dend    int64
	convert bool // ConvertWritten [cfb, cfb+ccount) with newSize dend at end-I/O
	cfb     int64
	ccount  int64
	// ranged: rng is held until end-I/O (I6).
	ranged bool
	rng    lock.Range
	// fallback: the submitter waits on wake for the direct part (I3) and
	// finishes the op itself.
	fallback bool
	wake     chan struct{}
	// onWorker: end-I/O runs on an end-I/O worker (conversion, DSYNC).
	onWorker bool
	// unaligned: the op holds its inode's SerializeUnaligned slot until
	// completion.
	unaligned bool
	// holdLock: the op holds the inode lock exclusive until end-I/O (a
	// write with a partial sector; see Write).
	holdLock bool
}

func newDop(e *Engine) *dop {
	d := &dop{e: e, wake: make(chan struct{}, 1)}
	d.reqDone = d.requestDone
	return d
}

func (e *Engine) getDop(op *Op, write bool) *dop {
	d := e.ops.Get().(*dop)
	d.op, d.in, d.write = op, op.Inode, write
	d.err = nil
	d.maps = d.maps[:0]
	d.reqs = d.reqs[:0]
	d.buf, d.bounced, d.xs = nil, false, 0
	d.cnt, d.dend, d.convert, d.cfb, d.ccount = 0, 0, false, 0, 0
	d.ranged, d.fallback, d.onWorker, d.unaligned, d.holdLock = false, false, false, false, false
	return d
}

func (e *Engine) putDop(d *dop) {
	if d.bounced {
		e.bounce.Put(d.buf)
	}
	for i := range d.reqStore {
		d.reqStore[i] = device.Request{}
	}
	for i := range d.reqs {
		d.reqs[i] = nil
	}
	d.op, d.in, d.buf, d.err = nil, nil, nil, nil
	e.ops.Put(d)
}

func (d *dop) setErr(err error) {
	d.mu.Lock()
	if d.err == nil {
		d.err = err
	}
	d.mu.Unlock()
}

func (d *dop) firstErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// addReq appends device requests for d.buf[bo:bo+n] at device offset
// devOff, coalescing with the previous request when both the device range
// and the buffer continue it, and splitting at the device's MaxIO.
func (d *dop) addReq(kind device.Kind, devOff int64, bo, n int) {
	for n > 0 {
		if k := len(d.reqs); k > 0 {
			p := d.reqs[k-1]
			pl := len(p.Buf)
			if p.Kind == kind && p.Off+int64(pl) == devOff && d.lastBufEnd == bo && pl < d.e.maxIO {
				m := min(d.e.maxIO-pl, n)
				p.Buf = d.buf[bo-pl : bo+m]
				bo, n, devOff = bo+m, n-m, devOff+int64(m)
				d.lastBufEnd = bo
				continue
			}
		}
		m := min(d.e.maxIO, n)
		r := d.newReq()
		r.Kind, r.Off, r.Buf = kind, devOff, d.buf[bo:bo+m]
		bo, n, devOff = bo+m, n-m, devOff+int64(m)
		d.lastBufEnd = bo
	}
}

// newReq returns a fresh request slot. reqStore grows by reallocation only
// while no request has been handed to the device (all requests of an op
// are built before the one Submit).
func (d *dop) newReq() *device.Request {
	n := len(d.reqs)
	if n == len(d.reqStore) {
		ns := make([]device.Request, max(4, 2*n))
		copy(ns, d.reqStore)
		d.reqStore = ns
		d.reqs = d.reqs[:0]
		for i := 0; i < n; i++ {
			d.reqs = append(d.reqs, &d.reqStore[i])
		}
	}
	r := &d.reqStore[n]
	*r = device.Request{Done: d.reqDone, Ctx: d}
	d.reqs = append(d.reqs, r)
	return r
}

// submit hands the built requests to the device. refs must already count
// the submitter. Requests the device rejects count as failed (their error
// is the op's) and never complete.
func (d *dop) submit() {
	n := len(d.reqs)
	if n == 0 {
		return
	}
	d.refs.Add(int32(n))
	k, err := d.e.dev.Submit(d.reqs...)
	if k < n {
		d.setErr(err)
		d.refs.Add(-int32(n - k))
	}
}

// requestDone is every device request's Done.
//
// A short completion (no error, 0 < N < length) is resubmitted for the
// remainder, from inside Done (which the device contract allows), keeping
// the op's reference: the bytes already moved are not moved again and the
// op's count stays exact (I4). The device layer already guarantees N ==
// length on success (device/doc.go), so this is a second line of defence
// for a Device implementation that does not. A completion that moved
// nothing and reported no error fails the op with EIO (no progress).
func (d *dop) requestDone(r *device.Request) {
	switch {
	case r.Err != nil:
		d.setErr(r.Err)
	case r.N != r.Len():
		if d.resubmitShort(r) {
			return
		}
		d.setErr(errShort)
	}
	d.put()
}

// resubmitShort resubmits the rest of r after a short transfer, reporting
// whether it did (then r completes again later).
func (d *dop) resubmitShort(r *device.Request) bool {
	n := r.N
	if n <= 0 || n > r.Len() || r.Bufs != nil || n%d.e.ss != 0 {
		return false
	}
	r.Off += int64(n)
	r.Buf = r.Buf[n:]
	r.N, r.Err = 0, nil
	if _, err := d.e.dev.Submit(r); err != nil {
		d.setErr(err)
		d.put()
	}
	return true
}

// put drops one reference; the last one runs end-I/O (or wakes the
// fallback submitter).
func (d *dop) put() {
	if d.refs.Add(-1) != 0 {
		return
	}
	switch {
	case d.fallback:
		d.wake <- struct{}{}
	case d.onWorker:
		d.e.queue(d)
	default:
		d.endIO()
	}
}

func (d *dop) endIO() {
	if d.write {
		d.endWrite()
	} else {
		d.endRead()
	}
}

// complete delivers the outcome once and recycles d.
//
// Preconditions: every device request of d has completed; d holds no lock
// except the dio drain.
func (d *dop) complete(n int, err error) {
	op, in, ua := d.op, d.in, d.unaligned
	d.e.putDop(d)
	in.DIO.End()
	if ua {
		in.releaseUnaligned()
	}
	op.N, op.Err = n, err
	op.Done(op)
}

// completeEarly finishes an op that submitted nothing and never took the
// drain (zero length, read at or past EOF).
func completeEarly(op *Op, n int, err error) {
	op.N, op.Err = n, err
	op.Done(op)
}
