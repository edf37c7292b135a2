package device

import (
	"fmt"
	"sort"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// BufferRegistrar is implemented by devices that can register buffers with
// the kernel ahead of time (io_uring fixed buffers): a request whose Buf
// lies inside a registered buffer then skips the per-I/O page pinning.
// Other requests work as before. A device accepts one registration for its
// lifetime (a second fails with EBUSY); the buffers stay registered, and
// referenced by the device, until Close.
type BufferRegistrar interface {
	RegisterBuffers(bufs [][]byte) error
}

// fixedTable maps address ranges to registered buffer indexes; immutable
// once published.
type fixedTable struct {
	bufs  [][]byte // keeps the registered memory referenced
	start []uintptr
	end   []uintptr
	index []uint16
}

// find returns the index of the registered buffer holding [addr, addr+n).
func (t *fixedTable) find(addr uintptr, n int) (uint16, bool) {
	i := sort.Search(len(t.start), func(i int) bool { return t.start[i] > addr }) - 1
	if i < 0 || addr+uintptr(n) > t.end[i] {
		return 0, false
	}
	return t.index[i], true
}

func newFixedTable(bufs [][]byte) (*fixedTable, error) {
	if len(bufs) == 0 || len(bufs) > 1<<14 {
		return nil, fmt.Errorf("device: register buffers: %d buffers, want 1 to 16384: %w", len(bufs), syscall.EINVAL)
	}
	t := &fixedTable{bufs: bufs}
	order := make([]int, len(bufs))
	for i, b := range bufs {
		if len(b) == 0 || len(b) > 1<<30 {
			return nil, fmt.Errorf("device: register buffers: buffer %d has %d bytes, want 1 to 1 GiB: %w", i, len(b), syscall.EINVAL)
		}
		order[i] = i
	}
	addr := func(i int) uintptr { return uintptr(unsafe.Pointer(&bufs[i][0])) }
	sort.Slice(order, func(a, b int) bool { return addr(order[a]) < addr(order[b]) })
	for k, i := range order {
		s := addr(i)
		if k > 0 && s < t.end[k-1] {
			return nil, fmt.Errorf("device: register buffers: buffer %d overlaps another: %w", i, syscall.EINVAL)
		}
		t.start = append(t.start, s)
		t.end = append(t.end, s+uintptr(len(bufs[i])))
		t.index = append(t.index, uint16(i))
	}
	return t, nil
}

// fixedSet is the per-device registration state.
type fixedSet struct {
	table atomic.Pointer[fixedTable]
	once  atomic.Bool
}
