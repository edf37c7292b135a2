package dio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
	"github.com/aiodio/aiodio/internal/alignbuf"
)

// TestConcurrentWritersNoLossNoStale (I1, I4, I6, I8): concurrent direct
// writers — aligned and not, sub-block and multi-block, into holes,
// unwritten and written blocks, extending the file and leaving gaps past
// EOF — each with its own byte value, with concurrent readers, on a
// poisoned sim device completing in a seeded random order (and, in half
// the rounds, completing every request short). Readers never see poison
// and every byte they see is 0 or the value of a writer covering it; at
// the end every byte covered by some writer holds one of those writers'
// values, every other byte inside the size is 0, and the size is the
// largest end written.
func TestConcurrentWritersNoLossNoStale(t *testing.T) {
	const fileMax = 96 << 10
	rounds := 12
	if raceEnabled {
		rounds = 6
	}
	for round := 0; round < rounds; round++ {
		// Latency keeps the writers in flight together.
		dev := sim.New(sim.Options{Size: testDevSize, SectorSize: 512, Seed: int64(round), Completers: 2,
			Latency: 200 * time.Microsecond, LatencyJitter: true})
		dev.Poison(poison)
		var d device.Device = dev
		if round%2 == 1 {
			d = &shortDev{Device: dev, ss: 512}
		}
		ext := newFakeExtents(firstDev, testDevSize/testBS)
		e, err := New(d, ext, Options{BlockSize: testBS})
		if err != nil {
			t.Fatal(err)
		}
		// The first third of the file exists (written zeros): overwrites,
		// and NOWAIT writes that can succeed.
		const pre = 8
		in := NewInode(testIno, pre*testBS, nil)
		ext.setWritten(testIno, 0, pre, pre*testBS)
		for b := int64(0); b < pre; b++ {
			dev.WriteRaw(ext.devBlock(testIno, b)*testBS, make([]byte, testBS))
		}
		type w struct {
			off int64
			n   int
		}
		rng := rand.New(rand.NewPCG(uint64(round), 99))
		ws := make([]w, 40)
		for i := range ws {
			off := rng.Int64N(fileMax - 1)
			switch rng.IntN(3) {
			case 0:
				off &^= testBS - 1
			case 1:
				off &^= 511
			}
			n := 1 + rng.IntN(min(3*testBS, int(fileMax-off)))
			if rng.IntN(2) == 0 {
				n = min((n+511)&^511, int(fileMax-off))
			}
			ws[i] = w{off, n}
		}
		var nrefused atomic.Int32 // NOWAIT writes refused with EAGAIN
		covering := func(b int64) []byte {
			var c []byte
			for i, x := range ws {
				if x.off <= b && b < x.off+int64(x.n) {
					c = append(c, byte(i+1))
				}
			}
			return c
		}
		checkBytes := func(what string, got []byte, off int64, final bool) {
			t.Helper()
			checkWriterBytes(t, fmt.Sprintf("round %d %s", round, what), got, off, final, covering)
		}
		write := func(i int) {
			id, x := byte(i+1), ws[i]
			buf := bytes.Repeat([]byte{id}, x.n)
			if id%3 == 0 { // misaligned memory
				buf = alignbuf.Alloc(x.n + 1)[1:]
				for k := range buf {
					buf[k] = id
				}
			}
			flags := uint32(0)
			if id%4 == 0 {
				flags = NoWait
			}
			// Async, through an Op whose completions are counted
			// (exactly once, I2), and never completed when refused.
			var calls atomic.Int32
			done := make(chan struct{}, 2)
			op := &Op{Inode: in, Buf: buf, Off: x.off, Flags: flags, Done: func(*Op) {
				calls.Add(1)
				done <- struct{}{}
			}}
			err := e.Write(op)
			if flags != 0 && errors.Is(err, syscall.EAGAIN) {
				// Refused without side effects; retry blocking
				// (what io_uring does with a NOWAIT EAGAIN).
				nrefused.Add(1)
				op.Flags = 0
				err = e.Write(op)
			}
			k := 0
			if err == nil {
				<-done
				k, err = op.N, op.Err
			}
			yield()
			if c := calls.Load(); err == nil && c != 1 || err != nil && c != 0 {
				t.Errorf("write %d: Done called %d times (Write returned %v)", id, c, err)
			}
			if k != x.n || err != nil {
				t.Errorf("write %d: %d, %v", id, k, err)
			}
		}
		newReader := func(g int) (step func() bool) {
			rr := rand.New(rand.NewPCG(uint64(round*10+g), 5))
			return func() bool {
				off := rr.Int64N(fileMax)
				n := 1 + rr.IntN(2*testBS)
				got := make([]byte, n)
				k, err := e.ReadAt(in, got, off, 0)
				if err != nil && !errors.Is(err, io.EOF) {
					t.Errorf("read: %v", err)
					return false
				}
				checkBytes("concurrent read", got[:k], off, false)
				return true
			}
		}
		raceWritersReaders(len(ws), 2, write, newReader)
		want := int64(pre * testBS)
		for _, x := range ws {
			want = max(want, x.off+int64(x.n))
		}
		t.Logf("round %d: %d of %d NOWAIT writes refused", round, nrefused.Load(), len(ws)/4)
		if in.Size() != want || ext.size(testIno) != want {
			t.Fatalf("round %d: size %d (meta %d), want %d", round, in.Size(), ext.size(testIno), want)
		}
		got := make([]byte, want)
		if k, err := e.ReadAt(in, got, 0, 0); k != len(got) || (err != nil && !errors.Is(err, io.EOF)) {
			t.Fatalf("final read: %d, %v", k, err)
		}
		checkBytes("final read", got, 0, true)
		e.Close()
		dev.Close()
	}
}
