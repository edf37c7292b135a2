package bugrepro

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/device/sim"
)

// TestBugCrashExposesTruncatedTail: found by TestStressCrashSim (seed
// 1795318355713867522 with -seed: replays; Unwritten: #1102 wrote
// [371200,403968) in round 22, #1123 truncated to 375808 in round 23, then
// Sync; in round 24 buffered writes (#1165 [382832,399216)) extended the
// file past a gap; after the power cut, [375808, ...) read #1102's data).
// A buffered extending write zeroes the old EOF block's tail only in the
// cache; when the new pages are written back and a (group) commit makes the
// new size durable before that zeroed page is written and flushed, a crash
// exposes the bytes the synced truncate removed (I1 after a crash, I11, O2).
func TestBugCrashExposesTruncatedTail(t *testing.T) {
	for _, hp := range []aiodio.HolePolicy{aiodio.Unwritten, aiodio.BufferedFallback} {
		t.Run(hp.String(), func(t *testing.T) {
			d := sim.New(sim.Options{Size: 64 << 20, Seed: 1})
			defer d.Close()
			if err := aiodio.MkfsDevice(d, aiodio.MkfsOptions{}); err != nil {
				t.Fatal(err)
			}
			v, err := aiodio.OpenDevice(d, aiodio.Options{HolePolicy: hp})
			if err != nil {
				t.Fatal(err)
			}
			f, err := v.OpenFile("f", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			b, err := v.OpenFile("f", os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			w := aiodio.AlignedBuffer(32768)
			copy(w, bytes.Repeat([]byte{'x'}, len(w)))
			if _, err := f.WriteAt(w, 368640); err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(375808); err != nil { // mid-block: [375808,376832) of its block is past EOF
				t.Fatal(err)
			}
			if err := v.Sync(); err != nil {
				t.Fatal(err)
			}
			// Buffered extension past a gap: the old EOF block's tail is
			// zeroed in the cache only.
			if _, err := b.WriteAt(bytes.Repeat([]byte{'y'}, 16384), 382832); err != nil {
				t.Fatal(err)
			}
			// Write back only the new pages (a direct read of their range
			// writes them back first) ...
			r := aiodio.AlignedBuffer(20480)
			if _, err := f.ReadAt(r, 380928); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			// ... and let another file's Sync run a (group) commit.
			g, err := v.OpenFile("g", os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := g.WriteAt([]byte("z"), 0); err != nil {
				t.Fatal(err)
			}
			if err := g.Sync(); err != nil {
				t.Fatal(err)
			}
			nd := d.Crash(sim.CrashOptions{}) // only what was flushed survives
			defer nd.Close()
			v.Close()
			v2, err := aiodio.OpenDevice(nd, aiodio.Options{HolePolicy: hp})
			if err != nil {
				t.Fatal(err)
			}
			defer v2.Close()
			h, err := v2.OpenFile("f", os.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			fi, _ := h.Stat()
			size := fi.Size()
			if size <= 375808 {
				t.Skipf("the new size did not survive the crash (size %d): nothing exposed; the scenario needs it durable", size)
			}
			got := make([]byte, min(size, 382832)-375808)
			n, err := h.ReadAt(got, 375808)
			if n != len(got) {
				t.Fatalf("after the crash: size %d, read %d, %v", size, n, err)
			}
			if i := bytes.IndexFunc(got, func(r rune) bool { return r != 0 }); i >= 0 {
				t.Fatalf("after the crash (size %d): byte at %d, in the gap past the synced truncate to 375808, is %q: truncated data came back", size, 375808+i, got[i])
			}
		})
	}
}

// TestBugCrashExposesTruncatedTailTruncateUp: BUG-5 with a truncate up as
// the extension (TestStressCrashSim seed 3: #856 Truncate(515216) in round
// 17, Sync, #908 Truncate(521008) in round 18, power cut: the gap shows the
// bytes the first truncate removed).
func TestBugCrashExposesTruncatedTailTruncateUp(t *testing.T) {
	for _, hp := range []aiodio.HolePolicy{aiodio.Unwritten, aiodio.BufferedFallback} {
		t.Run(hp.String(), func(t *testing.T) {
			d := sim.New(sim.Options{Size: 64 << 20, Seed: 1})
			defer d.Close()
			if err := aiodio.MkfsDevice(d, aiodio.MkfsOptions{}); err != nil {
				t.Fatal(err)
			}
			v, err := aiodio.OpenDevice(d, aiodio.Options{HolePolicy: hp})
			if err != nil {
				t.Fatal(err)
			}
			f, err := v.OpenFile("f", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			w := aiodio.AlignedBuffer(12288)
			copy(w, bytes.Repeat([]byte{'x'}, len(w)))
			if _, err := f.WriteAt(w, 512000); err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(515216); err != nil { // mid-block
				t.Fatal(err)
			}
			if err := v.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(521008); err != nil { // extends: [515216, 521008) must read zeros
				t.Fatal(err)
			}
			g, err := v.OpenFile("g", os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := g.WriteAt([]byte("z"), 0); err != nil {
				t.Fatal(err)
			}
			if err := g.Sync(); err != nil { // (group) commit
				t.Fatal(err)
			}
			nd := d.Crash(sim.CrashOptions{})
			defer nd.Close()
			v.Close()
			v2, err := aiodio.OpenDevice(nd, aiodio.Options{HolePolicy: hp})
			if err != nil {
				t.Fatal(err)
			}
			defer v2.Close()
			h, err := v2.OpenFile("f", os.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			fi, _ := h.Stat()
			if fi.Size() <= 515216 {
				t.Skipf("the truncate up did not survive (size %d)", fi.Size())
			}
			got := make([]byte, fi.Size()-515216)
			n, err := h.ReadAt(got, 515216)
			if n != len(got) {
				t.Fatalf("read %d, %v", n, err)
			}
			if i := bytes.IndexFunc(got, func(r rune) bool { return r != 0 }); i >= 0 {
				t.Fatalf("after the crash (size %d): byte at %d, past the synced truncate to 515216, is %q: truncated data came back", fi.Size(), 515216+i, got[i])
			}
		})
	}
}

// TestBugCrashExposesTruncatedTailWriteAtEOF: BUG-5 after its fix
// (56e1e4d), when the buffered extension starts exactly AT the old EOF (no
// gap, so no tail zeroing), and a truncate up then commits a larger size.
// Found by TestStressCrashSim -check.blocksize=1024 (seed 86: #2014
// Truncate(454816) in round 41, Sync; #2028 buffered write [454816,458912)
// and #2049 Truncate(458928) in round 42; power cut: [454816,...) shows the
// data the synced truncate removed). The buffered data was never written
// back (lost, fine); the size that covers the old EOF block was committed
// while that block's tail on the device still held the truncated bytes.
func TestBugCrashExposesTruncatedTailWriteAtEOF(t *testing.T) {
	for _, bs := range []int{1024, 4096} {
		for _, hp := range []aiodio.HolePolicy{aiodio.Unwritten, aiodio.BufferedFallback} {
			t.Run(fmt.Sprintf("%v-%dB-blocks", hp, bs), func(t *testing.T) {
				d := sim.New(sim.Options{Size: 64 << 20, Seed: 1})
				defer d.Close()
				if err := aiodio.MkfsDevice(d, aiodio.MkfsOptions{BlockSize: bs}); err != nil {
					t.Fatal(err)
				}
				v, err := aiodio.OpenDevice(d, aiodio.Options{HolePolicy: hp})
				if err != nil {
					t.Fatal(err)
				}
				f, err := v.OpenFile("f", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				b, err := v.OpenFile("f", os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				w := aiodio.AlignedBuffer(53248)
				copy(w, bytes.Repeat([]byte{'x'}, len(w)))
				if _, err := f.WriteAt(w, 423936); err != nil {
					t.Fatal(err)
				}
				if err := f.Truncate(454816); err != nil { // mid-block
					t.Fatal(err)
				}
				if err := v.Sync(); err != nil {
					t.Fatal(err)
				}
				if _, err := b.WriteAt(bytes.Repeat([]byte{'y'}, 4096), 454816); err != nil { // at EOF, no gap
					t.Fatal(err)
				}
				if err := f.Truncate(458928); err != nil { // up
					t.Fatal(err)
				}
				g, err := v.OpenFile("g", os.O_RDWR|os.O_CREATE, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := g.WriteAt([]byte("z"), 0); err != nil {
					t.Fatal(err)
				}
				if err := g.Sync(); err != nil { // (group) commit
					t.Fatal(err)
				}
				nd := d.Crash(sim.CrashOptions{})
				defer nd.Close()
				v.Close()
				v2, err := aiodio.OpenDevice(nd, aiodio.Options{HolePolicy: hp})
				if err != nil {
					t.Fatal(err)
				}
				defer v2.Close()
				h, err := v2.OpenFile("f", os.O_RDONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer h.Close()
				fi, _ := h.Stat()
				if fi.Size() <= 454816 {
					t.Skipf("the larger size did not survive (size %d)", fi.Size())
				}
				got := make([]byte, fi.Size()-454816)
				n, err := h.ReadAt(got, 454816)
				if n != len(got) {
					t.Fatalf("read %d, %v", n, err)
				}
				if i := bytes.IndexByte(got, 'x'); i >= 0 {
					t.Fatalf("after the crash (size %d): byte at %d, past the synced truncate to 454816, is 'x': truncated data came back", fi.Size(), 454816+i)
				}
			})
		}
	}
}
