package meta

import (
	"testing"

	"github.com/aiodio/aiodio/internal/format"
	"pgregory.net/rapid"
)

// TestExtentMapModel drives the extent-map helpers with random operations
// and compares them, block by block, with a plain map model; it also checks
// the structural invariants (sorted, disjoint, non-empty, fully merged).
func TestExtentMapModel(t *testing.T) {
	const span64 = 64
	rapid.Check(t, func(t *rapid.T) {
		type blk struct {
			dev   int64
			state uint8
		}
		model := map[int64]blk{}
		var ext []format.Extent
		devBase := int64(1000)
		for range rapid.IntRange(1, 60).Draw(t, "ops") {
			fb := rapid.Int64Range(0, span64-1).Draw(t, "fb")
			n := rapid.Int64Range(1, span64-fb).Draw(t, "n")
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0: // insert into a hole
				hole := true
				for b := fb; b < fb+n; b++ {
					if _, ok := model[b]; ok {
						hole = false
					}
				}
				if hole != isHole(ext, fb, fb+n) {
					t.Fatalf("isHole(%d,%d) = %v, model %v", fb, n, !hole, hole)
				}
				if !hole {
					continue
				}
				// Device blocks either continue the file layout (mergeable) or jump.
				dev := devBase + fb
				if rapid.Bool().Draw(t, "jump") {
					devBase += 100
					dev = devBase + fb
				}
				ext = extInsert(ext, format.Extent{FileBlock: fb, DevBlock: dev, Count: n, State: format.StateUnwritten})
				for b := int64(0); b < n; b++ {
					model[fb+b] = blk{dev + b, format.StateUnwritten}
				}
			case 1, 2: // convert / unwrite
				from, to := format.StateUnwritten, format.StateWritten
				if rapid.Bool().Draw(t, "unwrite") {
					from, to = to, from
				}
				var want int64
				for b := fb; b < fb+n; b++ {
					if m, ok := model[b]; ok && m.state == from {
						m.state = to
						model[b] = m
						want++
					}
				}
				var got int64
				ext, got = extSetState(ext, fb, fb+n, from, to)
				if got != want {
					t.Fatalf("setState changed %d blocks, model %d", got, want)
				}
			case 3: // remove
				freed := map[int64]bool{}
				for b := fb; b < fb+n; b++ {
					if m, ok := model[b]; ok {
						freed[m.dev] = true
						delete(model, b)
					}
				}
				var spans []span
				ext, spans = extRemove(ext, fb, fb+n, nil)
				var cnt int64
				for _, s := range spans {
					for d := s.start; d < s.start+s.count; d++ {
						if !freed[d] {
							t.Fatalf("freed device block %d not mapped in range", d)
						}
						cnt++
					}
				}
				if cnt != int64(len(freed)) {
					t.Fatalf("freed %d blocks, model %d", cnt, len(freed))
				}
			}
			checkExtentInvariants(t, ext)
			for _, m := range extMap(nil, ext, 0, span64) {
				for b := int64(0); b < m.Count; b++ {
					mb, ok := model[m.FileBlock+b]
					switch {
					case m.State == Hole && ok:
						t.Fatalf("block %d: hole, model %+v", m.FileBlock+b, mb)
					case m.State != Hole && (!ok || mb.dev != m.DevBlock+b || State(mb.state) != m.State):
						t.Fatalf("block %d: %+v, model %+v %v", m.FileBlock+b, m, mb, ok)
					}
				}
			}
		}
	})
}

func checkExtentInvariants(t *rapid.T, ext []format.Extent) {
	for i, e := range ext {
		if e.Count <= 0 {
			t.Fatalf("empty extent %d: %+v", i, ext)
		}
		if i > 0 {
			p := ext[i-1]
			if p.FileBlock+p.Count > e.FileBlock {
				t.Fatalf("overlap at %d: %+v", i, ext)
			}
			if mergeable(p, e) {
				t.Fatalf("unmerged neighbours at %d: %+v", i, ext)
			}
		}
	}
}

// TestAllocatorModel drives the free-space allocator with random take/add
// calls and compares it with a bitmap model: it only hands out free blocks,
// honours a free goal, and its spans are exactly the model's free runs.
func TestAllocatorModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		lo := int64(10)
		n := rapid.Int64Range(1, 200).Draw(t, "blocks")
		hi := lo + n
		free, bad := complement(lo, hi, nil)
		if len(bad) > 0 {
			t.Fatal(bad)
		}
		model := make([]bool, n) // true = free
		for i := range model {
			model[i] = true
		}
		var used []span
		for range rapid.IntRange(1, 80).Draw(t, "ops") {
			if rapid.Bool().Draw(t, "take") || len(used) == 0 {
				if free.total == 0 {
					continue
				}
				goal := rapid.Int64Range(lo-5, hi+5).Draw(t, "goal")
				want := rapid.Int64Range(1, n).Draw(t, "n")
				s := free.take(goal, want)
				if s.count < 1 || s.count > want {
					t.Fatalf("take(%d, %d) = %+v", goal, want, s)
				}
				if goal >= lo && goal < hi && model[goal-lo] && s.start != goal {
					t.Fatalf("goal %d free but got %+v", goal, s)
				}
				for b := s.start; b < s.start+s.count; b++ {
					if b < lo || b >= hi || !model[b-lo] {
						t.Fatalf("took non-free block %d", b)
					}
					model[b-lo] = false
				}
				used = append(used, s)
			} else {
				i := rapid.IntRange(0, len(used)-1).Draw(t, "which")
				s := used[i]
				used = append(used[:i], used[i+1:]...)
				free.add(s)
				for b := s.start; b < s.start+s.count; b++ {
					model[b-lo] = true
				}
			}
			var want []span
			var total int64
			for i := int64(0); i < n; i++ {
				if !model[i] {
					continue
				}
				total++
				if k := len(want) - 1; k >= 0 && want[k].start+want[k].count == lo+i {
					want[k].count++
				} else {
					want = append(want, span{lo + i, 1})
				}
			}
			got := free.list()
			if total != free.total || len(want) != len(got) || free.n != len(got) {
				t.Fatalf("free %d in %v, model %d in %v", free.total, got, total, want)
			}
			for i := range want {
				if want[i] != got[i] {
					t.Fatalf("spans %v, model %v", got, want)
				}
			}
			for _, s := range want {
				if !free.isFree(s) || (s.start > lo && free.isFree(span{s.start - 1, 1})) {
					t.Fatalf("isFree wrong around %+v", s)
				}
			}
			if free.root != nil {
				checkTreap(t, free.root)
			}
		}
	})
}

// checkTreap verifies the heap order of priorities and the subtree maxima.
func checkTreap(t *rapid.T, x *fnode) int64 {
	m := x.s.count
	for _, c := range []*fnode{x.l, x.r} {
		if c == nil {
			continue
		}
		if c.prio > x.prio {
			t.Fatalf("heap order broken")
		}
		m = max(m, checkTreap(t, c))
	}
	if m != x.max {
		t.Fatalf("subtree max %d, want %d", x.max, m)
	}
	return m
}

// TestComplementModel checks the O(n) build of free space from owned spans
// (mount) against a bitmap, then allocates from it.
func TestComplementModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		lo, n := int64(5), rapid.Int64Range(1, 300).Draw(t, "blocks")
		hi := lo + n
		model := make([]bool, n)
		for i := range model {
			model[i] = true
		}
		var owned []span
		for pos := lo; pos < hi; {
			pos += rapid.Int64Range(0, 5).Draw(t, "gap")
			c := rapid.Int64Range(1, 6).Draw(t, "count")
			if pos+c > hi {
				break
			}
			owned = append(owned, span{pos, c})
			for b := pos; b < pos+c; b++ {
				model[b-lo] = false
			}
			pos += c
		}
		free, bad := complement(lo, hi, owned)
		if len(bad) > 0 {
			t.Fatal(bad)
		}
		var total int64
		for _, s := range free.list() {
			for b := s.start; b < s.start+s.count; b++ {
				if !model[b-lo] {
					t.Fatalf("block %d free but owned", b)
				}
				total++
			}
		}
		for _, m := range model {
			if m {
				total--
			}
		}
		if total != 0 {
			t.Fatalf("free blocks differ from the model by %d", total)
		}
		if free.root != nil {
			checkTreap(t, free.root)
		}
		for free.total > 0 {
			s := free.take(rapid.Int64Range(lo, hi).Draw(t, "goal"), rapid.Int64Range(1, 10).Draw(t, "n"))
			for b := s.start; b < s.start+s.count; b++ {
				if !model[b-lo] {
					t.Fatalf("took owned block %d", b)
				}
				model[b-lo] = false
			}
		}
	})
}

// TestExtentTreeModel runs the extent-map model test on the leaf-cut tree
// with tiny leaves (so most updates span several leaves) and checks the
// tree invariants: leaves non-empty and bounded, extents sorted, disjoint
// and merged across leaf boundaries, the count right.
func TestExtentTreeModel(t *testing.T) {
	const span64 = 200
	rapid.Check(t, func(t *rapid.T) {
		type blk struct {
			dev   int64
			state uint8
		}
		model := map[int64]blk{}
		tr := extTree{leafMax: rapid.IntRange(2, 6).Draw(t, "leafMax")}
		devBase := int64(1000)
		for range rapid.IntRange(1, 150).Draw(t, "ops") {
			fb := rapid.Int64Range(0, span64-1).Draw(t, "fb")
			n := rapid.Int64Range(1, min(span64-fb, 12)).Draw(t, "n")
			switch rapid.IntRange(0, 4).Draw(t, "op") {
			case 0, 1:
				hole := true
				for b := fb; b < fb+n; b++ {
					if _, ok := model[b]; ok {
						hole = false
					}
				}
				if hole != tr.isHole(fb, fb+n) {
					t.Fatalf("isHole(%d,%d) = %v", fb, n, !hole)
				}
				if !hole {
					continue
				}
				dev := devBase + fb
				if rapid.IntRange(0, 3).Draw(t, "jump") == 0 {
					devBase += 1000
					dev = devBase + fb
				}
				e := format.Extent{FileBlock: fb, DevBlock: dev, Count: n, State: format.StateUnwritten}
				tr.modify(fb, fb+n, func(w []format.Extent) []format.Extent { return extInsert(w, e) })
				for b := int64(0); b < n; b++ {
					model[fb+b] = blk{dev + b, format.StateUnwritten}
				}
			case 2, 3:
				from, to := format.StateUnwritten, format.StateWritten
				if rapid.Bool().Draw(t, "unwrite") {
					from, to = to, from
				}
				for b := fb; b < fb+n; b++ {
					if m, ok := model[b]; ok && m.state == from {
						m.state = to
						model[b] = m
					}
				}
				tr.modify(fb, fb+n, func(w []format.Extent) []format.Extent {
					w, _ = extSetState(w, fb, fb+n, from, to)
					return w
				})
			case 4:
				for b := fb; b < fb+n; b++ {
					delete(model, b)
				}
				tr.modify(fb, fb+n, func(w []format.Extent) []format.Extent {
					w, _ = extRemove(w, fb, fb+n, nil)
					return w
				})
			}
			all := tr.flat(nil)
			if len(all) != tr.n {
				t.Fatalf("count %d, have %d", tr.n, len(all))
			}
			for _, l := range tr.leaves {
				if len(l) == 0 || len(l) > tr.max() {
					t.Fatalf("leaf of %d extents (max %d)", len(l), tr.max())
				}
			}
			for i := 1; i < len(all); i++ {
				p, e := all[i-1], all[i]
				if p.FileBlock+p.Count > e.FileBlock || mergeable(p, e) || e.Count <= 0 {
					t.Fatalf("extents %d,%d: %+v %+v", i-1, i, p, e)
				}
			}
			q := rapid.Int64Range(0, span64).Draw(t, "q")
			if p, ok := tr.prev(q); ok != (q > 0 && len(all) > 0 && all[0].FileBlock+all[0].Count <= q) ||
				(ok && p.FileBlock+p.Count > q) {
				t.Fatalf("prev(%d) = %+v %v", q, p, ok)
			}
			for _, m := range tr.mapRange(nil, 0, span64) {
				for b := int64(0); b < m.Count; b++ {
					mb, ok := model[m.FileBlock+b]
					switch {
					case m.State == Hole && ok:
						t.Fatalf("block %d: hole, model %+v", m.FileBlock+b, mb)
					case m.State != Hole && (!ok || mb.dev != m.DevBlock+b || State(mb.state) != m.State):
						t.Fatalf("block %d: %+v, model %+v %v", m.FileBlock+b, m, mb, ok)
					}
				}
			}
		}
	})
}
