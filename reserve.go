package aiodio

import (
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/aiodio/aiodio/internal/meta"
)

// Space reservation for buffered writes (delayed allocation, like ext4's
// delalloc reservations). A buffered write only dirties pages; its blocks are
// allocated at writeback. So that a full volume fails the write itself with
// ENOSPC (DESIGN §2) rather than a later Sync, each buffered write reserves
// the blocks it brings into use (holes of the file not reserved yet) against
// the volume's free space, and writeback, truncate, punch, remove and the
// last close release them.
//
// The free count comes from meta.Stats (free plus pending-free blocks, which
// an allocation makes free by committing), cached for a short while and
// refreshed whenever a reservation would not fit, so a refusal is always
// checked against fresh numbers. Allocations the reservation does not see
// (direct writes, tail zeroing) make the cached count optimistic until the
// next refresh; writeback then reports ENOSPC as before.

// reserveTTL bounds how long a cached free-block count is trusted.
const reserveTTL = 50 * time.Millisecond

// reservations is the volume's ledger.
type reservations struct {
	// mu protects every field below and every inode's reserved-block set.
	mu      sync.Mutex
	total   int64     // blocks reserved, all inodes
	free    int64     // cached free + pending-free blocks
	freeAt  time.Time // when free was read
	freeSet bool
	// sets holds, per inode with at least one reserved block, the file
	// blocks it has reserved and not yet allocated; an inode whose set
	// empties is dropped, so the map never outlives the reservations.
	sets map[*inode]*blockSet
	// spare is an emptied set kept for the next inode that needs one.
	spare *blockSet
}

// span is a byte range [lo, hi) of a file.
type span struct{ lo, hi int64 }

// blockSet is a set of file blocks kept as sorted, disjoint, non-adjacent
// half-open ranges [lo, hi) (contiguous ranges are merged), so a sequential
// writer's reservation is one range whatever its length.
type blockSet struct{ r []span }

// search returns the index of the first range whose hi is > b (with adj,
// >= b: ranges ending exactly at b count as touching it).
func (s *blockSet) search(b int64, adj bool) int {
	lo, hi := 0, len(s.r)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.r[m].hi > b || (adj && s.r[m].hi == b) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// covered returns how many blocks of [lo, hi) are in s.
func (s *blockSet) covered(lo, hi int64) int64 {
	var n int64
	for i := s.search(lo, false); i < len(s.r) && s.r[i].lo < hi; i++ {
		n += min(hi, s.r[i].hi) - max(lo, s.r[i].lo)
	}
	return n
}

// add inserts [lo, hi) and returns how many blocks were not in s before.
func (s *blockSet) add(lo, hi int64) int64 {
	if hi <= lo {
		return 0
	}
	i := s.search(lo, true) // first range touching or after lo
	j := i
	nlo, nhi := lo, hi
	var had int64
	for ; j < len(s.r) && s.r[j].lo <= hi; j++ {
		had += max(0, min(hi, s.r[j].hi)-max(lo, s.r[j].lo))
		nlo, nhi = min(nlo, s.r[j].lo), max(nhi, s.r[j].hi)
	}
	switch {
	case j == i: // no range touches: insert
		s.r = append(s.r, span{})
		copy(s.r[i+1:], s.r[i:])
	case j > i+1: // several merge into r[i]
		s.r = append(s.r[:i+1], s.r[j:]...)
	}
	s.r[i] = span{nlo, nhi}
	return hi - lo - had
}

// remove deletes [lo, hi) and returns how many blocks of it were in s.
func (s *blockSet) remove(lo, hi int64) int64 {
	if hi <= lo {
		return 0
	}
	i := s.search(lo, false) // first range ending after lo
	j := i
	var n int64
	for ; j < len(s.r) && s.r[j].lo < hi; j++ {
		n += min(hi, s.r[j].hi) - max(lo, s.r[j].lo)
	}
	if j == i {
		return 0
	}
	var keep [2]span
	k := 0
	if first := s.r[i]; first.lo < lo {
		keep[k] = span{first.lo, lo}
		k++
	}
	if last := s.r[j-1]; last.hi > hi {
		keep[k] = span{hi, last.hi}
		k++
	}
	switch d := (j - i) - k; {
	case d > 0: // shrink
		copy(s.r[i+k:], s.r[j:])
		s.r = s.r[:len(s.r)-d]
	case d < 0: // one range split in two
		s.r = append(s.r, span{})
		copy(s.r[j+1:], s.r[j:])
	}
	copy(s.r[i:], keep[:k])
	return n
}

// count returns the number of blocks in s.
func (s *blockSet) count() int64 {
	var n int64
	for _, r := range s.r {
		n += r.hi - r.lo
	}
	return n
}

// reserve reserves, all or nothing, the unallocated, unreserved blocks of
// the spans for in, or fails with ENOSPC.
//
// Preconditions: the inode lock is held exclusive.
func (in *inode) reserve(spans ...span) error {
	v := in.v
	bs := v.bs
	mp := in.getMaps()
	defer in.mapBuf.Put(mp)
	maps := (*mp)[:0]
	for _, sp := range spans {
		if sp.hi <= sp.lo {
			continue
		}
		fb, lb := sp.lo/bs, (sp.hi+bs-1)/bs
		var err error
		maps, err = v.meta.Map(maps, in.ino, fb, lb-fb)
		if err != nil {
			*mp = maps
			return err
		}
	}
	*mp = maps
	r := &v.resv
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.sets[in]
	// need counts, per hole mapping, the blocks not reserved yet (the
	// spans' overlap, if any, counted once per span, as a per-block check
	// before inserting would).
	var need int64
	for _, m := range maps {
		if m.State != meta.Hole {
			continue
		}
		need += m.Count
		if set != nil {
			need -= set.covered(m.FileBlock, m.FileBlock+m.Count)
		}
	}
	if need == 0 {
		return nil
	}
	if !r.freeSet || time.Since(r.freeAt) > reserveTTL || r.total+need > r.free {
		s := v.meta.Stats()
		r.free, r.freeAt, r.freeSet = s.FreeBlocks+s.PendingBlocks, time.Now(), true
	}
	if r.total+need > r.free {
		return fmt.Errorf("no room for %d more blocks (%d free, %d reserved by cached writes): %w",
			need, r.free, r.total, syscall.ENOSPC)
	}
	if set == nil {
		if set = r.spare; set != nil {
			r.spare = nil
		} else {
			set = &blockSet{}
		}
		if r.sets == nil {
			r.sets = make(map[*inode]*blockSet)
		}
		r.sets[in] = set
	}
	need = 0
	for _, m := range maps {
		if m.State == meta.Hole {
			need += set.add(m.FileBlock, m.FileBlock+m.Count) // the spans may overlap
		}
	}
	r.total += need
	return nil
}

// unreserve releases in's reservations of blocks [fb, lb); allocated says
// the blocks were just allocated (the cached free count drops by as many).
func (in *inode) unreserve(fb, lb int64, allocated bool) {
	r := &in.v.resv
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.sets[in]
	if set == nil {
		return
	}
	n := set.remove(fb, lb)
	if len(set.r) == 0 {
		delete(r.sets, in)
		if r.spare == nil {
			r.spare = set
		}
	}
	r.total -= n
	if allocated {
		r.free -= n
	}
}

// unreserveAll releases every reservation of in.
func (in *inode) unreserveAll() { in.unreserve(0, 1<<62, false) }
