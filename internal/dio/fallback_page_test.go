package dio

import (
	"bytes"
	"testing"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
	"github.com/aiodio/aiodio/internal/pagecache"
)

// TestFallbackRemainderAfterInvalidation (I5, I4; seeds 001, 004): with
// blocks smaller than pages, the direct part of a BufferedFallback write may
// end inside a page. A buffered reader that fills that page while the
// direct part is in flight caches the old bytes of the direct part; the
// buffered remainder must not be written into that stale page (its
// write-back would put the old bytes back over the direct data), so the
// direct part's range is invalidated once it completed, before the
// remainder goes through the cache.
//
// Checked by hand: invalidating only after the remainder (the previous
// order) makes the direct read at the end return the old bytes.
func TestFallbackRemainderAfterInvalidation(t *testing.T) {
	const bs = 1024
	dev := sim.New(sim.Options{Size: 32 << 20, Seed: 7})
	defer dev.Close()
	st := newMetaStack(t, dev, bs, BufferedFallback, 0)
	defer st.close()
	fs, ino, e, in, cf := st.fs, st.ino, st.e, st.in, st.cf

	// Blocks 0 and 1 written with 'o'; blocks 2 and 3 a hole inside the size.
	if n, err := e.WriteAt(in, bytes.Repeat([]byte{'o'}, 2*bs), 0, 0); n != 2*bs || err != nil {
		t.Fatalf("prepare: %d, %v", n, err)
	}
	if err := fs.SetSize(ino, 4*bs); err != nil {
		t.Fatal(err)
	}
	in.GrowSize(4 * bs)

	// The direct part [0, 2048) is held on the device.
	dev.HoldIf(func(r *device.Request) bool { return r.Kind == device.Write })
	data := bytes.Repeat([]byte{'N'}, 4*bs)
	werr := make(chan error, 1)
	go func() {
		n, err := e.WriteAt(in, data, 0, 0)
		if err == nil && n != len(data) {
			err = errShort
		}
		werr <- err
	}()
	ps, err := dev.WaitHeld(ctxT(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	dev.HoldIf(nil)
	// A buffered reader fills page 0 meanwhile: old 'o' bytes, then zeros.
	page := make([]byte, pagecache.PageSize)
	if _, err := cf.ReadAt(page, 0); err != nil {
		t.Fatal(err)
	}
	if page[0] != 'o' {
		t.Fatalf("setup: buffered read saw %q", page[:1])
	}
	for _, p := range ps {
		dev.Release(p)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4*bs)
	if n, err := e.ReadAt(in, got, 0, 0); n != len(got) || err != nil {
		t.Fatalf("read back: %d, %v", n, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("after the write: [0,4) = %q, [2048,2052) = %q; want all 'N'", got[:4], got[2*bs:2*bs+4])
	}
}
