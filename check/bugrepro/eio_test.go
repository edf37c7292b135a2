package bugrepro

import (
	"bytes"
	"os"
	"syscall"
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
			defer v.Close()
			f, err := v.OpenFile("f", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b, err := v.OpenFile("f", os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			w := aiodio.AlignedBuffer(65536)
			copy(w, bytes.Repeat([]byte{'x'}, len(w)))
			if _, err := f.WriteAt(w, 0); err != nil {
				t.Fatal(err)
			}
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
			got := make([]byte, 65536-35744)
			for _, h := range []*aiodio.File{f, b} {
				if n, err := h.ReadAt(got, 35744); err != nil || n != len(got) {
					t.Fatalf("read %d, %v", n, err)
				}
				if i := bytes.IndexByte(got, 'x'); i >= 0 {
					t.Fatalf("byte at %d is 'x' (read %s): punched data came back after a failed zero-range (%v)", 35744+i, map[bool]string{true: "direct", false: "buffered"}[h == f], zerr)
				}
			}
		})
	}
}
