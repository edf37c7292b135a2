package pagecache

// pageIndex maps page indexes to pages. It is a map of 64-page chunks rather
// than a map of pages: a sequential writer or reader touches one map entry
// per 256 KiB instead of one per page, and pages coming and going (writes,
// eviction) churn far fewer map entries. Not safe for concurrent writers;
// File.mu protects the File's indexes (readers may get concurrently).
type pageIndex struct {
	m     map[int64]*pageChunk
	n     int          // pages in the index
	spare []*pageChunk // empty chunks kept for reuse (a few)
	// last is the chunk of key lastKey (the one set last), which spares
	// a sequential reader or writer most map lookups. Only set and del
	// change it (exclusive access), so concurrent gets may read it.
	lastKey int64
	last    *pageChunk
}

const (
	idxChunkShift = 6
	idxChunkPages = 1 << idxChunkShift
	idxChunkMask  = idxChunkPages - 1
	maxSpareChunk = 8
)

type pageChunk struct {
	pg [idxChunkPages]*page
	n  int // non-nil entries of pg
}

func newPageIndex() pageIndex { return pageIndex{m: make(map[int64]*pageChunk), lastKey: -1} }

func (x *pageIndex) len() int { return x.n }

func (x *pageIndex) get(idx int64) *page {
	key := idx >> idxChunkShift
	if key == x.lastKey {
		return x.last.pg[idx&idxChunkMask]
	}
	if c := x.m[key]; c != nil {
		return c.pg[idx&idxChunkMask]
	}
	return nil
}

// set stores pg (non-nil) at idx.
func (x *pageIndex) set(idx int64, pg *page) {
	key := idx >> idxChunkShift
	c := x.last
	if key != x.lastKey {
		c = x.m[key]
	}
	if c == nil {
		if k := len(x.spare); k > 0 {
			c = x.spare[k-1]
			x.spare = x.spare[:k-1]
		} else {
			c = new(pageChunk)
		}
		x.m[key] = c
	}
	x.lastKey, x.last = key, c
	if c.pg[idx&idxChunkMask] == nil {
		c.n++
		x.n++
	}
	c.pg[idx&idxChunkMask] = pg
}

func (x *pageIndex) del(idx int64) {
	key := idx >> idxChunkShift
	c := x.last
	if key != x.lastKey {
		c = x.m[key]
	}
	if c == nil || c.pg[idx&idxChunkMask] == nil {
		return
	}
	c.pg[idx&idxChunkMask] = nil
	c.n--
	x.n--
	if c.n == 0 {
		if key == x.lastKey {
			x.lastKey, x.last = -1, nil
		}
		delete(x.m, key)
		if len(x.spare) < maxSpareChunk {
			x.spare = append(x.spare, c)
		}
	}
}

// each calls fn for every page in [first, last], in no particular order
// across chunks; fn may delete the page it is given (and only that one).
func (x *pageIndex) each(first, last int64, fn func(*page)) {
	if first > last {
		return
	}
	fk, lk := first>>idxChunkShift, last>>idxChunkShift
	if lk-fk < int64(len(x.m)) {
		for key := fk; key <= lk; key++ {
			if c := x.m[key]; c != nil {
				x.eachIn(c, key, first, last, fn)
			}
		}
		return
	}
	for key, c := range x.m {
		if key >= fk && key <= lk {
			x.eachIn(c, key, first, last, fn)
		}
	}
}

func (x *pageIndex) eachIn(c *pageChunk, key, first, last int64, fn func(*page)) {
	base := key << idxChunkShift
	for i := range c.pg {
		if pg := c.pg[i]; pg != nil && base+int64(i) >= first && base+int64(i) <= last {
			fn(pg)
		}
	}
}

// pageSlab is how many page structs a File allocates at once.
const pageSlab = 64

// newPageLocked returns a new page struct, carved from a slab (f.mu held
// exclusively). Structs are never reused: a slab is freed by the GC when
// none of its pages is referenced any more (eviction may still hold a
// pointer to a page dropped meanwhile).
func (f *File) newPageLocked(idx int64, data []byte, flags uint8) *page {
	if len(f.slab) == 0 {
		f.slab = make([]page, pageSlab)
	}
	pg := &f.slab[0]
	f.slab = f.slab[1:]
	pg.f, pg.idx, pg.data, pg.flags = f, idx, data, flags
	return pg
}
