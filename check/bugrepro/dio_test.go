package bugrepro

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
)

func newVolume(t *testing.T, o aiodio.Options) *aiodio.Volume {
	t.Helper()
	d := device.NewMemory(64<<20, 512)
	t.Cleanup(func() { d.Close() })
	v := mkfsOpen(t, d, 0, o)
	t.Cleanup(func() { v.Close() })
	return v
}

// newSimVolume is a volume on a poisoned sim device whose requests
// complete after a random latency, in random order.
func newSimVolume(t *testing.T, o aiodio.Options) *aiodio.Volume {
	t.Helper()
	d := sim.New(sim.Options{Size: 64 << 20, Seed: 1, Latency: 200 * time.Microsecond, LatencyJitter: true, Completers: 2})
	t.Cleanup(func() { d.Close() })
	d.Poison([]byte("PoIsOn-AiOdIo-\xde\xad"))
	v := mkfsOpen(t, d, 0, o)
	t.Cleanup(func() { v.Close() })
	return v
}

func pattern(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// TestBugUnalignedDirectWriteAfterSmallWrite: found by TestStressPoisonShm
// (seed 1795315361699663647, ops #1198 and #1215, in different rounds):
// truncate, a 16-byte direct write past EOF, then a direct write starting
// right after it at a sub-sector offset; the first bytes of the second write
// read back as zeros.
func TestBugUnalignedDirectWriteAfterSmallWrite(t *testing.T) {
	forEachHolePolicy(t, func(t *testing.T, hp aiodio.HolePolicy) {
		v := newVolume(t, aiodio.Options{HolePolicy: hp})
		f := openDirect(t, v, 0)
		defer f.Close()
		if err := f.Truncate(916416); err != nil {
			t.Fatal(err)
		}
		a := pattern(16, 'a')
		if _, err := f.WriteAt(a, 948480); err != nil {
			t.Fatal(err)
		}
		b := pattern(32768, 'b')
		if _, err := f.WriteAt(b, 948496); err != nil {
			t.Fatal(err)
		}
		got := mustReadFull(t, f, 16+32768, 948480, "")
		want := append(a, b...)
		if i := firstDiff(got, want); i >= 0 {
			t.Fatalf("byte at %d (offset %d) is %q, want %q", i, 948480+i, got[i], want[i])
		}
	})
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// TestBugStalePageAfterExtendingDirectWrite: found by TestStressPoisonShm
// (seed 1795315361699663647, ops #54 and #86): a buffered read of the page
// holding EOF, racing an extending direct write, leaves that page cached
// with the bytes past the OLD EOF zeroed; after the write has completed,
// buffered reads still return those zeros (I1, I5, seed 004).
func TestBugStalePageAfterExtendingDirectWrite(t *testing.T) {
	v := newVolume(t, aiodio.Options{})
	const iters = 300
	eachFreshPair(t, v, iters, func(i int, d, b *aiodio.File) {
		// EOF in the middle of the page [20480, 24576).
		if _, err := d.WriteAt(pattern(24096, 'a'), 0); err != nil {
			t.Fatal(err)
		}
		done := raceReads(b, 1536, 23552, 20)
		w := aiodio.AlignedBuffer(20480)
		copy(w, pattern(20480, 'b'))
		if _, err := d.WriteAt(w, 12288); err != nil { // extends to 32768
			t.Fatal(err)
		}
		<-done
		// The write completed before this read was issued: it must see it.
		got := mustReadFull(t, b, 8192, 20480, fmt.Sprintf("iteration %d: ", i))
		if j := firstDiff(got, pattern(8192, 'b')); j >= 0 {
			t.Fatalf("iteration %d: buffered read after the direct write completed: byte at offset %d is %q, want 'b' (stale cached page)", i, 20480+j, got[j])
		}
	})
}

// TestBugDirectWriteLostToDirtyPage: found by TestStressPoisonShm (seed 13,
// ops #523 and #538, in consecutive rounds): a buffered write dirties a
// page, then a small direct write to another part of that page completes;
// the direct write's bytes read back as zeros (directly and buffered), as if
// the stale dirty page was written back over them (I5).
func TestBugDirectWriteLostToDirtyPage(t *testing.T) {
	forEachHolePolicy(t, func(t *testing.T, hp aiodio.HolePolicy) {
		v := newVolume(t, aiodio.Options{HolePolicy: hp})
		eachFreshPair(t, v, 50, func(i int, d, b *aiodio.File) {
			if _, err := b.WriteAt(pattern(11456, 'a'), 2896); err != nil { // dirty [0, 16384)
				t.Fatal(err)
			}
			if _, err := d.WriteAt(pattern(64, 'b'), 15728); err != nil { // same page, other bytes
				t.Fatal(err)
			}
			for _, h := range []*aiodio.File{d, b} {
				got := mustReadFull(t, h, 64, 15728, fmt.Sprintf("iteration %d: ", i))
				if j := firstDiff(got, pattern(64, 'b')); j >= 0 {
					t.Fatalf("iteration %d: direct write lost: byte at %d is %q (read via %s handle)", i, 15728+j, got[j], handleKind(h, d))
				}
			}
		})
	})
}

// TestBugExtendingBufferedWriteZeroesDirectData: found by
// TestStressPoisonShm (seed 13 with buffered reads off: ops #538/#539 and
// #1347/#1351): EOF is in the middle of a page; a direct write extends the
// file inside that page while a buffered write extends it far past EOF. The
// buffered write zeroes the old EOF page's tail through the page cache with
// the page as it was before the direct write, and writes it back over the
// direct write's data: durable loss of a completed write.
func TestBugExtendingBufferedWriteZeroesDirectData(t *testing.T) {
	forEachHolePolicy(t, func(t *testing.T, hp aiodio.HolePolicy) {
		v := newVolume(t, aiodio.Options{HolePolicy: hp})
		eachFreshPair(t, v, 300, func(i int, d, b *aiodio.File) {
			if _, err := b.WriteAt(pattern(14352, 'a'), 0); err != nil { // EOF at 14352, in page [12288,16384)
				t.Fatal(err)
			}
			if err := b.Sync(); err != nil {
				t.Fatal(err)
			}
			done := goWriteAt(b, pattern(4096, 'c'), 27104)               // extends far past EOF
			if _, err := d.WriteAt(pattern(64, 'b'), 15728); err != nil { // extends inside the EOF page
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if err := b.Sync(); err != nil {
				t.Fatal(err)
			}
			got := mustReadFull(t, d, 64, 15728, fmt.Sprintf("iteration %d: ", i))
			if j := firstDiff(got, pattern(64, 'b')); j >= 0 {
				t.Fatalf("iteration %d: completed direct write lost: byte at %d is %q after Sync (direct read)", i, 15728+j, got[j])
			}
		})
	})
}

// TestBugBufferedWriteResurrectsStalePage: found by TestStressPoisonShm
// with -check.fixedsize (EOF never moves; seed 2: #495 buffered write in
// round 10, then #553 buffered write [1044480,1045504) racing #554 direct
// write [1044480,1048576) in round 11): a page is cached and dirty; a direct
// write of the whole page races a buffered write of its first KiB. After
// both complete (and Sync), the bytes only the direct write wrote hold the
// OLD buffered data: the buffered write re-dirtied the cached page (old
// content) around the direct write's writeback+invalidate, and that page
// was written back over the direct data. No EOF involved.
func TestBugBufferedWriteResurrectsStalePage(t *testing.T) {
	forEachHolePolicy(t, func(t *testing.T, hp aiodio.HolePolicy) {
		v := newSimVolume(t, aiodio.Options{HolePolicy: hp})
		d, b := openPair(t, v, 0)
		defer d.Close()
		defer b.Close()
		if err := d.Truncate(1 << 20); err != nil {
			t.Fatal(err)
		}
		w := aiodio.AlignedBuffer(4096)
		for i := 0; i < 200; i++ {
			old := byte('a' + i%2)
			if _, err := b.WriteAt(pattern(8192, old), 1040384); err != nil { // cached, dirty
				t.Fatal(err)
			}
			done := goWriteAt(b, pattern(1024, 'c'), 1044480)
			copy(w, pattern(4096, 'B'))
			if _, err := d.WriteAt(w, 1044480); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if err := b.Sync(); err != nil {
				t.Fatal(err)
			}
			got := mustReadFull(t, d, 3072, 1045504, fmt.Sprintf("iteration %d: ", i))
			if j := firstDiff(got, pattern(3072, 'B')); j >= 0 {
				t.Fatalf("iteration %d: byte at %d is %q: only the completed direct write ('B') wrote there since the buffered write of %q", i, 1045504+j, got[j], old)
			}
		}
	})
}

// TestBugStalePageAfterDirectOverwrite: BUG-2 without EOF. Found by
// TestStressPoisonShm/Sim with -check.fixedsize and buffered writes off
// (e.g. #1690 direct write [633888,658464) in round 35, later reads return
// round 2's data). A buffered read racing a direct overwrite of allocated
// blocks inside the file fills the page from the device before the direct
// data lands and inserts it after (or despite) the end-I/O invalidation:
// after the write completed, buffered reads return the old data.
func TestBugStalePageAfterDirectOverwrite(t *testing.T) {
	v := newSimVolume(t, aiodio.Options{})
	d, b := openPair(t, v, 0)
	defer d.Close()
	defer b.Close()
	w := aiodio.AlignedBuffer(16384)
	if _, err := d.WriteAt(w, 0); err != nil { // allocated and written
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		want := pattern(16384, byte('A'+i%26))
		copy(w, want)
		done := raceReads(b, 4096, 4096, 5)
		if _, err := d.WriteAt(w, 0); err != nil {
			t.Fatal(err)
		}
		<-done
		got := mustReadFull(t, b, 16384, 0, fmt.Sprintf("iteration %d: ", i))
		if j := firstDiff(got, want); j >= 0 {
			t.Fatalf("iteration %d: buffered read after the direct overwrite completed: byte at %d is %q, want %q (stale cached page)", i, j, got[j], want[j])
		}
	}
}
