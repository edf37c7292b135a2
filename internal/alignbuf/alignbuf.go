package alignbuf

import (
	"math/bits"
	"sync"
	"unsafe"
)

// PageSize is the alignment Alloc guarantees. It is at least the memory
// alignment any Linux direct-I/O path asks for (512 or 4096).
const PageSize = 4096

// Alloc returns a zeroed slice of n bytes whose first byte is PageSize-aligned.
// The memory is ordinary Go heap memory, released by the GC when unreferenced.
// Alloc(0) returns an empty, non-nil slice; a negative n returns nil.
func Alloc(n int) []byte {
	if n < 0 {
		return nil
	}
	if n == 0 {
		return make([]byte, 0)
	}
	raw := make([]byte, n+PageSize-1)
	off := 0
	if r := int(uintptr(unsafe.Pointer(&raw[0])) & (PageSize - 1)); r != 0 {
		off = PageSize - r
	}
	return raw[off : off+n : off+n]
}

// IsAligned reports whether b starts at an address that is a multiple of
// align. An empty slice is aligned. align must be a power of two; other values
// (including 0 and negatives) report false unless b is empty.
func IsAligned(b []byte, align int) bool {
	if len(b) == 0 {
		return true
	}
	if align <= 0 || align&(align-1) != 0 {
		return false
	}
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))&uintptr(align-1) == 0
}

// numClasses covers size classes 4 KiB (class 0) up to 4 KiB<<(numClasses-1) = 64 MiB.
const numClasses = 15

// Pool hands out page-aligned buffers by power-of-two size class (4 KiB to
// 64 MiB); larger requests are served by Alloc and dropped on Put. The zero
// value is ready to use. A Pool is safe for concurrent use.
type Pool struct {
	classes [numClasses]sync.Pool
}

func class(n int) int {
	if n <= PageSize {
		return 0
	}
	return bits.Len(uint((n - 1) / PageSize))
}

// Get returns a page-aligned slice of len n (capacity the size class). Its
// contents are undefined (a recycled buffer is not zeroed). n <= 0 returns an
// empty slice.
func (p *Pool) Get(n int) []byte {
	if n <= 0 {
		return []byte{}
	}
	c := class(n)
	if c >= numClasses {
		return Alloc(n)
	}
	if v := p.classes[c].Get(); v != nil {
		b := v.(*[]byte)
		buf := (*b)[:n]
		boxPool.Put(b)
		return buf
	}
	size := PageSize << c
	return Alloc(size)[:n]
}

// boxPool recycles the *[]byte boxes that sync.Pool needs, so Put does not
// allocate in the steady state.
var boxPool = sync.Pool{New: func() any { return new([]byte) }}

// Put returns b to the pool for reuse. b must not be used afterwards. Buffers
// not obtained from Get (capacity not a size class, or misaligned) are ignored.
func (p *Pool) Put(b []byte) {
	c := cap(b)
	if c < PageSize || c&(c-1) != 0 {
		return
	}
	k := class(c)
	if k >= numClasses || PageSize<<k != c {
		return
	}
	b = b[:c]
	if !IsAligned(b, PageSize) {
		return
	}
	box := boxPool.Get().(*[]byte)
	*box = b
	p.classes[k].Put(box)
}
