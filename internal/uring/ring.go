package uring

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring is one io_uring instance: the fd and its mapped rings. It does no
// locking; Queue adds that.
type Ring struct {
	fd       int
	params   Params
	sqMem    []byte
	cqMem    []byte // aliases sqMem with FeatSingleMmap
	sqeMem   []byte
	sqHead   *uint32
	sqTail   *uint32
	sqFlags  *uint32
	sqMask   uint32
	sqCount  uint32
	sqes     []SQE
	cqHead   *uint32
	cqTail   *uint32
	cqMask   uint32
	cqOver   *uint32
	cqes     []CQE
	sqLocal  uint32 // next tail to publish (owned by the SQ lock holder)
	released bool
}

// NewRing sets up a ring with at least entries SQ entries. flags are setup
// flags; COOP_TASKRUN is tried and dropped if the kernel refuses it, and so
// is SINGLE_ISSUER (Linux 6.0) when asked for.
func NewRing(entries uint32, flags uint32) (*Ring, error) {
	var p Params
	p.Flags = flags | SetupCoopTaskrun
	fd, err := setup(entries, &p)
	if err == unix.EINVAL && flags&SetupSingleIssuer != 0 {
		// SINGLE_ISSUER came with Linux 6.0.
		flags &^= SetupSingleIssuer
		p = Params{Flags: flags | SetupCoopTaskrun}
		fd, err = setup(entries, &p)
	}
	if err == unix.EINVAL {
		p = Params{Flags: flags}
		fd, err = setup(entries, &p)
	}
	if err != nil {
		return nil, fmt.Errorf("io_uring_setup(%d): %w", entries, err)
	}
	r := &Ring{fd: fd, params: p}
	if err := r.mmap(); err != nil {
		r.release()
		return nil, err
	}
	return r, nil
}

func (r *Ring) mmap() error {
	p := &r.params
	sqSize := int(p.SQOff.Array + p.SQEntries*4)
	cqSize := int(p.CQOff.Cqes + p.CQEntries*uint32(unsafe.Sizeof(CQE{})))
	single := p.Features&FeatSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	r.sqMem, err = unix.Mmap(r.fd, offSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("io_uring mmap SQ ring: %w", err)
	}
	if single {
		r.cqMem = r.sqMem
	} else {
		r.cqMem, err = unix.Mmap(r.fd, offCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return fmt.Errorf("io_uring mmap CQ ring: %w", err)
		}
	}
	sqeSize := int(p.SQEntries) * int(unsafe.Sizeof(SQE{}))
	r.sqeMem, err = unix.Mmap(r.fd, offSQEs, sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("io_uring mmap SQEs: %w", err)
	}
	sq := unsafe.Pointer(&r.sqMem[0])
	cq := unsafe.Pointer(&r.cqMem[0])
	r.sqHead = (*uint32)(unsafe.Add(sq, p.SQOff.Head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.SQOff.Tail))
	r.sqFlags = (*uint32)(unsafe.Add(sq, p.SQOff.Flags))
	r.sqMask = *(*uint32)(unsafe.Add(sq, p.SQOff.RingMask))
	r.sqCount = *(*uint32)(unsafe.Add(sq, p.SQOff.RingEntries))
	array := unsafe.Slice((*uint32)(unsafe.Add(sq, p.SQOff.Array)), p.SQEntries)
	for i := range array {
		array[i] = uint32(i) // SQE i always sits in array slot i
	}
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&r.sqeMem[0])), p.SQEntries)
	r.cqHead = (*uint32)(unsafe.Add(cq, p.CQOff.Head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.CQOff.Tail))
	r.cqMask = *(*uint32)(unsafe.Add(cq, p.CQOff.RingMask))
	r.cqOver = (*uint32)(unsafe.Add(cq, p.CQOff.Overflow))
	r.cqes = unsafe.Slice((*CQE)(unsafe.Add(cq, p.CQOff.Cqes)), p.CQEntries)
	r.sqLocal = atomic.LoadUint32(r.sqTail)
	return nil
}

// Params returns the parameters the kernel filled in at setup.
func (r *Ring) Params() Params { return r.params }

// Fd returns the ring's file descriptor.
func (r *Ring) Fd() int { return r.fd }

// SQE returns the next free submission entry, zeroed, or nil when the SQ is
// full. It becomes visible to the kernel at the next Publish.
func (r *Ring) SQE() *SQE {
	head := atomic.LoadUint32(r.sqHead)
	if r.sqLocal-head >= r.sqCount {
		return nil
	}
	e := &r.sqes[r.sqLocal&r.sqMask]
	*e = SQE{}
	r.sqLocal++
	return e
}

// Publish makes the SQEs handed out so far visible to the kernel.
func (r *Ring) Publish() {
	atomic.StoreUint32(r.sqTail, r.sqLocal)
}

// Unsubmitted returns how many published SQEs the kernel has not consumed.
func (r *Ring) Unsubmitted() uint32 {
	return atomic.LoadUint32(r.sqTail) - atomic.LoadUint32(r.sqHead)
}

// Reap calls fn for every available CQE and returns how many it saw.
func (r *Ring) Reap(fn func(userData uint64, res int32)) int {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	n := 0
	for ; head != tail; head++ {
		c := &r.cqes[head&r.cqMask]
		ud, res := c.UserData, c.Res
		// Free the entry before the callback so a burst of completions
		// triggered by it has room.
		atomic.StoreUint32(r.cqHead, head+1)
		fn(ud, res)
		n++
	}
	return n
}

// ReapOne calls fn for the next CQE, if any, and reports whether there was one.
func (r *Ring) ReapOne(fn func(userData uint64, res int32)) bool {
	head := atomic.LoadUint32(r.cqHead)
	if head == atomic.LoadUint32(r.cqTail) {
		return false
	}
	c := &r.cqes[head&r.cqMask]
	ud, res := c.UserData, c.Res
	atomic.StoreUint32(r.cqHead, head+1)
	fn(ud, res)
	return true
}

// CQReady reports whether completions are waiting.
func (r *Ring) CQReady() bool {
	return atomic.LoadUint32(r.cqHead) != atomic.LoadUint32(r.cqTail)
}

// Overflowed reports whether the kernel holds completions that did not fit
// in the CQ (it flushes them at the next GETEVENTS enter).
func (r *Ring) Overflowed() bool {
	return atomic.LoadUint32(r.sqFlags)&SQCQOverflow != 0
}

// Dropped returns the number of completions the kernel dropped (only
// without FeatNodrop).
func (r *Ring) Dropped() uint32 { return atomic.LoadUint32(r.cqOver) }

// Close unmaps the rings and closes the fd. No operation may be in flight.
func (r *Ring) Close() error {
	r.release()
	return nil
}

func (r *Ring) release() {
	if r.released {
		return
	}
	r.released = true
	r.sqes, r.cqes = nil, nil
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	if r.cqMem != nil && len(r.sqMem) > 0 && &r.cqMem[0] != &r.sqMem[0] {
		unix.Munmap(r.cqMem)
	}
	if r.sqMem != nil {
		unix.Munmap(r.sqMem)
	}
	r.sqMem, r.cqMem, r.sqeMem = nil, nil, nil
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}
