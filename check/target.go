package check

import (
	"context"
	"fmt"
	"io/fs"
	"sync"
	"syscall"

	"github.com/aiodio/aiodio"
	"golang.org/x/sys/unix"
)

// Target is what the exerciser drives: an aiodio volume (VolumeTarget) or a
// directory of a kernel filesystem (DirTarget). Names are io/fs.ValidPath
// names relative to the target's root.
type Target interface {
	// String names the target for reports.
	String() string
	// OpenFile opens name with os.O_* flags plus syscall.O_DIRECT.
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	Remove(name string) error
	Stat(name string) (fs.FileInfo, error)
	// Sync makes everything written so far durable.
	Sync() error
	// NewAsync returns a submission/completion queue for ops on this
	// target's files, with room for entries ops in flight.
	NewAsync(entries int) (Async, error)
	// UnalignedDirect reports whether direct I/O may use any offset,
	// length and buffer address (multiples of CellSize): true for aiodio
	// volumes without StrictAlignment, false for the kernel.
	UnalignedDirect() bool
	// Close releases the target (for a volume: closes it).
	Close() error
}

// Checker is implemented by targets that can check their own consistency
// (an aiodio volume: its metadata; fsck).
type Checker interface {
	Check() (findings []string, err error)
}

// Reopener is implemented by targets that can be closed and opened again
// (an aiodio volume): files opened before are unusable after Reopen, and
// every synced byte must read back the same.
type Reopener interface {
	Reopen() error
}

// Crasher is implemented by targets that can lose power (an aiodio volume
// on a device/sim device): Crash cuts the power (what was not flushed is
// lost or torn, as the seed decides) and mounts the surviving image again.
// Files and async queues opened before are dead afterwards.
type Crasher interface {
	Crash(seed int64) error
}

// StalePageCacheReporter is implemented by targets that, like Linux,
// report a direct write whose page-cache invalidation failed after the
// write completed (it collided with buffered I/O of the same range) as EIO
// from the file's next fsync, and from that write itself when it was
// RWF_DSYNC: Linux's dio_warn_stale_pagecache sets the file's writeback
// error and logs "Page cache invalidation failure on direct I/O. Possible
// data corruption due to collision with buffered I/O!". Nothing is lost by
// it (the verifier still checks every byte); the exerciser counts such
// errors in Report.StalePageCacheEIO instead of failing. aiodio volumes
// never do this (I5) and do not implement the interface.
type StalePageCacheReporter interface {
	StalePageCacheEIO() bool
}

// File is an open file of a Target.
type File interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Truncate(size int64) error
	Fallocate(mode uint32, off, n int64) error
	Sync() error
	Stat() (fs.FileInfo, error)
	// DIOAlign reports the memory and offset alignment of direct I/O.
	DIOAlign() (mem, offset int)
	Close() error
}

// OpCode is the operation of an async Op: aiodio's own codes, so the
// volume target passes them through and the kernel target reads them.
type OpCode = aiodio.OpCode

// Async op codes.
const (
	OpRead  = aiodio.OpRead
	OpWrite = aiodio.OpWrite
	OpFsync = aiodio.OpFsync
)

// Op is one async operation. Flags: unix.RWF_NOWAIT (may complete with
// EAGAIN instead of waiting), unix.RWF_DSYNC (durable when completed).
type Op struct {
	Code     OpCode
	File     File
	Buf      []byte
	Off      int64
	Flags    uint32
	UserData uint64
}

// Completion is the outcome of one Op.
type Completion struct {
	UserData uint64
	N        int
	Err      error
}

// Async is a submission/completion queue with io_submit semantics:
// Submit returns how many ops it accepted (an op it rejects is never
// completed); Wait returns at least min completions (0: what is ready).
// One goroutine uses an Async at a time in this package.
type Async interface {
	Submit(ops ...Op) (int, error)
	Wait(ctx context.Context, min int, out []Completion) (int, error)
	Close() error
}

// goAsync runs each op on its own goroutine with the File's synchronous
// calls: the async interface of kernel directories (pread/pwrite on O_DIRECT
// descriptors), and of any File without a native ring. Like aiodio.Ring it
// is safe for concurrent use, and Wait returns fewer than min when no
// accepted op is left in flight.
type goAsync struct {
	entries int

	// mu protects everything below.
	mu      sync.Mutex
	ready   []Completion  // completed, not yet reaped
	pending int           // accepted, not yet completed
	notify  chan struct{} // closed (and replaced) when ready or pending change
	closed  bool
	wg      sync.WaitGroup
}

func newGoAsync(entries int) *goAsync {
	return &goAsync{entries: entries, notify: make(chan struct{})}
}

// changedLocked wakes the waiters. Preconditions: a.mu is held.
func (a *goAsync) changedLocked() {
	close(a.notify)
	a.notify = make(chan struct{})
}

func (a *goAsync) Submit(ops ...Op) (int, error) {
	for i, op := range ops {
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			return i, fmt.Errorf("submit: %w", syscall.EBADF)
		}
		if a.pending+len(a.ready) >= a.entries {
			a.mu.Unlock()
			return i, fmt.Errorf("submit: queue full: %w", syscall.EAGAIN)
		}
		if op.File == nil || op.Off < 0 || op.Code < OpRead || op.Code > OpFsync {
			a.mu.Unlock()
			return i, fmt.Errorf("submit: bad op: %w", syscall.EINVAL)
		}
		a.pending++
		a.wg.Add(1)
		a.mu.Unlock()
		go func(op Op) {
			defer a.wg.Done()
			c := Completion{UserData: op.UserData}
			switch op.Code {
			case OpRead:
				c.N, c.Err = op.File.ReadAt(op.Buf, op.Off)
			case OpWrite:
				c.N, c.Err = op.File.WriteAt(op.Buf, op.Off)
				if c.Err == nil && op.Flags&unix.RWF_DSYNC != 0 {
					c.Err = op.File.Sync()
				}
			case OpFsync:
				c.Err = op.File.Sync()
			}
			a.mu.Lock()
			a.pending--
			a.ready = append(a.ready, c)
			a.changedLocked()
			a.mu.Unlock()
		}(op)
	}
	return len(ops), nil
}

func (a *goAsync) Wait(ctx context.Context, min int, out []Completion) (int, error) {
	n := 0
	for {
		a.mu.Lock()
		k := copy(out[n:], a.ready)
		a.ready = a.ready[:copy(a.ready, a.ready[k:])]
		n += k
		if n >= min || n == len(out) || a.pending == 0 {
			a.mu.Unlock()
			return n, nil
		}
		ch := a.notify
		a.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return n, ctx.Err()
		}
	}
}

func (a *goAsync) Close() error {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.wg.Wait()
	return nil
}
