package aiodio

import (
	"os"
	"testing"

	"pgregory.net/rapid"
)

// checkSet verifies s's invariants (sorted, disjoint, non-adjacent,
// non-empty ranges) and that it holds exactly the blocks of model.
func checkSet(t *rapid.T, s *blockSet, model map[int64]bool) {
	for i, r := range s.r {
		if r.hi <= r.lo {
			t.Fatalf("empty range %d: %v (%v)", i, r, s.r)
		}
		if i > 0 && s.r[i-1].hi >= r.lo {
			t.Fatalf("ranges %d,%d overlap or touch: %v", i-1, i, s.r)
		}
		for b := r.lo; b < r.hi; b++ {
			if !model[b] {
				t.Fatalf("block %d in set %v, not in model", b, s.r)
			}
		}
	}
	if got := s.count(); got != int64(len(model)) {
		t.Fatalf("set holds %d blocks, model %d (%v)", got, len(model), s.r)
	}
}

// TestBlockSetModel checks blockSet against a per-block map, the
// representation it replaced: add, remove and covered must report the same
// counts and leave the same blocks.
func TestBlockSetModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := &blockSet{}
		model := map[int64]bool{}
		rng := func(label string) (int64, int64) {
			lo := rapid.Int64Range(0, 60).Draw(t, label+"lo")
			n := rapid.Int64Range(-2, 20).Draw(t, label+"n")
			return lo, lo + n
		}
		for range rapid.IntRange(1, 60).Draw(t, "ops") {
			lo, hi := rng("")
			var want int64
			for b := lo; b < hi; b++ {
				if model[b] {
					want++
				}
			}
			switch rapid.IntRange(0, 2).Draw(t, "op") {
			case 0:
				if got := s.add(lo, hi); got != max(hi-lo, 0)-want {
					t.Fatalf("add(%d,%d) = %d, want %d", lo, hi, got, max(hi-lo, 0)-want)
				}
				for b := lo; b < hi; b++ {
					model[b] = true
				}
			case 1:
				if got := s.remove(lo, hi); got != want {
					t.Fatalf("remove(%d,%d) = %d, want %d", lo, hi, got, want)
				}
				for b := lo; b < hi; b++ {
					delete(model, b)
				}
			case 2:
				if hi > lo {
					if got := s.covered(lo, hi); got != want {
						t.Fatalf("covered(%d,%d) = %d, want %d", lo, hi, got, want)
					}
				}
			}
			checkSet(t, s, model)
		}
	})
}

// TestBlockSetTable covers the merge and split cases by name.
func TestBlockSetTable(t *testing.T) {
	s := &blockSet{}
	steps := []struct {
		add    bool
		lo, hi int64
		n      int64
		want   []span
	}{
		{true, 10, 20, 10, []span{{10, 20}}},
		{true, 20, 30, 10, []span{{10, 30}}},                   // adjacent after: merge
		{true, 0, 5, 5, []span{{0, 5}, {10, 30}}},              // before, apart
		{true, 5, 10, 5, []span{{0, 30}}},                      // bridges both
		{false, 12, 14, 2, []span{{0, 12}, {14, 30}}},          // split
		{false, 40, 50, 0, []span{{0, 12}, {14, 30}}},          // nothing there
		{true, 40, 42, 2, []span{{0, 12}, {14, 30}, {40, 42}}}, // after, apart
		{true, 0, 45, 15, []span{{0, 45}}},                     // swallows all
		{false, 0, 1 << 62, 45, nil},                           // unreserveAll
	}
	for i, st := range steps {
		var n int64
		if st.add {
			n = s.add(st.lo, st.hi)
		} else {
			n = s.remove(st.lo, st.hi)
		}
		if n != st.n || len(s.r) != len(st.want) {
			t.Fatalf("step %d: n=%d set=%v, want n=%d set=%v", i, n, s.r, st.n, st.want)
		}
		for j := range st.want {
			if s.r[j] != st.want[j] {
				t.Fatalf("step %d: set=%v, want %v", i, s.r, st.want)
			}
		}
	}
}

// BenchmarkReserveSeq measures the reservation ledger alone on a
// sequential writer's pattern: each op reserves the next 128 KiB (32 blocks)
// and writeback releases, as allocated, what lies 32 MiB behind.
func BenchmarkReserveSeq(b *testing.B) {
	v := newMemVolume(b, 1<<30, Options{})
	f := mustOpen(b, v.Volume, "f", os.O_RDWR|os.O_CREATE)
	defer f.Close()
	in := f.in
	const step, window, wrap = 128 << 10, 32 << 20, 512 << 20
	bs := v.bs
	b.ReportAllocs()
	var off int64
	for range b.N {
		if err := in.reserve(span{off, off + step}, span{}); err != nil {
			b.Fatal(err)
		}
		if old := off - window; old >= 0 {
			in.unreserve(old/bs, (old+step)/bs, false)
		}
		off += step
		if off >= wrap {
			in.unreserveAll()
			off = 0
		}
	}
	in.unreserveAll()
}
