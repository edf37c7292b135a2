package bugrepro

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"testing"

	"github.com/aiodio/aiodio"
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
	forEachHolePolicy(t, func(t *testing.T, hp aiodio.HolePolicy) {
		d, v := newPlainSimVolume(t, 0, hp)
		f, b := openPair(t, v, 0)
		writeDirectFill(t, f, 'x', 32768, 368640)
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
		commitThroughOtherFile(t, v)
		h := crashAndReopen(t, d, v, hp)
		size, got := readPastTruncate(t, h, 375808, 382832,
			"the new size did not survive the crash (size %d): nothing exposed; the scenario needs it durable")
		if i := bytes.IndexFunc(got, func(r rune) bool { return r != 0 }); i >= 0 {
			t.Fatalf("after the crash (size %d): byte at %d, in the gap past the synced truncate to 375808, is %q: truncated data came back", size, 375808+i, got[i])
		}
	})
}

// TestBugCrashExposesTruncatedTailTruncateUp: BUG-5 with a truncate up as
// the extension (TestStressCrashSim seed 3: #856 Truncate(515216) in round
// 17, Sync, #908 Truncate(521008) in round 18, power cut: the gap shows the
// bytes the first truncate removed).
func TestBugCrashExposesTruncatedTailTruncateUp(t *testing.T) {
	forEachHolePolicy(t, func(t *testing.T, hp aiodio.HolePolicy) {
		d, v := newPlainSimVolume(t, 0, hp)
		f := openDirect(t, v, 0)
		writeDirectFill(t, f, 'x', 12288, 512000)
		if err := f.Truncate(515216); err != nil { // mid-block
			t.Fatal(err)
		}
		if err := v.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(521008); err != nil { // extends: [515216, 521008) must read zeros
			t.Fatal(err)
		}
		commitThroughOtherFile(t, v)
		h := crashAndReopen(t, d, v, hp)
		size, got := readPastTruncate(t, h, 515216, math.MaxInt64, "the truncate up did not survive (size %d)")
		if i := bytes.IndexFunc(got, func(r rune) bool { return r != 0 }); i >= 0 {
			t.Fatalf("after the crash (size %d): byte at %d, past the synced truncate to 515216, is %q: truncated data came back", size, 515216+i, got[i])
		}
	})
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
		for _, hp := range holePolicies {
			t.Run(fmt.Sprintf("%v-%dB-blocks", hp, bs), func(t *testing.T) {
				d, v := newPlainSimVolume(t, bs, hp)
				f, b := openPair(t, v, 0)
				writeDirectFill(t, f, 'x', 53248, 423936)
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
				commitThroughOtherFile(t, v)
				h := crashAndReopen(t, d, v, hp)
				size, got := readPastTruncate(t, h, 454816, math.MaxInt64, "the larger size did not survive (size %d)")
				if i := bytes.IndexByte(got, 'x'); i >= 0 {
					t.Fatalf("after the crash (size %d): byte at %d, past the synced truncate to 454816, is 'x': truncated data came back", size, 454816+i)
				}
			})
		}
	}
}
