package pagecache

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestModel drives random ReadAt/WriteAt/Truncate/Punch/Sync/Invalidate/
// WriteAndWait across page boundaries against an in-memory oracle, with the
// background flusher running (DirtyAge 1ms), and checks what reached the
// disk after every Sync/WriteAndWait and at Close.
func TestModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		c := New(Options{Limit: 4 << 20, DirtyLimit: 1 << 20, DirtyAge: time.Millisecond})
		defer c.Close()
		b := &memBacking{}
		f := c.Open(b)
		var oracle []byte
		// failing: WritePages fails with EIO now. sawFailure: a failure
		// may not have been reported by Sync yet (errseq).
		failing, sawFailure := false, false
		const span = 12 * PageSize
		offGen := rapid.Int64Range(0, span)
		lenGen := rapid.Int64Range(0, 3*PageSize+7)

		checkDisk := func(rt *rapid.T, off, n int64) {
			size := int64(len(oracle))
			end := min(off+n, size)
			if off >= end {
				return
			}
			got := b.diskAt(off, end-off)
			if !bytes.Equal(got, oracle[off:end]) {
				rt.Fatalf("disk [%d,%d) differs from oracle", off, end)
			}
		}

		rt.Repeat(map[string]func(*rapid.T){
			"write": func(rt *rapid.T) {
				off, n := offGen.Draw(rt, "off"), lenGen.Draw(rt, "n")
				seed := byte(rapid.IntRange(1, 255).Draw(rt, "seed"))
				p := make([]byte, n)
				for i := range p {
					p[i] = seed + byte(i)
				}
				got, err := f.WriteAt(p, off)
				if err != nil || got != int(n) {
					rt.Fatalf("WriteAt(%d, %d) = %d, %v", off, n, got, err)
				}
				if end := off + n; end > int64(len(oracle)) {
					oracle = append(oracle, make([]byte, end-int64(len(oracle)))...)
					b.setSize(end)
				}
				copy(oracle[off:], p)
			},
			"read": func(rt *rapid.T) {
				off, n := offGen.Draw(rt, "off"), lenGen.Draw(rt, "n")
				p := make([]byte, n)
				for i := range p {
					p[i] = 0xEE
				}
				got, err := f.ReadAt(p, off)
				if err != nil || got != int(n) {
					rt.Fatalf("ReadAt(%d, %d) = %d, %v", off, n, got, err)
				}
				want := make([]byte, n)
				if off < int64(len(oracle)) {
					copy(want, oracle[off:])
				}
				if !bytes.Equal(p, want) {
					rt.Fatalf("ReadAt(%d, %d): wrong data (past EOF must read zero)", off, n)
				}
			},
			"truncate": func(rt *rapid.T) {
				n := offGen.Draw(rt, "size")
				if err := f.Truncate(n); err != nil {
					rt.Fatalf("Truncate(%d): %v", n, err)
				}
				b.truncate(n)
				if n < int64(len(oracle)) {
					oracle = oracle[:n]
				} else {
					oracle = append(oracle, make([]byte, n-int64(len(oracle)))...)
				}
			},
			"punch": func(rt *rapid.T) {
				off, n := offGen.Draw(rt, "off"), lenGen.Draw(rt, "n")
				if err := f.Punch(off, n); err != nil {
					rt.Fatalf("Punch(%d, %d): %v", off, n, err)
				}
				b.punch(off, n)
				for i := off; i < off+n && i < int64(len(oracle)); i++ {
					oracle[i] = 0
				}
			},
			"sync": func(rt *rapid.T) {
				err := f.Sync()
				if failing {
					if err != nil && !errors.Is(err, syscall.EIO) {
						rt.Fatalf("Sync on a failing disk: %v", err)
					}
					return // EIO reported (pages stay dirty), or nothing was dirty
				}
				if err != nil && !(sawFailure && errors.Is(err, syscall.EIO)) {
					rt.Fatalf("Sync: %v", err)
				}
				// Reported now if it was pending; either way everything
				// is on the disk.
				sawFailure = false
				checkDisk(rt, 0, int64(len(oracle)))
			},
			"toggleDiskFailure": func(rt *rapid.T) {
				failing = !failing
				if failing {
					sawFailure = true
				}
				b.setFail(failing)
			},
			"invalidate": func(rt *rapid.T) {
				off, n := offGen.Draw(rt, "off"), lenGen.Draw(rt, "n")
				if err := f.Invalidate(off, n); err != nil && !errors.Is(err, syscall.EBUSY) {
					rt.Fatalf("Invalidate: %v", err)
				}
			},
			"writeAndWait": func(rt *rapid.T) {
				off, n := offGen.Draw(rt, "off"), lenGen.Draw(rt, "n")
				if err := f.WriteAndWait(off, n); err != nil {
					if errors.Is(err, syscall.EIO) && failing {
						return
					}
					rt.Fatalf("WriteAndWait(%d, %d): %v", off, n, err)
				}
				checkDisk(rt, off, n)
				// After WriteAndWait, invalidating the range must succeed
				// unless the flusher or a page of the range is busy — and
				// here nothing else writes.
				if n > 0 {
					if err := f.Invalidate(off, n); err != nil {
						rt.Fatalf("Invalidate after WriteAndWait(%d, %d): %v", off, n, err)
					}
				}
			},
		})
		b.setFail(false)
		if err := f.Sync(); err != nil && !(sawFailure && errors.Is(err, syscall.EIO)) {
			rt.Fatalf("Sync after the disk recovered: %v", err)
		}
		if err := f.Sync(); err != nil {
			rt.Fatalf("second Sync after the disk recovered: %v", err)
		}
		checkDisk(rt, 0, int64(len(oracle)))
		if err := f.Close(); err != nil {
			rt.Fatalf("Close: %v", err)
		}
		checkDisk(rt, 0, int64(len(oracle)))
		if b.bad != nil {
			rt.Fatalf("backing contract violated: %v", b.bad)
		}
		if s := c.Stats(); s.Pages != 0 || s.DirtyPages != 0 {
			rt.Fatalf("after Close: %d pages, %d dirty still accounted", s.Pages, s.DirtyPages)
		}
	})
}
