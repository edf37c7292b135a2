package meta

import (
	"slices"
	"sort"
)

// freeSpace is the allocator: the free device blocks of the data area as a
// sorted slice of disjoint, non-adjacent spans, and their total.
//
// Allocation prefers, in order: the free span holding the goal block (taking
// from the goal on), the first span at or after the goal that fits the whole
// request, the first span anywhere that fits it, and finally the largest
// span (the request is then served in several pieces). Searching for a fit is
// a linear scan: there is no by-size index yet.
type freeSpace struct {
	spans []span
	total int64
}

func (f *freeSpace) index(b int64) int {
	return sort.Search(len(f.spans), func(i int) bool { return f.spans[i].start+f.spans[i].count > b })
}

// take allocates up to n blocks (at least 1) near goal and returns them.
// REQUIRES: f.total > 0, n > 0.
func (f *freeSpace) take(goal, n int64) span {
	i := f.index(goal)
	if i < len(f.spans) && f.spans[i].start <= goal {
		s := f.spans[i]
		got := min(n, s.start+s.count-goal)
		f.remove(span{goal, got})
		return span{goal, got}
	}
	pick := -1
	for k := i; k < len(f.spans); k++ {
		if f.spans[k].count >= n {
			pick = k
			break
		}
	}
	if pick < 0 {
		for k := 0; k < i && k < len(f.spans); k++ {
			if f.spans[k].count >= n {
				pick = k
				break
			}
		}
	}
	if pick < 0 {
		pick = 0
		for k := range f.spans {
			if f.spans[k].count > f.spans[pick].count {
				pick = k
			}
		}
	}
	s := span{f.spans[pick].start, min(n, f.spans[pick].count)}
	f.remove(s)
	return s
}

// remove takes s, which must be free, out of the free spans.
func (f *freeSpace) remove(s span) {
	i := f.index(s.start)
	if i == len(f.spans) || f.spans[i].start > s.start || f.spans[i].start+f.spans[i].count < s.start+s.count {
		panic("meta: allocator removing blocks that are not free")
	}
	cur := f.spans[i]
	f.total -= s.count
	left := span{cur.start, s.start - cur.start}
	right := span{s.start + s.count, cur.start + cur.count - s.start - s.count}
	switch {
	case left.count == 0 && right.count == 0:
		f.spans = slices.Delete(f.spans, i, i+1)
	case left.count == 0:
		f.spans[i] = right
	case right.count == 0:
		f.spans[i] = left
	default:
		f.spans[i] = left
		f.spans = slices.Insert(f.spans, i+1, right)
	}
}

// add returns s to the free spans, merging with neighbours.
// REQUIRES: no block of s is free.
func (f *freeSpace) add(s span) {
	if s.count <= 0 {
		return
	}
	i := f.index(s.start)
	if i < len(f.spans) && f.spans[i].start < s.start+s.count {
		panic("meta: allocator freeing blocks that are already free")
	}
	f.total += s.count
	if i > 0 && f.spans[i-1].start+f.spans[i-1].count == s.start {
		f.spans[i-1].count += s.count
		if i < len(f.spans) && f.spans[i].start == s.start+s.count {
			f.spans[i-1].count += f.spans[i].count
			f.spans = slices.Delete(f.spans, i, i+1)
		}
		return
	}
	if i < len(f.spans) && f.spans[i].start == s.start+s.count {
		f.spans[i].start = s.start
		f.spans[i].count += s.count
		return
	}
	f.spans = slices.Insert(f.spans, i, s)
}

// isFree reports whether every block of s is free.
func (f *freeSpace) isFree(s span) bool {
	i := f.index(s.start)
	return i < len(f.spans) && f.spans[i].start <= s.start && f.spans[i].start+f.spans[i].count >= s.start+s.count
}

// complement builds the free spans of [lo, hi) minus owned, which must be
// sorted by start. It reports the first overlap or out-of-range span found.
func complement(lo, hi int64, owned []span) (freeSpace, []string) {
	var f freeSpace
	var bad []string
	pos := lo
	for _, s := range owned {
		if s.start < lo || s.count <= 0 || s.start > hi-s.count {
			bad = append(bad, sprintf("device blocks [%d, +%d) outside the data area [%d, %d)", s.start, s.count, lo, hi))
			continue
		}
		if s.start < pos {
			bad = append(bad, sprintf("device blocks [%d, +%d) owned twice", s.start, min(s.count, pos-s.start)))
			pos = max(pos, s.start+s.count)
			continue
		}
		if s.start > pos {
			f.spans = append(f.spans, span{pos, s.start - pos})
			f.total += s.start - pos
		}
		pos = s.start + s.count
	}
	if pos < hi {
		f.spans = append(f.spans, span{pos, hi - pos})
		f.total += hi - pos
	}
	return f, bad
}
