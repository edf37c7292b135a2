package lock

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
)

// Range is one request for a range of a RangeLock: the half-open interval
// [Start, End) (in blocks, or any unit the owner of the RangeLock chooses),
// exclusive unless Shared. Callers embed a Range in their per-operation
// state and reuse it, so locking allocates nothing in the steady state.
//
// Start, End and Shared are set by the caller before Lock and must not be
// changed until Unlock; the other fields belong to the RangeLock.
type Range struct {
	Start, End int64
	Shared     bool

	// The fields below are protected by the RangeLock's mu.
	owner *RangeLock
	// seq orders requests by arrival; a request waits only for older ones.
	seq uint64
	// blocking counts the older, overlapping, conflicting requests that are
	// still in the RangeLock; the range is held when it reaches zero.
	blocking int
	held     bool
	// ch receives one token when the range is granted to a waiter.
	ch chan struct{}
}

func (r *Range) conflicts(o *Range) bool {
	return (!r.Shared || !o.Shared) && r.Start < o.End && o.Start < r.End
}

// RangeLock locks ranges [Start, End) of an inode's blocks. Overlapping
// requests serialize (unless both are Shared), disjoint ones proceed in
// parallel. It is fair: a request waits for every older overlapping
// conflicting request, held or waiting, so a stream of small writers cannot
// starve a large one (the scheme of Linux's range_lock). See the package doc
// for the rule on holding several ranges.
//
// Cost: finding the requests that overlap [s, e) is a binary search plus a
// scan of the entries whose start lies in [s-maxLen, e) (maxLen: the longest
// range present since the lock was last empty); insertion and removal move
// pointers in one sorted slice. The number of entries is bounded by the
// number of operations in flight on the inode.
//
// The zero value is an empty RangeLock; it must not be copied after first use.
type RangeLock struct {
	// mu protects every field below and the lock-owned fields of every
	// Range in entries.
	mu sync.Mutex
	// entries holds the held and the waiting requests sorted by
	// (Start, seq).
	entries []*Range
	seq     uint64
	// maxLen bounds End-Start over entries (reset when entries empties).
	maxLen int64
}

func badRange(r *Range) error {
	if r.End <= r.Start || r.Start < 0 {
		return fmt.Errorf("lock: empty or negative range [%d,%d): %w", r.Start, r.End, syscall.EINVAL)
	}
	if r.owner != nil {
		return fmt.Errorf("lock: range [%d,%d) already in use: %w", r.Start, r.End, syscall.EINVAL)
	}
	return nil
}

// Lock acquires r, waiting for older conflicting requests. If ctx ends
// first it returns ctx's error (wrapped) and holds nothing. It returns an
// EINVAL error for an empty range or a Range already in use.
func (l *RangeLock) Lock(ctx context.Context, r *Range) error {
	if err := badRange(r); err != nil {
		return err
	}
	l.mu.Lock()
	l.insertLocked(r)
	l.mu.Unlock()
	return l.wait(ctx, r)
}

// TryLock acquires r if no request (held or waiting) conflicts with it.
// It returns false, holding nothing, for a conflict or an invalid range.
func (l *RangeLock) TryLock(r *Range) bool {
	if badRange(r) != nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	found := false
	l.eachOverlapLocked(r.Start, r.End, func(e *Range) {
		if e.conflicts(r) {
			found = true
		}
	})
	if found {
		return false
	}
	l.insertLocked(r)
	return true
}

// LockAll acquires every range of rs, which must be pairwise disjoint. All
// are enqueued in one critical section in ascending order of Start (rs is
// sorted in place), which is what makes several ranges per owner
// deadlock-free (package doc). On error (ctx ended, invalid or overlapping
// ranges) it holds none of them.
func (l *RangeLock) LockAll(ctx context.Context, rs []*Range) error {
	for _, r := range rs {
		if err := badRange(r); err != nil {
			return err
		}
	}
	slices.SortFunc(rs, func(a, b *Range) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	for i := 1; i < len(rs); i++ {
		if rs[i].Start < rs[i-1].End {
			return fmt.Errorf("lock: overlapping ranges [%d,%d) and [%d,%d) in one LockAll: %w",
				rs[i-1].Start, rs[i-1].End, rs[i].Start, rs[i].End, syscall.EINVAL)
		}
	}
	l.mu.Lock()
	for _, r := range rs {
		l.insertLocked(r)
	}
	l.mu.Unlock()
	for i, r := range rs {
		if err := l.wait(ctx, r); err != nil {
			for _, o := range rs[i+1:] {
				l.cancel(o)
			}
			for _, o := range rs[:i] {
				l.Unlock(o)
			}
			return err
		}
	}
	return nil
}

// Unlock releases a held range and grants the requests it was blocking. It
// may be called from any goroutine. It panics if r is not held (a broken
// internal invariant).
func (l *RangeLock) Unlock(r *Range) {
	l.mu.Lock()
	if r.owner != l || !r.held {
		l.mu.Unlock()
		panic("lock: RangeLock.Unlock of a range not held")
	}
	l.removeLocked(r)
	l.mu.Unlock()
}

// Len returns the number of held and waiting requests (for tests and
// assertions; may be stale at once).
func (l *RangeLock) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// wait blocks until r (already inserted) is held or ctx ends; on ctx's end
// it withdraws r.
func (l *RangeLock) wait(ctx context.Context, r *Range) error {
	l.mu.Lock()
	if r.held {
		// Held at insertion (no token) or granted since (one token, sent
		// under mu): drop the token so the Range can be reused.
		select {
		case <-r.ch:
		default:
		}
		l.mu.Unlock()
		return nil
	}
	l.mu.Unlock()
	select {
	case <-r.ch:
		return nil
	case <-ctx.Done():
	}
	l.cancel(r)
	return fmt.Errorf("lock: waiting for block range [%d,%d): %w", r.Start, r.End, ctx.Err())
}

// cancel withdraws r, held or waiting, discarding a grant token if one was sent.
func (l *RangeLock) cancel(r *Range) {
	l.mu.Lock()
	if r.held {
		select {
		case <-r.ch:
		default:
		}
	}
	l.removeLocked(r)
	l.mu.Unlock()
}

// insertLocked adds r, counting the older conflicting requests it must wait for.
//
// Preconditions: l.mu is held; r is not in use.
func (l *RangeLock) insertLocked(r *Range) {
	if r.ch == nil {
		r.ch = make(chan struct{}, 1)
	}
	l.seq++
	r.owner, r.seq, r.blocking, r.held = l, l.seq, 0, false
	l.eachOverlapLocked(r.Start, r.End, func(e *Range) {
		if e.conflicts(r) {
			r.blocking++
		}
	})
	if n := r.End - r.Start; n > l.maxLen {
		l.maxLen = n
	}
	i, _ := slices.BinarySearchFunc(l.entries, r, cmpEntry)
	l.entries = slices.Insert(l.entries, i, r)
	r.held = r.blocking == 0
}

// removeLocked takes r out and unblocks the newer conflicting requests.
//
// Preconditions: l.mu is held; r is in l.
func (l *RangeLock) removeLocked(r *Range) {
	i, ok := slices.BinarySearchFunc(l.entries, r, cmpEntry)
	if !ok || l.entries[i] != r {
		panic("lock: range not in its RangeLock")
	}
	l.entries = slices.Delete(l.entries, i, i+1)
	r.owner = nil
	r.held = false
	l.eachOverlapLocked(r.Start, r.End, func(e *Range) {
		if e.seq > r.seq && e.conflicts(r) {
			e.blocking--
			if e.blocking == 0 {
				e.held = true
				e.ch <- struct{}{}
			}
		}
	})
	if len(l.entries) == 0 {
		l.maxLen = 0
	}
}

// eachOverlapLocked calls f for every entry overlapping [s, e).
//
// Preconditions: l.mu is held.
func (l *RangeLock) eachOverlapLocked(s, e int64, f func(*Range)) {
	lo := s - l.maxLen
	i, _ := slices.BinarySearchFunc(l.entries, lo, func(x *Range, t int64) int {
		switch {
		case x.Start < t:
			return -1
		case x.Start > t:
			return 1
		}
		return 0
	})
	for ; i < len(l.entries); i++ {
		x := l.entries[i]
		if x.Start >= e {
			break
		}
		if x.End > s {
			f(x)
		}
	}
}

func cmpEntry(a, b *Range) int {
	switch {
	case a.Start < b.Start:
		return -1
	case a.Start > b.Start:
		return 1
	case a.seq < b.seq:
		return -1
	case a.seq > b.seq:
		return 1
	}
	return 0
}
