package check

import (
	"slices"
	"sort"
)

// cands is the set of values a cell may hold: write generations, and 0 for
// "zero". Sorted, without duplicates.
type cands []uint32

var zeroCands = cands{0}

func (c cands) has(g uint32) bool {
	for _, x := range c {
		if x == g {
			return true
		}
	}
	return false
}

func (c cands) equal(d cands) bool { return slices.Equal(c, d) }

// union returns the sorted union of c and d (a new slice).
func union(c, d cands) cands {
	out := make(cands, 0, len(c)+len(d))
	out = append(out, c...)
	out = append(out, d...)
	slices.Sort(out)
	return slices.Compact(out)
}

// seg is one range of a file with the same candidate set.
type seg struct {
	off, end int64
	c        cands
}

// extmap maps file byte ranges (multiples of CellSize) to candidate sets.
// Ranges without a segment hold zeroCands. Segments are sorted, disjoint and
// never hold exactly zeroCands. Not safe for concurrent mutation: the
// stress run mutates it only between rounds, while nothing reads it.
type extmap struct {
	segs []seg
}

// first returns the index of the first segment ending after off.
func (m *extmap) first(off int64) int {
	return sort.Search(len(m.segs), func(i int) bool { return m.segs[i].end > off })
}

// assign sets [off, end) to c.
func (m *extmap) assign(off, end int64, c cands) {
	if off >= end {
		return
	}
	i := m.first(off)
	j := i
	var left, right []seg
	for j < len(m.segs) && m.segs[j].off < end {
		s := m.segs[j]
		if s.off < off {
			left = append(left, seg{s.off, off, s.c})
		}
		if s.end > end {
			right = append(right, seg{end, s.end, s.c})
		}
		j++
	}
	repl := make([]seg, 0, 3)
	repl = append(repl, left...)
	if !c.equal(zeroCands) {
		repl = append(repl, seg{off, end, c})
	}
	repl = append(repl, right...)
	m.segs = slices.Replace(m.segs, i, j, repl...)
	// Merge equal neighbours around the change.
	lo, hi := max(i-1, 0), min(i+len(repl)+1, len(m.segs))
	for k := lo; k+1 < hi && k+1 < len(m.segs); {
		a, b := m.segs[k], m.segs[k+1]
		if a.end == b.off && a.c.equal(b.c) {
			m.segs[k].end = b.end
			m.segs = slices.Delete(m.segs, k+1, k+2)
			hi--
			continue
		}
		k++
	}
}

// pieces calls fn for consecutive ranges covering [off, end), each with
// one candidate set.
func (m *extmap) pieces(off, end int64, fn func(off, end int64, c cands)) {
	pos := off
	for i := m.first(off); i < len(m.segs) && pos < end; i++ {
		s := m.segs[i]
		if s.off >= end {
			break
		}
		if s.off > pos {
			fn(pos, s.off, zeroCands)
			pos = s.off
		}
		e := min(s.end, end)
		fn(pos, e, s.c)
		pos = e
	}
	if pos < end {
		fn(pos, end, zeroCands)
	}
}

// reset empties the map (every cell zero).
func (m *extmap) reset() { m.segs = m.segs[:0] }
