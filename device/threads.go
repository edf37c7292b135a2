package device

import (
	"fmt"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// threadDev serves requests with preadv/pwritev/fdatasync on a bounded pool
// of goroutines (each blocks an OS thread in the syscall).
type threadDev struct {
	info      Info
	fd        int
	queue     *queue
	closeOnce sync.Once
}

func newThreadDev(fd int, info Info, depth int) *threadDev {
	if depth <= 0 {
		depth = 32 // enough for the qd32 workloads
	}
	depth = min(depth, 64)
	info.Engine = "threads"
	d := &threadDev{info: info, fd: fd, queue: newQueue(depth)}
	d.queue.start(d.serve)
	return d
}

func (d *threadDev) Info() Info { return d.info }

func (d *threadDev) Submit(reqs ...*Request) (int, error) {
	for i, r := range reqs {
		if err := Check(d.info, r); err != nil {
			return i, err
		}
		if !d.queue.push(r) {
			return i, fmt.Errorf("device: threads: submit: %w", ErrClosed)
		}
	}
	return len(reqs), nil
}

func (d *threadDev) Close() error {
	d.queue.close()
	d.closeOnce.Do(func() { unix.Close(d.fd) })
	return nil
}

const iovBatch = 8

func (d *threadDev) serve(r *Request) {
	r.N, r.Err = 0, nil
	if r.Kind == Flush {
		for {
			err := unix.Fdatasync(d.fd)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				r.Err = fmt.Errorf("device: flush: fdatasync: %w", err)
			}
			return
		}
	}
	total := r.Len()
	for r.N < total {
		var n int
		var errno syscall.Errno
		if r.Bufs == nil {
			n, errno = rw(d.fd, r.Kind, r.Buf[r.N:], r.Off+int64(r.N))
		} else {
			n, errno = rwv(d.fd, r, r.N)
		}
		switch {
		case errno == syscall.EINTR || errno == syscall.EAGAIN:
			continue
		case errno != 0:
			r.Err = fmt.Errorf("device: %v at offset %d length %d: %w", r.Kind, r.Off+int64(r.N), total-r.N, errno)
			return
		case n == 0:
			r.Err = fmt.Errorf("device: %v at offset %d: unexpected end of file: %w", r.Kind, r.Off+int64(r.N), syscall.EIO)
			return
		}
		r.N += n
	}
}

func rw(fd int, k Kind, b []byte, off int64) (int, syscall.Errno) {
	nr := uintptr(unix.SYS_PREAD64)
	if k == Write {
		nr = unix.SYS_PWRITE64
	}
	n, _, e := unix.Syscall6(nr, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(off), 0, 0)
	return int(n), e
}

// rwv transfers up to iovBatch buffers of r, starting done bytes in.
func rwv(fd int, r *Request, done int) (int, syscall.Errno) {
	var iov [iovBatch]unix.Iovec
	cnt := 0
	skip := done
	for _, b := range r.Bufs {
		if skip >= len(b) {
			skip -= len(b)
			continue
		}
		b = b[skip:]
		skip = 0
		iov[cnt].Base = &b[0]
		iov[cnt].SetLen(len(b))
		cnt++
		if cnt == iovBatch {
			break
		}
	}
	nr := uintptr(unix.SYS_PREADV)
	if r.Kind == Write {
		nr = unix.SYS_PWRITEV
	}
	off := r.Off + int64(done)
	n, _, e := unix.Syscall6(nr, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(cnt), uintptr(off), uintptr(off>>32>>32), 0)
	return int(n), e
}
