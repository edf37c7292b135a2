package lock

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Drain counts the direct operations in flight on one inode and lets an
// allocation-changing operation wait until there are none: the analogue of
// Linux's inode->i_dio_count with inode_dio_begin / inode_dio_end /
// inode_dio_wait (the i_alloc_sem held until DIO completion in seed 001).
//
// Begin must be called with the Inode lock held (shared or exclusive); End
// may be called from anywhere (typically end-I/O on a device goroutine);
// Wait must be called with the Inode lock held exclusive, which is what
// keeps new Begins out while the caller works (see the package doc).
//
// The zero value is an empty drain. Begin and End do not allocate.
type Drain struct {
	// count is the number of operations between Begin and End; accessed
	// using atomic memory operations.
	count atomic.Int64
	// mu protects idle.
	mu sync.Mutex
	// idle, when non-nil, is closed by the End that brings count to zero.
	idle chan struct{}
}

// Begin records one more direct operation in flight.
//
// Preconditions: the inode's Inode lock is held (shared or exclusive).
func (d *Drain) Begin() { d.count.Add(1) }

// End records that a direct operation has finished end-I/O. It panics if it
// does not match a Begin (a broken internal invariant).
func (d *Drain) End() {
	n := d.count.Add(-1)
	if n < 0 {
		panic("lock: Drain.End without Begin")
	}
	if n == 0 {
		d.mu.Lock()
		if d.idle != nil {
			close(d.idle)
			d.idle = nil
		}
		d.mu.Unlock()
	}
}

// InFlight returns the number of operations in flight (may be stale at once).
func (d *Drain) InFlight() int64 { return d.count.Load() }

// Wait returns once no direct operation is in flight, or with ctx's error
// (wrapped) if ctx ends first.
//
// Preconditions: the inode's Inode lock is held exclusive, so no Begin can
// race with Wait and the drain stays empty after Wait returns nil.
func (d *Drain) Wait(ctx context.Context) error {
	for {
		d.mu.Lock()
		if d.count.Load() == 0 {
			d.mu.Unlock()
			return nil
		}
		if d.idle == nil {
			d.idle = make(chan struct{})
		}
		ch := d.idle
		d.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("lock: waiting for in-flight direct I/O to drain: %w", ctx.Err())
		}
	}
}

// Idle reports whether no operation is in flight; the RWF_NOWAIT form of
// Wait. Same preconditions as Wait.
func (d *Drain) Idle() bool { return d.count.Load() == 0 }
