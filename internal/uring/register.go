package uring

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// io_uring_register opcodes.
const (
	registerBuffers   = 0
	unregisterBuffers = 1
)

// RegisterBuffers registers bufs as fixed buffers 0..len(bufs)-1 for
// OpReadFixed/OpWriteFixed (the kernel pins them once instead of per I/O).
// The caller keeps bufs referenced until the ring is closed or
// UnregisterBuffers returns. Safe to call while other operations run.
func (q *Queue) RegisterBuffers(bufs [][]byte) error {
	if len(bufs) == 0 {
		return fmt.Errorf("io_uring_register buffers: no buffers: %w", unix.EINVAL)
	}
	iov := make([]unix.Iovec, len(bufs))
	for i, b := range bufs {
		if len(b) == 0 {
			return fmt.Errorf("io_uring_register buffers: buffer %d is empty: %w", i, unix.EINVAL)
		}
		iov[i].Base = &b[0]
		iov[i].SetLen(len(b))
	}
	return q.onIssuer(func() error {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(q.ring.fd), registerBuffers,
			uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)), 0, 0)
		if errno != 0 {
			return fmt.Errorf("io_uring_register buffers (%d): %w", len(bufs), errno)
		}
		return nil
	})
}

// UnregisterBuffers drops the registered buffers. No fixed-buffer operation
// may be in flight.
func (q *Queue) UnregisterBuffers() error {
	return q.onIssuer(func() error {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(q.ring.fd), unregisterBuffers, 0, 0, 0, 0)
		if errno != 0 {
			return fmt.Errorf("io_uring_unregister buffers: %w", errno)
		}
		return nil
	})
}
