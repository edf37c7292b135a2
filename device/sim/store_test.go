package sim

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestStoreMatchesFlat checks the sparse store against a flat byte slice
// over random writes, fills and finds, across chunk boundaries.
func TestStoreMatchesFlat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const size = 5*chunkSize + 4096
	for round := range 20 {
		s := newStore(size)
		flat := make([]byte, size)
		if round%3 == 1 {
			pat := []byte("PoIsOn")
			s.fill(pat)
			fillPattern(flat, pat)
		}
		for range 20 {
			off := rng.Int64N(size)
			n := rng.IntN(int(min(size-off, 3*chunkSize)) + 1)
			p := make([]byte, n)
			fillPattern(p, []byte{byte(rng.IntN(4)) + 'a', byte(rng.IntN(4)) + 'a', byte(rng.IntN(4)) + 'a'})
			s.writeAt(p, off)
			copy(flat[off:], p)
		}
		if !bytes.Equal(s.bytes(), flat) {
			t.Fatalf("round %d: store differs from flat", round)
		}
		if c := s.clone(); !bytes.Equal(c.bytes(), flat) {
			t.Fatalf("round %d: clone differs", round)
		}
		for _, m := range [][]byte{[]byte("abca"), []byte("oNPo"), []byte("zz"), []byte("nPoI"), {0, 0, 0}, []byte("dd")} {
			want := int64(bytes.Index(flat, m))
			if got := s.find(m); got != want {
				t.Fatalf("round %d: find(%q) = %d, want %d", round, m, got, want)
			}
		}
		got := make([]byte, 10000)
		off := rng.Int64N(size - 10000)
		s.readAt(got, off)
		if !bytes.Equal(got, flat[off:off+10000]) {
			t.Fatalf("round %d: readAt differs", round)
		}
		re := newStore(size)
		re.load(flat)
		if !bytes.Equal(re.bytes(), flat) {
			t.Fatalf("round %d: load differs", round)
		}
	}
	// A marker straddling a written chunk and the background.
	s := newStore(size)
	s.writeAt([]byte("XY"), 2*chunkSize-1)
	if got := s.find([]byte{'X', 'Y', 0}); got != 2*chunkSize-1 {
		t.Fatalf("straddling find = %d", got)
	}
	if got := s.find([]byte{0, 'X'}); got != 2*chunkSize-2 {
		t.Fatalf("straddling find = %d", got)
	}
}
