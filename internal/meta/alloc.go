package meta

// freeSpace is the allocator: the free device blocks of the data area as
// disjoint, non-adjacent spans, kept in a treap ordered by start (the
// by-offset index) whose nodes also carry the largest span count of their
// subtree (the by-size index). Every operation is O(log n) expected in the
// number of free spans, so a badly fragmented volume still allocates fast.
//
// Allocation prefers, in order: the free span holding the goal block (taking
// from the goal on), the first span at or after the goal that fits the whole
// request, the first span anywhere that fits it, and finally the largest
// span (the request is then served in several pieces).
type freeSpace struct {
	root  *fnode
	total int64  // free blocks
	n     int    // free spans
	seed  uint64 // xorshift state for node priorities
}

type fnode struct {
	s    span
	prio uint64
	max  int64 // largest count in this subtree
	l, r *fnode
}

func (x *fnode) fix() {
	m := x.s.count
	if x.l != nil && x.l.max > m {
		m = x.l.max
	}
	if x.r != nil && x.r.max > m {
		m = x.r.max
	}
	x.max = m
}

func (f *freeSpace) prio() uint64 {
	if f.seed == 0 {
		f.seed = 0x9e3779b97f4a7c15
	}
	f.seed ^= f.seed << 13
	f.seed ^= f.seed >> 7
	f.seed ^= f.seed << 17
	return f.seed
}

// split divides t into the spans starting before key and the rest.
func split(t *fnode, key int64) (*fnode, *fnode) {
	if t == nil {
		return nil, nil
	}
	if t.s.start < key {
		a, b := split(t.r, key)
		t.r = a
		t.fix()
		return t, b
	}
	a, b := split(t.l, key)
	t.l = b
	t.fix()
	return a, t
}

// join concatenates a and b, every start in a below every start in b.
func join(a, b *fnode) *fnode {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.prio > b.prio:
		a.r = join(a.r, b)
		a.fix()
		return a
	}
	b.l = join(a, b.l)
	b.fix()
	return b
}

func (f *freeSpace) insert(s span) {
	x := &fnode{s: s, prio: f.prio(), max: s.count}
	a, b := split(f.root, s.start)
	f.root = join(join(a, x), b)
	f.total += s.count
	f.n++
}

// delete removes the span starting at start, which must exist.
func (f *freeSpace) delete(s span) {
	a, b := split(f.root, s.start)
	_, c := split(b, s.start+1)
	f.root = join(a, c)
	f.total -= s.count
	f.n--
}

// floor returns the span with the largest start <= b, if any.
func (f *freeSpace) floor(b int64) (span, bool) {
	var best *fnode
	for x := f.root; x != nil; {
		if x.s.start <= b {
			best, x = x, x.r
		} else {
			x = x.l
		}
	}
	if best == nil {
		return span{}, false
	}
	return best.s, true
}

// ceil returns the span with the smallest start >= b, if any.
func (f *freeSpace) ceil(b int64) (span, bool) {
	var best *fnode
	for x := f.root; x != nil; {
		if x.s.start >= b {
			best, x = x, x.l
		} else {
			x = x.r
		}
	}
	if best == nil {
		return span{}, false
	}
	return best.s, true
}

// firstFit returns the first span (by start) with start >= b and count >= n.
func firstFit(t *fnode, b, n int64) *fnode {
	for t != nil && t.max >= n {
		if t.s.start < b {
			t = t.r
			continue
		}
		if x := firstFit(t.l, b, n); x != nil {
			return x
		}
		if t.s.count >= n {
			return t
		}
		t = t.r
	}
	return nil
}

// largest returns the first span of the largest count.
func (f *freeSpace) largest() span {
	t := f.root
	for {
		switch {
		case t.l != nil && t.l.max == t.max:
			t = t.l
		case t.s.count == t.max:
			return t.s
		default:
			t = t.r
		}
	}
}

// take allocates up to n blocks (at least 1) near goal and returns them.
// REQUIRES: f.total > 0, n > 0.
func (f *freeSpace) take(goal, n int64) span {
	if s, ok := f.floor(goal); ok && goal < s.start+s.count {
		got := span{goal, min(n, s.start+s.count-goal)}
		f.remove(got)
		return got
	}
	var s span
	if x := firstFit(f.root, goal, n); x != nil {
		s = x.s
	} else if x := firstFit(f.root, -1<<62, n); x != nil {
		s = x.s
	} else {
		s = f.largest()
	}
	got := span{s.start, min(n, s.count)}
	f.remove(got)
	return got
}

// remove takes s, which must be free, out of the free spans.
func (f *freeSpace) remove(s span) {
	cur, ok := f.floor(s.start)
	if !ok || cur.start+cur.count < s.start+s.count || s.count <= 0 {
		panic("meta: allocator removing blocks that are not free")
	}
	f.delete(cur)
	if left := s.start - cur.start; left > 0 {
		f.insert(span{cur.start, left})
	}
	if right := cur.start + cur.count - s.start - s.count; right > 0 {
		f.insert(span{s.start + s.count, right})
	}
}

// add returns s to the free spans, merging with neighbours.
// REQUIRES: no block of s is free.
func (f *freeSpace) add(s span) {
	if s.count <= 0 {
		return
	}
	pred, hasPred := f.floor(s.start)
	succ, hasSucc := f.ceil(s.start)
	if (hasPred && pred.start+pred.count > s.start) || (hasSucc && succ.start < s.start+s.count) {
		panic("meta: allocator freeing blocks that are already free")
	}
	if hasPred && pred.start+pred.count == s.start {
		f.delete(pred)
		s = span{pred.start, pred.count + s.count}
	}
	if hasSucc && succ.start == s.start+s.count {
		f.delete(succ)
		s.count += succ.count
	}
	f.insert(s)
}

// isFree reports whether every block of s is free.
func (f *freeSpace) isFree(s span) bool {
	cur, ok := f.floor(s.start)
	return ok && cur.start+cur.count >= s.start+s.count
}

// list returns the free spans in order.
func (f *freeSpace) list() []span {
	out := make([]span, 0, f.n)
	var stack []*fnode
	for x := f.root; x != nil || len(stack) > 0; {
		for ; x != nil; x = x.l {
			stack = append(stack, x)
		}
		x = stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		out = append(out, x.s)
		x = x.r
	}
	return out
}

// build makes a balanced treap of sorted spans in O(n): priorities fall
// with depth, so the heap order holds, plus a random low part.
func (f *freeSpace) build(spans []span, depth uint64) *fnode {
	if len(spans) == 0 {
		return nil
	}
	m := len(spans) / 2
	x := &fnode{s: spans[m], prio: (64-depth)<<57 | f.prio()>>7}
	x.l = f.build(spans[:m], depth+1)
	x.r = f.build(spans[m+1:], depth+1)
	x.fix()
	return x
}

// complement builds the free spans of [lo, hi) minus owned, which must be
// sorted by start. It reports overlaps and out-of-range spans.
func complement(lo, hi int64, owned []span) (freeSpace, []string) {
	var f freeSpace
	var bad []string
	var spans []span
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
			spans = append(spans, span{pos, s.start - pos})
			f.total += s.start - pos
		}
		pos = s.start + s.count
	}
	if pos < hi {
		spans = append(spans, span{pos, hi - pos})
		f.total += hi - pos
	}
	f.n = len(spans)
	f.root = f.build(spans, 0)
	return f, bad
}
