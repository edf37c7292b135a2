package check

import (
	"context"
	"fmt"
	"io"
	"sync"
	"syscall"
	"unsafe"

	"github.com/aiodio/aiodio/internal/uring"
	"golang.org/x/sys/unix"
)

// uringAsync is the async queue of kernel directories with URing: every op is one
// io_uring request (IORING_OP_READ/WRITE with the op's RWF_* flags as
// rw_flags, IORING_OP_FSYNC) on the file's own descriptor, so the kernel's
// asynchronous direct-I/O path is what the exerciser drives, with many
// requests of one file in flight at once. It has goAsync's semantics:
// io_submit-style Submit, Wait returns fewer than min when nothing is left
// in flight, Close waits for every accepted op.
//
// A read the kernel completes short (end of file) completes with the bytes
// it read and io.EOF, like aiodio.Ring, unless it was RWF_NOWAIT: then the
// kernel stopped where it would have blocked, and the completion carries
// the bytes read and EAGAIN; a write completed short is an EIO
// error naming the byte count (the exerciser then treats the range as
// unknown, as for any failed write).
type uringAsync struct {
	q *uring.Queue

	// mu protects everything below; cond (on mu) is signalled when a
	// completion arrives.
	mu      sync.Mutex
	cond    sync.Cond
	slots   []uringSlot // op state by SQE user data
	free    []int       // free slot indexes
	ready   []Completion
	pending int
	closed  bool
}

// uringSlot keeps an op's buffer referenced until its completion.
type uringSlot struct {
	op Op
}

// newURingAsync returns a queue of entries ops, or the io_uring_setup error
// (ENOSYS, EPERM).
func newURingAsync(entries int) (*uringAsync, error) {
	a := &uringAsync{slots: make([]uringSlot, entries), free: make([]int, entries)}
	a.cond.L = &a.mu
	for i := range a.free {
		a.free[i] = entries - 1 - i
	}
	q, err := uring.NewQueue(uint32(entries), a.complete, uring.QueueOptions{})
	if err != nil {
		return nil, err
	}
	if q.Entries() < entries {
		q.Close()
		return nil, fmt.Errorf("io_uring: %d entries, want %d: %w", q.Entries(), entries, syscall.ENOMEM)
	}
	a.q = q
	return a, nil
}

func (a *uringAsync) Submit(ops ...Op) (int, error) {
	for i, op := range ops {
		kf, ok := op.File.(*kernelFile)
		a.mu.Lock()
		switch {
		case a.closed:
			a.mu.Unlock()
			return i, fmt.Errorf("submit: %w", syscall.EBADF)
		case len(a.free) == 0 || a.pending+len(a.ready) >= len(a.slots):
			a.mu.Unlock()
			return i, fmt.Errorf("submit: queue full: %w", syscall.EAGAIN)
		case !ok || kf == nil || op.Off < 0 || op.Code < OpRead || op.Code > OpFsync:
			a.mu.Unlock()
			return i, fmt.Errorf("submit: bad op: %w", syscall.EINVAL)
		}
		slot := a.free[len(a.free)-1]
		a.free = a.free[:len(a.free)-1]
		a.slots[slot].op = op
		a.pending++
		a.mu.Unlock()

		a.q.Lock()
		e := a.q.SQE() // never nil: at most len(slots) ≤ Entries in flight
		e.Fd = int32(kf.fd)
		e.UserData = uint64(slot)
		switch op.Code {
		case OpFsync:
			e.Opcode = uring.OpFsync
		default:
			e.Opcode = uring.OpRead
			if op.Code == OpWrite {
				e.Opcode = uring.OpWrite
			}
			e.Off = uint64(op.Off)
			e.Len = uint32(len(op.Buf))
			e.OpFlags = op.Flags
			if len(op.Buf) > 0 {
				e.Addr = uint64(uintptr(unsafe.Pointer(&op.Buf[0])))
			}
		}
		a.q.Commit()
	}
	return len(ops), nil
}

// complete runs on the queue's reaper for every completion.
func (a *uringAsync) complete(ud uint64, res int32) {
	a.mu.Lock()
	s := &a.slots[ud]
	op := s.op
	s.op = Op{}
	c := Completion{UserData: op.UserData}
	switch {
	case res < 0:
		c.Err = fmt.Errorf("io_uring %v at %d: %w", op.Code, op.Off, syscall.Errno(-res))
	case op.Code == OpFsync:
	default:
		c.N = int(res)
		if c.N < len(op.Buf) {
			switch {
			case op.Code == OpRead && op.Flags&unix.RWF_NOWAIT != 0:
				// The kernel stopped where it would have blocked (a
				// buffered read past the cached pages), not
				// necessarily at end of file.
				c.Err = fmt.Errorf("io_uring read at %d: %d of %d bytes without waiting: %w", op.Off, c.N, len(op.Buf), syscall.EAGAIN)
			case op.Code == OpRead:
				c.Err = io.EOF
			default:
				c.Err = fmt.Errorf("io_uring write at %d: %d of %d bytes: %w", op.Off, c.N, len(op.Buf), syscall.EIO)
			}
		}
	}
	a.free = append(a.free, int(ud))
	a.pending--
	a.ready = append(a.ready, c)
	a.cond.Broadcast()
	a.mu.Unlock()
}

func (a *uringAsync) Wait(ctx context.Context, min int, out []Completion) (int, error) {
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() {
			a.mu.Lock()
			a.cond.Broadcast()
			a.mu.Unlock()
		})
		defer stop()
	}
	n := 0
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		k := copy(out[n:], a.ready)
		a.ready = a.ready[:copy(a.ready, a.ready[k:])]
		n += k
		if n >= min || n == len(out) || a.pending == 0 {
			return n, nil
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		a.cond.Wait()
	}
}

// Close refuses new ops, waits for those in flight and releases the ring.
func (a *uringAsync) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	for a.pending > 0 {
		a.cond.Wait()
	}
	a.mu.Unlock()
	return a.q.Close()
}
