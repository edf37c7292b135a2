package pagecache

import (
	"fmt"
	"sync"
	"syscall"

	"github.com/aiodio/aiodio/internal/alignbuf"
)

// memBacking is an in-memory Backing that plays the layer above: disk holds
// what WritePages put on "the device"; size is the logical size, set by the
// test as the root package would. ReadPages returns the raw disk bytes (no
// zeroing past size inside a page), so the cache alone must keep tails zero.
type memBacking struct {
	mu        sync.Mutex // protects everything below
	size      int64
	disk      []byte
	failWrite bool
	failErrno syscall.Errno // errno of failed writes; 0 means EIO
	writes    int
	reads     int
	// gate, when non-nil, makes WritePages signal entered and wait for gate.
	gate    chan struct{}
	entered chan struct{}
	bad     error // first contract violation seen
}

func (m *memBacking) Size() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size
}

func (m *memBacking) check(off int64, p []byte) error {
	if off%PageSize != 0 || len(p)%PageSize != 0 || len(p) == 0 || len(p) > maxRunPages*PageSize ||
		!alignbuf.IsAligned(p, PageSize) {
		err := fmt.Errorf("misaligned or oversized call off=%d len=%d: %w", off, len(p), syscall.EINVAL)
		if m.bad == nil {
			m.bad = err
		}
		return err
	}
	return nil
}

func (m *memBacking) ReadPages(off int64, p []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(off, p); err != nil {
		return err
	}
	m.reads++
	clear(p)
	if off < int64(len(m.disk)) {
		copy(p, m.disk[off:])
	}
	return nil
}

func (m *memBacking) WritePages(off int64, p []byte) error {
	m.mu.Lock()
	if err := m.check(off, p); err != nil {
		m.mu.Unlock()
		return err
	}
	gate, entered := m.gate, m.entered
	m.mu.Unlock()
	if gate != nil {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-gate
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failWrite {
		errno := m.failErrno
		if errno == 0 {
			errno = syscall.EIO
		}
		return fmt.Errorf("mem: write at %d: %w", off, errno)
	}
	m.writes++
	if end := off + int64(len(p)); end > int64(len(m.disk)) {
		m.disk = append(m.disk, make([]byte, end-int64(len(m.disk)))...)
	}
	copy(m.disk[off:], p)
	return nil
}

func (m *memBacking) setSize(n int64) {
	m.mu.Lock()
	m.size = n
	m.mu.Unlock()
}

// truncate plays meta.Truncate: blocks past the new size are freed (the
// partial last block keeps its old bytes on disk).
func (m *memBacking) truncate(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.size = n
	keep := (n + PageSize - 1) &^ (PageSize - 1)
	if keep < int64(len(m.disk)) {
		m.disk = m.disk[:keep]
	}
}

// punch plays meta.Punch: whole blocks inside the range are freed.
func (m *memBacking) punch(off, n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	from := (off + PageSize - 1) &^ (PageSize - 1)
	to := (off + n) &^ (PageSize - 1)
	for i := from; i < to && i < int64(len(m.disk)); i++ {
		m.disk[i] = 0
	}
}

// diskAt returns n bytes of disk at off (zeros past its end).
func (m *memBacking) diskAt(off, n int64) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]byte, n)
	if off < int64(len(m.disk)) {
		copy(out, m.disk[off:])
	}
	return out
}

func (m *memBacking) setFail(v bool) {
	m.mu.Lock()
	m.failWrite = v
	m.mu.Unlock()
}
