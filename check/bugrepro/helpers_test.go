package bugrepro

import (
	"bytes"
	"os"
	"syscall"
	"testing"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
)

// holePolicies are the hole policies the reproductions run with.
var holePolicies = []aiodio.HolePolicy{aiodio.Unwritten, aiodio.BufferedFallback}

// forEachHolePolicy runs f as a subtest, named after the policy, for every
// hole policy.
func forEachHolePolicy(t *testing.T, f func(t *testing.T, hp aiodio.HolePolicy)) {
	t.Helper()
	for _, hp := range holePolicies {
		t.Run(hp.String(), func(t *testing.T) { f(t, hp) })
	}
}

// mkfsOpen makes a volume on d (block size bs, 0: the default) and opens it
// with o; the caller closes it.
func mkfsOpen(t *testing.T, d device.Device, bs int, o aiodio.Options) *aiodio.Volume {
	t.Helper()
	if err := aiodio.MkfsDevice(d, aiodio.MkfsOptions{BlockSize: bs}); err != nil {
		t.Fatal(err)
	}
	v, err := aiodio.OpenDevice(d, o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// newPlainSimVolume is a volume (block size bs, 0: the default) on a sim
// device with neither latency nor poison, closed when the test ends; the
// caller closes the volume (a crash test closes it before remounting).
func newPlainSimVolume(t *testing.T, bs int, hp aiodio.HolePolicy) (*sim.Device, *aiodio.Volume) {
	t.Helper()
	d := sim.New(sim.Options{Size: 64 << 20, Seed: 1})
	t.Cleanup(func() { d.Close() })
	return d, mkfsOpen(t, d, bs, aiodio.Options{HolePolicy: hp})
}

// mustOpen opens name on v, failing the test on an error.
func mustOpen(t *testing.T, v *aiodio.Volume, name string, flag int, perm os.FileMode) *aiodio.File {
	t.Helper()
	f, err := v.OpenFile(name, flag, perm)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// openDirect opens (creating it) "f" on v for direct I/O, with the extra
// open flags flag (e.g. os.O_TRUNC).
func openDirect(t *testing.T, v *aiodio.Volume, flag int) *aiodio.File {
	t.Helper()
	return mustOpen(t, v, "f", os.O_RDWR|os.O_CREATE|syscall.O_DIRECT|flag, 0o644)
}

// openPair opens "f" on v twice: d for direct I/O (created, with the extra
// open flags flag) and b buffered. The caller closes both.
func openPair(t *testing.T, v *aiodio.Volume, flag int) (d, b *aiodio.File) {
	t.Helper()
	d = openDirect(t, v, flag)
	return d, mustOpen(t, v, "f", os.O_RDWR, 0)
}

// handleKind names the handle h of a direct/buffered pair for messages.
func handleKind(h, direct *aiodio.File) string {
	if h == direct {
		return "direct"
	}
	return "buffered"
}

// writeDirectFill writes n bytes of c at off through f, from an aligned
// buffer.
func writeDirectFill(t *testing.T, f *aiodio.File, c byte, n int, off int64) {
	t.Helper()
	w := aiodio.AlignedBuffer(n)
	copy(w, bytes.Repeat([]byte{c}, len(w)))
	if _, err := f.WriteAt(w, off); err != nil {
		t.Fatal(err)
	}
}

// commitThroughOtherFile writes a byte to a new file "g" and syncs it: the
// (group) commit that makes the other files' sizes durable too.
func commitThroughOtherFile(t *testing.T, v *aiodio.Volume) {
	t.Helper()
	g := mustOpen(t, v, "g", os.O_RDWR|os.O_CREATE, 0o644)
	if _, err := g.WriteAt([]byte("z"), 0); err != nil {
		t.Fatal(err)
	}
	if err := g.Sync(); err != nil { // (group) commit
		t.Fatal(err)
	}
}

// crashAndReopen cuts the power of d (only what was flushed survives),
// closes v, remounts the crashed device with hole policy hp and opens "f"
// read-only on it. All of it is closed when the test ends.
func crashAndReopen(t *testing.T, d *sim.Device, v *aiodio.Volume, hp aiodio.HolePolicy) *aiodio.File {
	t.Helper()
	nd := d.Crash(sim.CrashOptions{}) // only what was flushed survives
	t.Cleanup(func() { nd.Close() })
	v.Close()
	v2, err := aiodio.OpenDevice(nd, aiodio.Options{HolePolicy: hp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v2.Close() })
	h := mustOpen(t, v2, "f", os.O_RDONLY, 0)
	t.Cleanup(func() { h.Close() })
	return h
}

// readPastTruncate reads [off, min(size, end)) of h, the range past a synced
// truncate to off, after a crash. It skips the test (skip, formatted with
// the size, says why) when the size that survived does not reach past off:
// then nothing can be exposed.
func readPastTruncate(t *testing.T, h *aiodio.File, off, end int64, skip string) (size int64, got []byte) {
	t.Helper()
	fi, _ := h.Stat()
	size = fi.Size()
	if size <= off {
		t.Skipf(skip, size)
	}
	got = make([]byte, min(size, end)-off)
	n, err := h.ReadAt(got, off)
	if n != len(got) {
		t.Fatalf("after the crash: size %d, read %d, %v", size, n, err)
	}
	return size, got
}

// mustReadFull reads n bytes at off through h, failing the test (the
// message prefixed with what) unless all of them were read without error.
func mustReadFull(t *testing.T, h *aiodio.File, n int, off int64, what string) []byte {
	t.Helper()
	got := make([]byte, n)
	if k, err := h.ReadAt(got, off); err != nil || k != n {
		t.Fatalf("%sread %d, %v", what, k, err)
	}
	return got
}

// raceReads reads n bytes at off through h times times in a goroutine, to
// race a write; any result is fine. The channel is closed when it is done.
func raceReads(h *aiodio.File, n int, off int64, times int) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, n)
		for j := 0; j < times; j++ {
			h.ReadAt(buf, off) // races the write; any result is fine here
		}
	}()
	return done
}

// goWriteAt writes p at off through h in a goroutine, to race another
// write; the channel gets its error.
func goWriteAt(h *aiodio.File, p []byte, off int64) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := h.WriteAt(p, off)
		done <- err
	}()
	return done
}

// eachFreshPair runs f iters times, each time with "f" opened afresh on v
// (truncated) as a direct/buffered pair (openPair), closing both after it.
func eachFreshPair(t *testing.T, v *aiodio.Volume, iters int, f func(i int, d, b *aiodio.File)) {
	t.Helper()
	for i := 0; i < iters; i++ {
		d, b := openPair(t, v, os.O_TRUNC)
		f(i, d, b)
		d.Close()
		b.Close()
	}
}
