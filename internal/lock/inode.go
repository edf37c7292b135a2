package lock

import (
	"context"
	"fmt"
	"sync"
	"syscall"
)

// ErrWouldBlock is returned (possibly wrapped) when an RWF_NOWAIT caller
// would have to wait for a lock or for the dio drain. It matches
// syscall.EAGAIN.
var ErrWouldBlock = fmt.Errorf("lock: would block: %w", syscall.EAGAIN)

// waiter is one goroutine queued on an Inode lock.
type waiter struct {
	excl bool
	// granted is set, under Inode.mu, when the lock was handed to this
	// waiter; ch then holds one token.
	granted bool
	ch      chan struct{}
}

var waiterPool = sync.Pool{New: func() any { return &waiter{ch: make(chan struct{}, 1)} }}

// Inode is the inode lock: a fair (FIFO) reader/writer lock whose blocking
// acquisitions take a context, with Try variants for RWF_NOWAIT. It is
// analogous to Linux's inode->i_rwsem (i_sem + i_alloc_sem in the 2003
// seeds). Readers queued behind a waiting writer wait for it, so a stream of
// direct reads cannot starve a truncate.
//
// The zero value is an unlocked lock. An Inode must not be copied after
// first use. Unlike sync.RWMutex, an Inode may be released by a goroutine
// other than the one that acquired it.
type Inode struct {
	// mu protects readers, writer and queue.
	mu      sync.Mutex
	readers int
	writer  bool
	// queue holds the waiting acquisitions in arrival order.
	queue []*waiter
}

// Lock acquires the lock exclusively, waiting if needed. If ctx ends first
// it returns ctx.Err() (wrapped) and does not hold the lock.
func (l *Inode) Lock(ctx context.Context) error { return l.acquire(ctx, true) }

// RLock acquires the lock shared, waiting if needed. If ctx ends first it
// returns ctx.Err() (wrapped) and does not hold the lock.
func (l *Inode) RLock(ctx context.Context) error { return l.acquire(ctx, false) }

// TryLock acquires the lock exclusively if that needs no waiting.
func (l *Inode) TryLock() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.writer || l.readers > 0 || len(l.queue) > 0 {
		return false
	}
	l.writer = true
	return true
}

// TryRLock acquires the lock shared if that needs no waiting (no writer holds
// it or waits for it).
func (l *Inode) TryRLock() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.writer || len(l.queue) > 0 {
		return false
	}
	l.readers++
	return true
}

// LockMode acquires the lock, exclusive when excl is true, shared otherwise.
// With nowait it never waits and returns ErrWouldBlock when the lock is not
// free (RWF_NOWAIT).
func (l *Inode) LockMode(ctx context.Context, excl, nowait bool) error {
	if nowait {
		ok := false
		if excl {
			ok = l.TryLock()
		} else {
			ok = l.TryRLock()
		}
		if !ok {
			return ErrWouldBlock
		}
		return nil
	}
	return l.acquire(ctx, excl)
}

// UnlockMode releases a lock taken with LockMode(…, excl, …).
func (l *Inode) UnlockMode(excl bool) {
	if excl {
		l.Unlock()
	} else {
		l.RUnlock()
	}
}

// Unlock releases an exclusive hold. It panics if the lock is not held
// exclusively (a broken internal invariant).
func (l *Inode) Unlock() {
	l.mu.Lock()
	if !l.writer {
		l.mu.Unlock()
		panic("lock: Inode.Unlock of a lock not held exclusively")
	}
	l.writer = false
	l.grantLocked()
	l.mu.Unlock()
}

// RUnlock releases a shared hold. It panics if no shared hold exists.
func (l *Inode) RUnlock() {
	l.mu.Lock()
	if l.readers <= 0 {
		l.mu.Unlock()
		panic("lock: Inode.RUnlock of a lock not held shared")
	}
	l.readers--
	l.grantLocked()
	l.mu.Unlock()
}

// Held reports the current holders: whether a writer holds the lock and how
// many readers do. For assertions and tests only; the answer may be stale.
func (l *Inode) Held() (writer bool, readers int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.writer, l.readers
}

func (l *Inode) acquire(ctx context.Context, excl bool) error {
	l.mu.Lock()
	if len(l.queue) == 0 && !l.writer && (!excl || l.readers == 0) {
		if excl {
			l.writer = true
		} else {
			l.readers++
		}
		l.mu.Unlock()
		return nil
	}
	if err := ctx.Err(); err != nil {
		l.mu.Unlock()
		return fmt.Errorf("lock: waiting for inode lock: %w", err)
	}
	w := waiterPool.Get().(*waiter)
	w.excl, w.granted = excl, false
	l.queue = append(l.queue, w)
	l.mu.Unlock()

	select {
	case <-w.ch:
		waiterPool.Put(w)
		return nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	if w.granted {
		// Granted while we were giving up: take the token and release.
		<-w.ch
		if excl {
			l.writer = false
		} else {
			l.readers--
		}
	} else {
		l.removeLocked(w)
	}
	l.grantLocked()
	l.mu.Unlock()
	waiterPool.Put(w)
	return fmt.Errorf("lock: waiting for inode lock: %w", ctx.Err())
}

// removeLocked drops w from the queue.
//
// Preconditions: l.mu is held; w is queued.
func (l *Inode) removeLocked(w *waiter) {
	for i, q := range l.queue {
		if q == w {
			copy(l.queue[i:], l.queue[i+1:])
			l.queue[len(l.queue)-1] = nil
			l.queue = l.queue[:len(l.queue)-1]
			return
		}
	}
	panic("lock: Inode waiter not queued")
}

// grantLocked hands the lock to the waiters at the head of the queue that can
// have it now, in order: one writer, or a run of readers.
//
// Preconditions: l.mu is held.
func (l *Inode) grantLocked() {
	n := 0
	for n < len(l.queue) {
		w := l.queue[n]
		if w.excl {
			if l.writer || l.readers > 0 {
				break
			}
			l.writer = true
		} else {
			if l.writer {
				break
			}
			l.readers++
		}
		// Read everything needed from w before the send: once the token
		// is delivered the waiter may return w to the pool, and another
		// Inode may take it and rewrite it.
		excl := w.excl
		w.granted = true
		w.ch <- struct{}{}
		n++
		if excl {
			break
		}
	}
	if n > 0 {
		copy(l.queue, l.queue[n:])
		for i := len(l.queue) - n; i < len(l.queue); i++ {
			l.queue[i] = nil
		}
		l.queue = l.queue[:len(l.queue)-n]
	}
}
