package check

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// faultTarget wraps a kernel directory and breaks one promise on purpose:
// the suite must notice (these tests prove the verifier, not the kernel).
type faultTarget struct {
	Target
	fault string
	count atomic.Int64
}

func (t *faultTarget) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := t.Target.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: f, t: t}, nil
}

func (t *faultTarget) NewAsync(entries int) (Async, error) {
	a, err := t.Target.NewAsync(entries)
	if err != nil || t.fault != "dup-completion" {
		return a, err
	}
	return &dupAsync{Async: a, t: t}, nil
}

// Crash, for the "crash-loses-synced" fault, zeroes the first 64 KiB of
// every file: synced data lost at a power cut must be reported.
func (t *faultTarget) Crash(seed int64) error {
	for i := 0; i < 4; i++ {
		f, err := t.Target.OpenFile(fmt.Sprintf("stress-%d", i), os.O_RDWR, 0)
		if err != nil {
			return err
		}
		err = f.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 64<<10)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

type faultFile struct {
	File
	t *faultTarget
}

func (f *faultFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.File.ReadAt(p, off)
	if f.t.fault == "poison" && n >= CellSize && f.t.count.Add(1)%25 == 0 {
		copy(p[n/CellSize/2*CellSize:], DefaultPoison)
	}
	return n, err
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if f.t.fault == "lost-write" && f.t.count.Add(1)%20 == 0 {
		return len(p), nil
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Fallocate(mode uint32, off, n int64) error {
	if f.t.fault == "no-punch" && mode&unix.FALLOC_FL_PUNCH_HOLE != 0 {
		return nil
	}
	return f.File.Fallocate(mode, off, n)
}

// dupAsync completes some ops twice.
type dupAsync struct {
	Async
	t    *faultTarget
	save []Completion
}

func (a *dupAsync) Wait(ctx context.Context, min int, out []Completion) (int, error) {
	if len(a.save) > 0 && len(out) > 0 {
		out[0] = a.save[0]
		a.save = a.save[1:]
		return 1, nil
	}
	n, err := a.Async.Wait(ctx, min, out)
	for _, c := range out[:n] {
		if a.t.count.Add(1)%30 == 0 {
			a.save = append(a.save, c)
		}
	}
	return n, err
}

func TestVerifierCatchesFaults(t *testing.T) {
	for _, tc := range []struct {
		fault string
		what  func(r *Report) int64
	}{
		{"poison", func(r *Report) int64 { return r.PoisonBytes }},
		{"lost-write", func(r *Report) int64 { return int64(r.Mismatches) }},
		{"no-punch", func(r *Report) int64 { return int64(r.Mismatches) }},
		{"dup-completion", func(r *Report) int64 { return int64(r.Completions) }},
		{"crash-loses-synced", func(r *Report) int64 { return int64(r.Mismatches) }},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			dir, err := NewDirTarget(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			tg := &faultTarget{Target: dir, fault: tc.fault}
			cfg := Config{Seed: 42, Ops: 200, Workers: 2}
			if tc.fault == "crash-loses-synced" {
				cfg.CrashEvery, cfg.VerifyEvery = 1, 3
			}
			rep, err := Run(context.Background(), tg, cfg)
			if !errors.Is(err, ErrFailed) || !rep.Failed() || tc.what(&rep) == 0 || len(rep.Failures) == 0 {
				t.Fatalf("fault %q not detected: err %v\n%s", tc.fault, err, rep.String())
			}
			t.Logf("detected: %v\n%s", err, rep.Failures[0])
		})
	}
}

func TestExtmap(t *testing.T) {
	var m extmap
	m.assign(0, 64, cands{1})
	m.assign(32, 96, cands{2})
	m.assign(16, 32, cands{1})
	m.assign(200, 300, zeroCands)
	var got []seg
	m.pieces(0, 128, func(a, b int64, c cands) { got = append(got, seg{a, b, c}) })
	want := []seg{{0, 32, cands{1}}, {32, 96, cands{2}}, {96, 128, zeroCands}}
	if len(got) != len(want) {
		t.Fatalf("pieces %v, want %v", got, want)
	}
	for i := range got {
		if got[i].off != want[i].off || got[i].end != want[i].end || !got[i].c.equal(want[i].c) {
			t.Fatalf("pieces %v, want %v", got, want)
		}
	}
	m.assign(0, maxOffset, zeroCands)
	if len(m.segs) != 0 {
		t.Fatalf("segments left after zeroing: %v", m.segs)
	}
}

func TestCellRoundTrip(t *testing.T) {
	b := make([]byte, 4*CellSize)
	fillCells(b, 7, 3, 4096, 99)
	for i := 0; i < 4; i++ {
		k, g, _, _ := decodeCell(b[i*CellSize:], 7, 3, 4096+int64(i*CellSize), DefaultPoison)
		if k != cellValid || g != 99 {
			t.Fatalf("cell %d: %v gen %d", i, k, g)
		}
	}
	if k, _, fid, foff := decodeCell(b, 7, 4, 4096, DefaultPoison); k != cellForeign || fid != 3 || foff != 4096 {
		t.Fatalf("other file: %v %d %d", k, fid, foff)
	}
	if k, _, _, _ := decodeCell(b[CellSize:], 7, 3, 4096, DefaultPoison); k != cellForeign {
		t.Fatalf("other offset: %v", k)
	}
	if k, _, _, _ := decodeCell(b, 8, 3, 4096, DefaultPoison); k != cellGarbage {
		t.Fatalf("other salt: %v", k)
	}
	if k, _, _, _ := decodeCell(DefaultPoison, 7, 3, 0, DefaultPoison); k != cellPoison {
		t.Fatalf("poison: %v", k)
	}
	if k, _, _, _ := decodeCell(make([]byte, CellSize), 7, 3, 0, DefaultPoison); k != cellZero {
		t.Fatalf("zero: %v", k)
	}
	if len(DefaultPoison) != CellSize {
		t.Fatal("poison marker is not one cell")
	}
	_ = os.Getpagesize
}

// TestExtmapRandom checks extmap against a plain array of cells.
func TestExtmapRandom(t *testing.T) {
	const cells = 64
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 2000; iter++ {
		var m extmap
		var arr [cells]cands
		for i := range arr {
			arr[i] = zeroCands
		}
		for step := 0; step < 20; step++ {
			a := rng.IntN(cells)
			b := a + 1 + rng.IntN(cells-a)
			c := cands{uint32(rng.IntN(3))}
			if rng.IntN(3) == 0 {
				c = union(c, cands{uint32(rng.IntN(3))})
			}
			m.assign(int64(a*CellSize), int64(b*CellSize), c)
			for i := a; i < b; i++ {
				arr[i] = c
			}
			if rng.IntN(4) == 0 {
				m.assign(int64(b*CellSize), maxOffset, zeroCands)
				for i := b; i < cells; i++ {
					arr[i] = zeroCands
				}
			}
			pos := int64(0)
			m.pieces(0, cells*CellSize, func(pa, pb int64, c cands) {
				if pa != pos {
					t.Fatalf("gap at %d", pos)
				}
				pos = pb
				for i := pa / CellSize; i < pb/CellSize; i++ {
					if !arr[i].equal(c) {
						t.Fatalf("iter %d step %d: cell %d: map %v, want %v (segs %v)", iter, step, i, c, arr[i], m.segs)
					}
				}
			})
			for i := 1; i < len(m.segs); i++ {
				if m.segs[i-1].end > m.segs[i].off {
					t.Fatalf("overlapping segments %v", m.segs)
				}
			}
		}
	}
}
