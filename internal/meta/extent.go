package meta

import (
	"slices"
	"sort"

	"github.com/aiodio/aiodio/internal/format"
)

// An extent map is a []format.Extent sorted by FileBlock, with non-empty,
// non-overlapping extents; neighbours that continue each other on file and
// device with the same state are merged. These helpers are pure: they are
// used by live operations and by journal replay alike.

// span is a range of device blocks.
type span struct{ start, count int64 }

// extIndex returns the index of the first extent ending after fb.
func extIndex(ext []format.Extent, fb int64) int {
	return sort.Search(len(ext), func(i int) bool { return ext[i].FileBlock+ext[i].Count > fb })
}

// splitAt makes sure no extent straddles file block b.
func splitAt(ext []format.Extent, b int64) []format.Extent {
	i := extIndex(ext, b)
	if i == len(ext) || ext[i].FileBlock >= b {
		return ext
	}
	e := ext[i]
	left := b - e.FileBlock
	right := format.Extent{FileBlock: b, DevBlock: e.DevBlock + left, Count: e.Count - left, State: e.State}
	ext[i].Count = left
	return slices.Insert(ext, i+1, right)
}

// carve splits at both ends of [fb, end) and returns the index range of the
// extents inside it.
func carve(ext []format.Extent, fb, end int64) ([]format.Extent, int, int) {
	ext = splitAt(ext, fb)
	ext = splitAt(ext, end)
	i := extIndex(ext, fb)
	j := extIndex(ext, end)
	return ext, i, j
}

func mergeable(a, b format.Extent) bool {
	return a.State == b.State && a.FileBlock+a.Count == b.FileBlock && a.DevBlock+a.Count == b.DevBlock
}

// mergeWindow merges mergeable neighbours among ext[lo-1 : hi+1].
func mergeWindow(ext []format.Extent, lo, hi int) []format.Extent {
	lo = max(lo-1, 0)
	hi = min(hi+1, len(ext))
	if hi-lo < 2 {
		return ext
	}
	w := lo
	for k := lo + 1; k < hi; k++ {
		if mergeable(ext[w], ext[k]) {
			ext[w].Count += ext[k].Count
			continue
		}
		w++
		ext[w] = ext[k]
	}
	if w+1 == hi {
		return ext
	}
	return slices.Delete(ext, w+1, hi)
}

// extInsert maps [e.FileBlock, +e.Count) which must be a hole.
func extInsert(ext []format.Extent, e format.Extent) []format.Extent {
	i := extIndex(ext, e.FileBlock)
	ext = slices.Insert(ext, i, e)
	return mergeWindow(ext, i, i+1)
}

// isHole reports whether no block of [fb, end) is mapped.
func isHole(ext []format.Extent, fb, end int64) bool {
	i := extIndex(ext, fb)
	return i == len(ext) || ext[i].FileBlock >= end
}

// extSetState changes every mapped block of [fb, end) in state from to state
// to; it returns the number of blocks changed.
func extSetState(ext []format.Extent, fb, end int64, from, to uint8) ([]format.Extent, int64) {
	i := extIndex(ext, fb)
	found := false
	for k := i; k < len(ext) && ext[k].FileBlock < end; k++ {
		if ext[k].State == from {
			found = true
			break
		}
	}
	if !found {
		return ext, 0
	}
	ext, i, j := carve(ext, fb, end)
	var n int64
	for k := i; k < j; k++ {
		if ext[k].State == from {
			ext[k].State = to
			n += ext[k].Count
		}
	}
	return mergeWindow(ext, i, j), n
}

// extRemove unmaps every block of [fb, end) and appends the device spans
// freed to freed.
func extRemove(ext []format.Extent, fb, end int64, freed []span) ([]format.Extent, []span) {
	if isHole(ext, fb, end) {
		return ext, freed
	}
	ext, i, j := carve(ext, fb, end)
	for k := i; k < j; k++ {
		freed = append(freed, span{ext[k].DevBlock, ext[k].Count})
	}
	return slices.Delete(ext, i, j), freed
}

// extMap appends the mappings covering [fb, fb+count), holes included.
func extMap(dst []Mapping, ext []format.Extent, fb, count int64) []Mapping {
	end := fb + count
	dst, pos := appendMappings(dst, ext, fb, end)
	return appendTailHole(dst, pos, end)
}

// appendMappings appends the mappings of ext (sorted, as a file's extents or
// one leaf of them) covering [pos, end) from pos on, the holes before its
// extents included, and returns where they stop: end, or the end of the
// last extent of ext if that is before end (what follows it is left to
// the caller).
func appendMappings(dst []Mapping, ext []format.Extent, pos, end int64) ([]Mapping, int64) {
	for k := extIndex(ext, pos); k < len(ext) && pos < end; k++ {
		e := ext[k]
		if e.FileBlock > pos {
			hole := min(e.FileBlock, end) - pos
			dst = append(dst, Mapping{FileBlock: pos, Count: hole, DevBlock: -1, State: Hole})
			pos += hole
			if pos >= end {
				break
			}
		}
		skip := pos - e.FileBlock
		n := min(e.Count-skip, end-pos)
		dst = append(dst, Mapping{FileBlock: pos, Count: n, DevBlock: e.DevBlock + skip, State: State(e.State)})
		pos += n
	}
	return dst, pos
}

// appendTailHole appends the hole [pos, end) if it is not empty.
func appendTailHole(dst []Mapping, pos, end int64) []Mapping {
	if pos < end {
		dst = append(dst, Mapping{FileBlock: pos, Count: end - pos, DevBlock: -1, State: Hole})
	}
	return dst
}
