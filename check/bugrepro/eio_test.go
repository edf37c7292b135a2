package bugrepro

import (
	"bytes"
	"testing"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/device/sim"
	"golang.org/x/sys/unix"
)

// TestBugFailedZeroRangeResurrectsPunchedData: found by TestStressEIOSim
// (seed 52, 1 file of 64 KiB, 6 workers: #1070 punch [35744,65536)
// completed, #1072 zero-range [30336,54912) failed with an injected read
// EIO ("zero partial page at offset 28672"), then a direct read returned
// the data from before the punch at 36144). Sequence: 64 KiB written
// directly; a buffered read caches [32768,43008); punch [35744,65536)
// (reads zeros afterwards, checked through the cache: a direct read would
// write the dirty page back and hide the bug); zero-range [30336,54912) fails with
// EIO reading the partial page at 28672 (not cached); after it, reads of
// the punched range return the old bytes again: the failed zero-range
// dropped the cached page that held the punch's zeroing of the partial
// block [35744,36864) without writing it back (or the punch had only
// zeroed it in the cache).
func TestBugFailedZeroRangeResurrectsPunchedData(t *testing.T) {
	forEachHolePolicy(t, func(t *testing.T, hp aiodio.HolePolicy) {
		d, v := newPlainSimVolume(t, 0, hp)
		defer v.Close()
		f, b := openPair(t, v, 0)
		defer f.Close()
		defer b.Close()
		writeDirectFill(t, f, 'x', 65536, 0)
		// Cache some pages of the range (buffered read), as in the stress.
		if _, err := b.ReadAt(make([]byte, 10240), 32768); err != nil {
			t.Fatal(err)
		}
		if err := f.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 35744, 65536-35744); err != nil {
			t.Fatal(err)
		}
		before := make([]byte, 65536-35744)
		if n, err := b.ReadAt(before, 35744); err != nil || n != len(before) || bytes.IndexByte(before, 'x') >= 0 {
			t.Fatalf("after the punch, before the zero-range: read %d, %v, 'x' at %d", n, err, bytes.IndexByte(before, 'x'))
		}
		inj := d.Inject(sim.Fault{Ops: sim.OpRead})
		zerr := b.Fallocate(unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, 30336, 24576)
		inj.Remove()
		t.Logf("zero-range with read EIO: %v", zerr)
		for _, h := range []*aiodio.File{f, b} {
			got := mustReadFull(t, h, 65536-35744, 35744, "")
			if i := bytes.IndexByte(got, 'x'); i >= 0 {
				t.Fatalf("byte at %d is 'x' (read %s): punched data came back after a failed zero-range (%v)", 35744+i, handleKind(h, f), zerr)
			}
		}
	})
}
