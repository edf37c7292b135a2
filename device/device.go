package device

import (
	"syscall"
)

// Kind says what a Request does.
type Kind uint8

const (
	// Read fills the request's buffers from the device at Off.
	Read Kind = iota
	// Write stores the request's buffers on the device at Off.
	Write
	// Flush makes every write that completed before it was submitted durable
	// (a volatile write cache is emptied). Off and buffers are ignored.
	Flush
)

func (k Kind) String() string {
	switch k {
	case Read:
		return "read"
	case Write:
		return "write"
	case Flush:
		return "flush"
	}
	return "unknown"
}

// Request is one asynchronous device operation.
//
// The caller owns a Request until it calls Submit; from a successful Submit
// until Done is called the device owns it and the buffers it names. The device
// calls Done exactly once, after the last byte moved to or from the buffers; after
// Done returns the device never touches the request or its buffers again, so the
// caller may reuse both (from inside Done, too).
//
// A request rejected by Submit is never completed: Done is not called.
//
// Requests are meant to be embedded in, or pooled with, the caller's own
// per-operation state so that the steady-state path allocates nothing.
type Request struct {
	Kind Kind
	// Off is the byte offset on the device; a multiple of Info().LogicalBlockSize.
	Off int64
	// Buf is the data buffer when Bufs is nil.
	Buf []byte
	// Bufs, when non-nil, makes the request vectored: the buffers are read
	// or written back to back starting at Off.
	Bufs [][]byte
	// Done is called exactly once when the request completes. It runs on an
	// engine goroutine: it must be short and must not wait for other device
	// requests (it may Submit new ones).
	Done func(*Request)

	// N is the number of bytes transferred; set before Done is called. On
	// success N equals the request's length (0 for Flush).
	N int
	// Err is nil on success; otherwise it wraps a syscall.Errno (EIO, ...).
	Err error

	// Ctx is free for the caller (e.g. a back pointer to its operation).
	Ctx any
}

// Len returns the total byte length of the request's buffers.
func (r *Request) Len() int {
	if r.Bufs == nil {
		return len(r.Buf)
	}
	n := 0
	for _, b := range r.Bufs {
		n += len(b)
	}
	return n
}

// Info describes a device. All sizes are in bytes and, except Size, powers of two.
type Info struct {
	// Size is the usable size of the device.
	Size int64
	// LogicalBlockSize is the offset and length alignment direct I/O needs
	// (the device's logical sector size; statx STATX_DIOALIGN offset alignment).
	LogicalBlockSize int
	// PhysicalBlockSize is the device's preferred write unit (never torn below it).
	PhysicalBlockSize int
	// MemAlign is the alignment of buffer addresses direct I/O needs.
	MemAlign int
	// MaxIO is the largest single request the device accepts; larger
	// requests must be split by the caller.
	MaxIO int
	// Engine names the backend serving the requests ("uring", "threads", "memory", "sim").
	Engine string
	// Cached is true when the backing file could not be opened O_DIRECT and
	// goes through the kernel page cache.
	Cached bool
}

// Device is an asynchronous block device.
//
// Implementations are safe for concurrent use by many goroutines.
type Device interface {
	// Submit hands requests to the device, in order. It returns the number
	// accepted; when that is less than len(reqs) the error says why reqs[n]
	// was rejected (it wraps EINVAL for a misaligned or out-of-range request,
	// naming the required alignment; EBADF after Close) and reqs[n:] were
	// not submitted. Accepted requests complete exactly once through Done.
	Submit(reqs ...*Request) (int, error)
	// Info returns the device's properties; it never changes while open.
	Info() Info
	// Close waits for every accepted request to complete, then releases the
	// device. Later Submit calls fail with EBADF. Close is idempotent.
	Close() error
}

// ErrClosed is returned (wrapped) by Submit after Close. It matches syscall.EBADF.
var ErrClosed = &closedError{}

type closedError struct{}

func (*closedError) Error() string        { return "device is closed" }
func (*closedError) Is(target error) bool { return target == syscall.EBADF }
