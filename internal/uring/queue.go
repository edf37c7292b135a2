package uring

import (
	"fmt"
	"runtime"
	"sync"
	"syscall"
)

// stopMark is the user data of the NOP that stops the reaper.
const stopMark = ^uint64(0)

// Queue is a Ring shared by many submitting goroutines, with one reaper
// goroutine delivering completions. See the package doc for the protocol.
type Queue struct {
	ring *Ring
	// mu protects the ring's SQ side (SQE, Publish, sqLocal) and the
	// entering/reaping flags.
	mu sync.Mutex
	// entering: a submitter is running the io_uring_enter loop.
	entering bool
	// reaping: the reaper is running completion callbacks and will submit
	// what they publish.
	reaping  bool
	complete func(userData uint64, res int32)
	handleFn func(userData uint64, res int32)
	stopped  bool // set by the reaper only
	done     chan struct{}
	closed   bool // Close was called (under mu)
	// Spin is how many times the reaper polls the CQ (yielding the
	// processor) before blocking in io_uring_enter; 0 blocks at once.
	spin int
}

// QueueOptions tunes a Queue.
type QueueOptions struct {
	// SetupFlags are extra io_uring_setup flags.
	SetupFlags uint32
	// Spin is how many times the reaper polls for completions (yielding in
	// between) before blocking in io_uring_enter.
	Spin int
}

// NewQueue sets up a ring of entries SQ entries and starts its reaper, which
// calls complete(userData, res) once per completion. complete runs on the
// reaper goroutine; it may prepare and commit new SQEs (Lock/SQE/Commit) but
// must not block for long and must not call Close.
func NewQueue(entries uint32, complete func(userData uint64, res int32), o QueueOptions) (*Queue, error) {
	r, err := NewRing(entries, o.SetupFlags)
	if err != nil {
		return nil, err
	}
	q := &Queue{ring: r, complete: complete, done: make(chan struct{}), spin: o.Spin}
	q.handleFn = q.handle
	go q.reaper()
	return q, nil
}

// Entries returns the SQ size; callers keep at most this many SQEs prepared
// and not yet completed.
func (q *Queue) Entries() int { return int(q.ring.sqCount) }

// Ring returns the underlying ring (for Params).
func (q *Queue) Ring() *Ring { return q.ring }

// Lock takes the SQ lock; then call SQE for each operation and Commit.
func (q *Queue) Lock() { q.mu.Lock() }

// SQE returns the next zeroed SQE (nil when the SQ is full). The lock must
// be held.
func (q *Queue) SQE() *SQE { return q.ring.SQE() }

// Commit publishes the prepared SQEs, releases the lock and makes sure they
// are submitted: by this goroutine, or by the goroutine already entering
// the kernel, or by the reaper when called from a completion callback.
func (q *Queue) Commit() {
	q.ring.Publish()
	if q.entering || q.reaping {
		q.mu.Unlock()
		return
	}
	q.entering = true
	for {
		n := q.ring.Unsubmitted()
		if n == 0 {
			break
		}
		q.mu.Unlock()
		_, errno := enter(q.ring.fd, n, 0, 0)
		switch errno {
		case 0, syscall.EINTR:
		case syscall.EAGAIN, syscall.EBUSY:
			runtime.Gosched() // let the reaper free completion space
		default:
			// EBADF, EFAULT, EINVAL: the ring itself is broken.
			panic(fmt.Sprintf("uring: io_uring_enter(submit %d): %v", n, errno))
		}
		q.mu.Lock()
	}
	q.entering = false
	q.mu.Unlock()
}

func (q *Queue) handle(ud uint64, res int32) {
	if ud == stopMark {
		q.stopped = true
		return
	}
	q.complete(ud, res)
}

func (q *Queue) reaper() {
	defer close(q.done)
	// One OS thread for the reaper: the kernel attaches io-wq workers and
	// task work to the submitting thread, so keeping the reaper (which does
	// most submissions) on one thread keeps one worker pool warm.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	q.mu.Lock()
	q.reaping = true
	q.mu.Unlock()
	for {
		q.ring.Reap(q.handleFn)
		q.mu.Lock()
		toSubmit := q.ring.Unsubmitted()
		if q.stopped && toSubmit == 0 {
			q.reaping = false
			q.mu.Unlock()
			return
		}
		q.reaping = false
		q.mu.Unlock()

		if toSubmit == 0 && !q.ring.CQReady() {
			for i := 0; i < q.spin && !q.ring.CQReady(); i++ {
				runtime.Gosched()
			}
		}
		var flags, wait uint32
		if !q.ring.CQReady() || q.ring.Overflowed() {
			flags, wait = EnterGetevents, 1
		}
		if toSubmit != 0 || wait != 0 {
			_, errno := enter(q.ring.fd, toSubmit, wait, flags)
			switch errno {
			case 0, syscall.EINTR:
			case syscall.EAGAIN, syscall.EBUSY:
				// Out of resources or CQ backlog: reap what is there
				// (flushing the overflow list) and retry the submission.
				enter(q.ring.fd, 0, 0, EnterGetevents)
			default:
				panic(fmt.Sprintf("uring: io_uring_enter: %v", errno))
			}
		}
		q.mu.Lock()
		q.reaping = true
		q.mu.Unlock()
	}
}

// Close stops the reaper and releases the ring. The caller must have waited
// for all of its operations to complete. Close must not be called from a
// completion callback. It is idempotent.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		<-q.done
		return nil
	}
	q.closed = true
	e := q.ring.SQE()
	for e == nil {
		// Cannot happen when callers respect Entries; wait for room.
		q.mu.Unlock()
		runtime.Gosched()
		q.mu.Lock()
		e = q.ring.SQE()
	}
	e.Opcode = OpNop
	e.UserData = stopMark
	q.Commit()
	<-q.done
	return q.ring.Close()
}
