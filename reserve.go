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
	// mu protects every field below and every inode's resv set.
	mu      sync.Mutex
	total   int64     // blocks reserved, all inodes
	free    int64     // cached free + pending-free blocks
	freeAt  time.Time // when free was read
	freeSet bool
}

// span is a byte range [lo, hi) of a file.
type span struct{ lo, hi int64 }

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
	var need int64
	seen := func(b int64) bool { _, ok := in.resv[b]; return ok }
	var fresh []int64
	for _, m := range maps {
		if m.State != meta.Hole {
			continue
		}
		for b := m.FileBlock; b < m.FileBlock+m.Count; b++ {
			if !seen(b) {
				need++
				fresh = append(fresh, b)
			}
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
	if in.resv == nil {
		in.resv = make(map[int64]struct{})
	}
	need = 0
	for _, b := range fresh {
		if !seen(b) { // the spans may overlap
			in.resv[b] = struct{}{}
			need++
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
	if len(in.resv) == 0 {
		return
	}
	var n int64
	if lb-fb <= int64(len(in.resv)) {
		for b := fb; b < lb; b++ {
			if _, ok := in.resv[b]; ok {
				delete(in.resv, b)
				n++
			}
		}
	} else {
		for b := range in.resv {
			if b >= fb && b < lb {
				delete(in.resv, b)
				n++
			}
		}
	}
	r.total -= n
	if allocated {
		r.free -= n
	}
}

// unreserveAll releases every reservation of in.
func (in *inode) unreserveAll() { in.unreserve(0, 1<<62, false) }
