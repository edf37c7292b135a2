package dio

import (
	"bytes"
	"sync"
	"testing"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
	"github.com/aiodio/aiodio/internal/alignbuf"
)

// shortDev wraps a device and completes every request of at least two
// sectors short, without error: only its first half (whole sectors) moves.
// It logs every range it hands to the device below.
type shortDev struct {
	device.Device
	ss int
	// mu protects log and shortened.
	mu        sync.Mutex
	log       []xfer
	shortened int
}

type xfer struct {
	kind device.Kind
	off  int64
	n    int
}

func (s *shortDev) Submit(reqs ...*device.Request) (int, error) {
	for i, r := range reqs {
		fwd := r
		if n := r.Len(); r.Kind != device.Flush && r.Bufs == nil && n >= 2*s.ss {
			half := (n / 2) &^ (s.ss - 1)
			outer := r
			fwd = &device.Request{Kind: r.Kind, Off: r.Off, Buf: r.Buf[:half], Done: func(ir *device.Request) {
				outer.N, outer.Err = ir.N, ir.Err
				outer.Done(outer)
			}}
			s.mu.Lock()
			s.shortened++
			s.mu.Unlock()
		}
		s.mu.Lock()
		s.log = append(s.log, xfer{fwd.Kind, fwd.Off, fwd.Len()})
		s.mu.Unlock()
		if _, err := s.Device.Submit(fwd); err != nil {
			return i, err
		}
	}
	return len(reqs), nil
}

// TestShortTransferResubmitsRemainder (I4): a device request that
// completes short without error is continued from the exact byte where it
// stopped: every byte is written once, the op's count is exact, and the
// data is right — for async data requests, reads, and the synchronous
// EOF-tail zeroing.
//
// Checked by hand: without resubmitShort (requestDone failing the op with
// errShort) the first write fails with EIO.
func TestShortTransferResubmitsRemainder(t *testing.T) {
	dev := sim.New(sim.Options{Size: testDevSize, SectorSize: 512, Seed: 3})
	dev.Poison(poison)
	sd := &shortDev{Device: dev, ss: 512}
	ext := newFakeExtents(firstDev, testDevSize/testBS)
	e, err := New(sd, ext, Options{BlockSize: testBS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); dev.Close() })
	in := NewInode(testIno, 0, nil)

	data := pattern(4*testBS, 11)
	buf := alignbuf.Alloc(len(data))
	copy(buf, data)
	if n, err := e.WriteAt(in, buf, 0, 0); n != len(buf) || err != nil {
		t.Fatalf("write: %d, %v; want %d, nil", n, err, len(buf))
	}
	if in.Size() != int64(len(buf)) {
		t.Fatalf("size %d after the write", in.Size())
	}
	// Every device byte written exactly once.
	sd.mu.Lock()
	written := map[int64]int{}
	for _, x := range sd.log {
		if x.kind == device.Write {
			for b := x.off; b < x.off+int64(x.n); b++ {
				written[b]++
			}
		}
	}
	shortened := sd.shortened
	sd.mu.Unlock()
	if shortened == 0 {
		t.Fatal("the wrapper shortened nothing: the test proves nothing")
	}
	if len(written) != len(buf) {
		t.Fatalf("%d device bytes written, want %d", len(written), len(buf))
	}
	for off, c := range written {
		if c != 1 {
			t.Fatalf("device byte %d written %d times", off, c)
		}
	}
	got := alignbuf.Alloc(len(data))
	if n, err := e.ReadAt(in, got, 0, 0); n != len(got) || err != nil {
		t.Fatalf("read: %d, %v", n, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data read back differs")
	}

	// EOF-tail zeroing (synchronous requests) after a truncate to 300.
	in.Lock.TryLock()
	in.SetSizeLocked(300)
	in.Lock.Unlock()
	if n, err := e.WriteAt(in, []byte("x"), 3*testBS+7, 0); n != 1 || err != nil {
		t.Fatalf("write past EOF: %d, %v", n, err)
	}
	if n, err := e.ReadAt(in, got[:testBS], 0, 0); n != testBS || err != nil {
		t.Fatalf("read: %d, %v", n, err)
	}
	if !bytes.Equal(got[:300], data[:300]) || !bytes.Equal(got[300:testBS], make([]byte, testBS-300)) {
		t.Fatal("block 0 after EOF-tail zeroing: wrong data or stale tail")
	}
}
