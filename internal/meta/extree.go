package meta

import (
	"slices"
	"sort"

	"github.com/aiodio/aiodio/internal/format"
)

// leafDefault is the number of extents a leaf of an extent tree holds
// before it is split (in halves).
const leafDefault = 256

// extTree is a file's extent map: the sorted extents of extent.go cut into
// ordered leaves of at most leafMax extents, so an update touches one or a
// few leaves (a few KiB) however many extents the file has. Every leaf is
// non-empty and has its own backing array. Updates run the flat helpers of
// extent.go on a window of leaves: the leaves holding the range plus the
// extents on either side (for merging), then cut the result into leaves again.
type extTree struct {
	leaves  [][]format.Extent
	n       int // extents
	leafMax int // 0: leafDefault (tests use tiny leaves)
}

func (t *extTree) max() int {
	if t.leafMax > 0 {
		return t.leafMax
	}
	return leafDefault
}

// leafIdx returns the first leaf whose last extent ends after fb.
func (t *extTree) leafIdx(fb int64) int {
	return sort.Search(len(t.leaves), func(i int) bool {
		l := t.leaves[i]
		e := l[len(l)-1]
		return e.FileBlock+e.Count > fb
	})
}

// modify applies op to the extents of the window around [fb, end).
func (t *extTree) modify(fb, end int64, op func([]format.Extent) []format.Extent) {
	lo, hi := 0, 0
	if nl := len(t.leaves); nl > 0 {
		li := t.leafIdx(fb)
		lo = li
		if li == nl || (li > 0 && extIndex(t.leaves[li], fb) == 0) {
			lo = li - 1
		}
		hi = max(min(t.leafIdx(end)+1, nl), lo+1)
	}
	var win []format.Extent
	switch hi - lo {
	case 0:
	case 1:
		win = t.leaves[lo]
	default:
		total := 0
		for _, l := range t.leaves[lo:hi] {
			total += len(l)
		}
		win = make([]format.Extent, 0, total+2)
		for _, l := range t.leaves[lo:hi] {
			win = append(win, l...)
		}
	}
	before := len(win)
	win = op(win)
	t.n += len(win) - before
	t.leaves = slices.Replace(t.leaves, lo, hi, t.cut(win)...)
}

// cut splits sorted extents into leaves (none when empty).
func (t *extTree) cut(ext []format.Extent) [][]format.Extent {
	m := t.max()
	switch {
	case len(ext) == 0:
		return nil
	case len(ext) <= m:
		return [][]format.Extent{ext}
	}
	k := (len(ext) + m/2 - 1) / (m / 2)
	out := make([][]format.Extent, 0, k)
	for i := 0; i < k; i++ {
		a, b := i*len(ext)/k, (i+1)*len(ext)/k
		out = append(out, slices.Clone(ext[a:b]))
	}
	return out
}

// fromFlat builds a tree over sorted extents (taking ownership of ext).
func fromFlat(ext []format.Extent) extTree {
	var t extTree
	m := t.max() / 2
	for a := 0; a < len(ext); a += m {
		b := min(a+m, len(ext))
		t.leaves = append(t.leaves, ext[a:b:b])
	}
	t.n = len(ext)
	return t
}

// all calls fn for every extent in order.
func (t *extTree) all(fn func(format.Extent)) {
	for _, l := range t.leaves {
		for _, e := range l {
			fn(e)
		}
	}
}

// flat appends every extent, in order, to dst.
func (t *extTree) flat(dst []format.Extent) []format.Extent {
	for _, l := range t.leaves {
		dst = append(dst, l...)
	}
	return dst
}

// isHole reports whether no block of [fb, end) is mapped.
func (t *extTree) isHole(fb, end int64) bool {
	li := t.leafIdx(fb)
	if li == len(t.leaves) {
		return true
	}
	l := t.leaves[li]
	return l[extIndex(l, fb)].FileBlock >= end
}

// prev returns the last extent that ends at or before fb.
func (t *extTree) prev(fb int64) (format.Extent, bool) {
	li := t.leafIdx(fb)
	if li < len(t.leaves) {
		if k := extIndex(t.leaves[li], fb); k > 0 {
			return t.leaves[li][k-1], true
		}
	}
	if li > 0 {
		l := t.leaves[li-1]
		return l[len(l)-1], true
	}
	return format.Extent{}, false
}

// mapRange appends the mappings covering [fb, fb+count), holes included.
func (t *extTree) mapRange(dst []Mapping, fb, count int64) []Mapping {
	end := fb + count
	pos := fb
	for li := t.leafIdx(fb); li < len(t.leaves) && pos < end; li++ {
		dst, pos = appendMappings(dst, t.leaves[li], pos, end)
	}
	return appendTailHole(dst, pos, end)
}
