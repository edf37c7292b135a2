package dio

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/aiodio/aiodio/device/sim"
	"github.com/aiodio/aiodio/internal/alignbuf"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRoundTripModel writes random ranges (aligned, unaligned, misaligned
// memory, extending, into holes) and checks every read, and the whole file,
// against a byte model; the poisoned device must never show through (I1).
func TestRoundTripModel(t *testing.T) {
	for _, strict := range []bool{false, true} {
		r := newRig(t, rigOpts{strict: strict, sim: sim.Options{MaxIO: 8192, Seed: 3}})
		rng := rand.New(rand.NewPCG(1, 2))
		const fileMax = 64 << 10
		model := make([]byte, 0, fileMax)
		for i := 0; i < 300; i++ {
			off := rng.Int64N(fileMax - 1)
			n := 1 + rng.IntN(min(20000, fileMax-int(off)))
			if strict {
				off &^= 511
				n = (n + 511) &^ 511
				if off+int64(n) > fileMax {
					n = int(fileMax - off)
				}
			}
			data := pattern(n, byte(i))
			buf := data
			if !strict && rng.IntN(3) == 0 { // misaligned memory
				raw := alignbuf.Alloc(n + 1)
				buf = raw[1 : n+1]
				copy(buf, data)
			} else if strict {
				buf = alignbuf.Alloc(n)
				copy(buf, data)
			}
			w, err := r.e.WriteAt(r.in, buf, off, 0)
			if err != nil || w != n {
				t.Fatalf("strict=%v write %d@%d = %d, %v", strict, n, off, w, err)
			}
			if end := int(off) + n; end > len(model) {
				model = model[:end]
			}
			copy(model[off:], data)
			if r.in.Size() != int64(len(model)) {
				t.Fatalf("size %d, model %d", r.in.Size(), len(model))
			}
			// Read a random range back.
			ro := rng.Int64N(int64(len(model)))
			rn := 1 + rng.IntN(20000)
			if strict {
				ro &^= 511
				rn = (rn + 511) &^ 511
			}
			got := alignbuf.Alloc(rn)
			if !strict && rng.IntN(3) == 0 {
				got = alignbuf.Alloc(rn + 3)[3:]
			}
			k, err := r.e.ReadAt(r.in, got, ro, 0)
			want := model[ro:min(int(ro)+rn, len(model))]
			if k != len(want) || !bytes.Equal(got[:k], want) {
				t.Fatalf("strict=%v read %d@%d: n=%d want %d; equal=%v", strict, rn, ro, k, len(want), bytes.Equal(got[:k], want))
			}
			if k < rn && !errors.Is(err, io.EOF) || k == rn && err != nil {
				t.Fatalf("read %d@%d: n=%d err=%v", rn, ro, k, err)
			}
		}
		all := make([]byte, len(model))
		if k, err := r.e.ReadAt(r.in, all, 0, 0); k != len(model) || (err != nil && err != io.EOF) || !bytes.Equal(all, model) {
			t.Fatalf("final read: n=%d err=%v", k, err)
		}
		if r.ext.size(testIno) != int64(len(model)) {
			t.Fatalf("meta size %d, model %d", r.ext.size(testIno), len(model))
		}
		r.checkIdle()
	}
}

// TestEOFRead300 is DESIGN §2 / I4: a direct read across EOF returns exactly
// the bytes up to EOF (300-byte file, 4 KiB read → 300, io.EOF), and the
// rest of the caller's buffer shows nothing from past EOF.
func TestEOFRead300(t *testing.T) {
	for _, strict := range []bool{false, true} {
		r := newRig(t, rigOpts{strict: strict})
		data := pattern(300, 9)
		if strict {
			// A 300-byte file under strict alignment: an aligned write of a
			// sector with junk after byte 300 in a written block, then the
			// size says 300 (as after a truncate).
			blk := alignbuf.Alloc(4096)
			copy(blk, data)
			for i := 300; i < 4096; i++ {
				blk[i] = 'X'
			}
			if _, err := r.e.WriteAt(r.in, blk, 0, 0); err != nil {
				t.Fatal(err)
			}
			r.in.SetSizeLocked(300)
		} else if n, err := r.e.WriteAt(r.in, data, 0, 0); n != 300 || err != nil {
			t.Fatal(n, err)
		}
		got := alignbuf.Alloc(4096)
		for i := range got {
			got[i] = 0xAA
		}
		n, err := r.e.ReadAt(r.in, got, 0, 0)
		if n != 300 || !errors.Is(err, io.EOF) {
			t.Fatalf("strict=%v: read = %d, %v; want 300, io.EOF", strict, n, err)
		}
		if !bytes.Equal(got[:300], data) {
			t.Fatal("data mismatch")
		}
		if bytes.ContainsAny(got[300:512], "XSTALE") {
			t.Fatal("bytes past EOF exposed in the caller's buffer")
		}
		// At EOF: 0, io.EOF.
		if n, err := r.e.ReadAt(r.in, got, 4096, 0); n != 0 || err != io.EOF {
			t.Fatalf("read at EOF = %d, %v", n, err)
		}
		// Exactly to EOF with an exact-size buffer: no error... only when
		// aligned; unaligned case: 300-byte buffer.
		if !strict {
			b := make([]byte, 300)
			if n, err := r.e.ReadAt(r.in, b, 0, 0); n != 300 || err != nil {
				t.Fatalf("exact read = %d, %v", n, err)
			}
		}
	}
}

// TestStrictAlignmentEINVAL: with StrictAlignment, EINVAL exactly where
// Linux O_DIRECT gives it, and nothing is submitted.
//
// Checked by hand: removing the StrictAlignment check in validate makes it
// fail ("offset write=false: err = <nil>, want EINVAL", … "5 requests
// submitted for rejected ops").
func TestStrictAlignmentEINVAL(t *testing.T) {
	r := newRig(t, rigOpts{strict: true})
	good := alignbuf.Alloc(8192)
	cases := []struct {
		name string
		buf  []byte
		off  int64
	}{
		{"offset", good[:4096], 100},
		{"length", good[:1000], 0},
		{"address", good[1:513], 0},
		{"negative", good[:512], -512},
	}
	for _, c := range cases {
		for _, write := range []bool{false, true} {
			a := r.newOp(c.buf, c.off, 0)
			var err error
			if write {
				err = r.e.Write(&a.Op)
			} else {
				err = r.e.Read(&a.Op)
			}
			if !errors.Is(err, syscall.EINVAL) {
				t.Errorf("%s write=%v: err = %v, want EINVAL", c.name, write, err)
			}
			if a.completed() {
				t.Errorf("%s: rejected op was completed", c.name)
			}
		}
	}
	if s := r.dev.Stats(); s.Submitted != 0 {
		t.Fatalf("%d requests submitted for rejected ops", s.Submitted)
	}
	// Aligned I/O works.
	if n, err := r.e.WriteAt(r.in, good[:512], 512, 0); n != 512 || err != nil {
		t.Fatal(n, err)
	}
	r.checkIdle()
}
