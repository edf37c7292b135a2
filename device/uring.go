package device

import (
	"fmt"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/aiodio/aiodio/internal/uring"
)

// uringDev serves requests through one io_uring (internal/uring.Queue).
// Each request in the kernel occupies a slot whose index is the SQE's user
// data; requests beyond the slot count wait in a FIFO backlog and take the
// next freed slot, so Submit never blocks (a Done callback may Submit).
type uringDev struct {
	info  Info
	fd    int
	q     *uring.Queue
	slots []uslot

	// mu protects free, backlog, pending and closed; cond signals Close
	// when pending drops to zero.
	mu      sync.Mutex
	cond    sync.Cond
	free    []int32
	backlog fifo
	pending int // accepted requests whose Done has not returned, and registrations in progress
	closed  bool

	closeOnce sync.Once
	fixed     fixedSet

	// sqeFlags go on every request's SQE (SQEAsync on tmpfs, see
	// newUringDev). Set before the first Submit, read-only after.
	sqeFlags uint8
}

// uslot is a request in the kernel. Only the goroutine that owns the slot
// (the submitter until its SQE is committed, then the reaper) touches it.
type uslot struct {
	req   *Request
	done  int // bytes already transferred (short completions)
	total int
	iov   []unix.Iovec // scratch for vectored requests, reused
}

func newUringDev(fd int, info Info, depth int) (*uringDev, error) {
	if depth <= 0 {
		depth = 128
	}
	depth = min(depth, 4096)
	d := &uringDev{fd: fd, info: info}
	d.info.Engine = "uring"
	d.cond.L = &d.mu
	// On tmpfs the kernel can serve no file operation from io_uring's
	// non-blocking path: every read, write and fsync is punted to io-wq.
	// io-wq is per submitting thread, and it starts another worker only
	// for work that may run concurrently (IOSQE_ASYNC) or when its workers
	// sleep; memory copies never sleep. With the doorbell (all submissions
	// from the reaper's thread) the whole workload, flushes included, thus
	// ran on one io-wq worker, one request after another: with the mixed
	// demo workload 3-4x slower than the thread pool, flush p50 2.7-3.3 ms.
	// There, submit directly from the calling threads (one io-wq per
	// thread) and mark requests IOSQE_ASYNC (skips the futile non-blocking
	// attempt and lets io-wq add workers).
	tmpfs := isTmpfs(fd)
	if tmpfs {
		d.sqeFlags = uring.SQEAsync
	}
	q, err := uring.NewQueue(uint32(depth), d.complete, uring.QueueOptions{Doorbell: !tmpfs, Eager: !tmpfs})
	if err != nil {
		return nil, err
	}
	d.q = q
	n := q.Entries()
	d.slots = make([]uslot, n)
	d.free = make([]int32, n)
	for i := range d.free {
		d.free[i] = int32(n - 1 - i)
	}
	d.backlog.init(64)
	return d, nil
}

func (d *uringDev) Info() Info { return d.info }

func (d *uringDev) Submit(reqs ...*Request) (int, error) {
	n := 0
	var cerr error
	for ; n < len(reqs); n++ {
		if cerr = Check(d.info, reqs[n]); cerr != nil {
			break
		}
	}
	if n > 0 {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return 0, fmt.Errorf("device: uring: submit: %w", ErrClosed)
		}
		d.pending += n
		d.q.Lock()
		for _, r := range reqs[:n] {
			if len(d.free) == 0 {
				d.backlog.push(r)
				continue
			}
			i := d.free[len(d.free)-1]
			d.free = d.free[:len(d.free)-1]
			s := &d.slots[i]
			s.req, s.done, s.total = r, 0, r.Len()
			d.prep(i)
		}
		d.mu.Unlock()
		d.q.Commit()
	}
	return n, cerr
}

// prep fills the SQE for slot i from its progress. The queue lock is held.
func (d *uringDev) prep(i int32) {
	s := &d.slots[i]
	r := s.req
	e := d.q.SQE()
	if e == nil {
		panic("device: uring: SQ full with a free slot (slots exceed ring entries)")
	}
	e.Fd = int32(d.fd)
	e.Flags = d.sqeFlags
	e.UserData = uint64(i)
	e.Off = uint64(r.Off) + uint64(s.done)
	rest := s.total - s.done
	switch {
	case r.Kind == Flush:
		e.Opcode = uring.OpFsync
		e.OpFlags = uring.FsyncDatasync
	case rest == 0:
		e.Opcode = uring.OpNop
	case r.Bufs == nil:
		addr := uintptr(unsafe.Pointer(&r.Buf[s.done]))
		e.Opcode = uring.OpRead
		if r.Kind == Write {
			e.Opcode = uring.OpWrite
		}
		if t := d.fixed.table.Load(); t != nil {
			if idx, ok := t.find(addr, rest); ok {
				e.Opcode = uring.OpReadFixed
				if r.Kind == Write {
					e.Opcode = uring.OpWriteFixed
				}
				e.BufIndex = idx
			}
		}
		e.Addr = uint64(addr)
		e.Len = uint32(rest)
	default:
		s.iov = s.iov[:0]
		skip := s.done
		for _, b := range r.Bufs {
			if skip >= len(b) {
				skip -= len(b)
				continue
			}
			b = b[skip:]
			skip = 0
			s.iov = append(s.iov, unix.Iovec{Base: &b[0], Len: uint64(len(b))})
		}
		e.Opcode = uring.OpReadv
		if r.Kind == Write {
			e.Opcode = uring.OpWritev
		}
		e.Addr = uint64(uintptr(unsafe.Pointer(&s.iov[0])))
		e.Len = uint32(len(s.iov))
	}
}

// reissue submits the rest of slot i (from the reaper).
func (d *uringDev) reissue(i int32) {
	d.q.Lock()
	d.prep(i)
	d.q.Commit()
}

// complete runs on the reaper for every CQE.
func (d *uringDev) complete(ud uint64, res int32) {
	i := int32(ud)
	s := &d.slots[i]
	r := s.req
	if res < 0 {
		errno := syscall.Errno(-res)
		if errno == syscall.EAGAIN || errno == syscall.EINTR {
			d.reissue(i)
			return
		}
		r.Err = fmt.Errorf("device: %v at offset %d length %d: %w", r.Kind, r.Off+int64(s.done), s.total-s.done, errno)
	} else if r.Kind != Flush {
		s.done += int(res)
		if s.done < s.total {
			if res > 0 {
				d.reissue(i)
				return
			}
			r.Err = fmt.Errorf("device: %v at offset %d: unexpected end of file: %w", r.Kind, r.Off+int64(s.done), syscall.EIO)
		} else {
			r.Err = nil
		}
	} else {
		r.Err = nil
	}
	r.N = s.done
	if r.Kind == Flush {
		r.N = 0
	}
	s.req = nil

	// Hand the slot to the oldest waiting request, or free it.
	d.mu.Lock()
	if next := d.backlog.pop(); next != nil {
		s.req, s.done, s.total = next, 0, next.Len()
		d.q.Lock()
		d.mu.Unlock()
		d.prep(i)
		d.q.Commit()
	} else {
		d.free = append(d.free, i)
		d.mu.Unlock()
	}

	r.Done(r)
	d.endPending()
}

// endPending ends one pending request (or registration), waking Close when
// it was the last.
func (d *uringDev) endPending() {
	d.mu.Lock()
	d.pending--
	if d.pending == 0 && d.closed {
		d.cond.Broadcast()
	}
	d.mu.Unlock()
}

// RegisterBuffers registers bufs as io_uring fixed buffers (see
// BufferRegistrar). Only the first call can succeed.
func (d *uringDev) RegisterBuffers(bufs [][]byte) error {
	t, err := newFixedTable(bufs)
	if err != nil {
		return err
	}
	if !d.fixed.once.CompareAndSwap(false, true) {
		return fmt.Errorf("device: register buffers: already registered: %w", syscall.EBUSY)
	}
	// Counted as pending, like a request, so Close cannot release the ring
	// meanwhile; mu is not held across the call: on a single-issuer ring
	// the reaper makes it, and the reaper's completions take mu.
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fmt.Errorf("device: register buffers: %w", ErrClosed)
	}
	d.pending++
	d.mu.Unlock()
	err = d.q.RegisterBuffers(bufs)
	if err == nil {
		d.fixed.table.Store(t)
	}
	d.endPending()
	if err != nil {
		return fmt.Errorf("device: %w", err)
	}
	return nil
}

func (d *uringDev) Close() error {
	d.mu.Lock()
	d.closed = true
	for d.pending > 0 {
		d.cond.Wait()
	}
	d.mu.Unlock()
	d.closeOnce.Do(func() {
		d.q.Close()
		unix.Close(d.fd)
	})
	return nil
}

// isTmpfs reports whether fd is a file on tmpfs (where io_uring punts every
// file operation to io-wq).
func isTmpfs(fd int) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC
}

// fifo is a growable ring buffer of requests.
type fifo struct {
	items []*Request
	head  int
	count int
}

func (f *fifo) init(n int) { f.items = make([]*Request, n) }

func (f *fifo) push(r *Request) {
	if f.count == len(f.items) {
		grown := make([]*Request, 2*len(f.items))
		for i := 0; i < f.count; i++ {
			grown[i] = f.items[(f.head+i)%len(f.items)]
		}
		f.items, f.head = grown, 0
	}
	f.items[(f.head+f.count)%len(f.items)] = r
	f.count++
}

func (f *fifo) pop() *Request {
	if f.count == 0 {
		return nil
	}
	r := f.items[f.head]
	f.items[f.head] = nil
	f.head = (f.head + 1) % len(f.items)
	f.count--
	return r
}
