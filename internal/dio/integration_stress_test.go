package dio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
	"github.com/aiodio/aiodio/internal/alignbuf"
	"github.com/aiodio/aiodio/internal/meta"
	"github.com/aiodio/aiodio/internal/pagecache"
)

// TestIntegrationConcurrentDirectBuffered (I1, I5, I6, I4): concurrent
// direct writes (aligned, sub-block, partial-sector) and buffered writes
// (taken like the root package does: inode lock exclusive, drain), with
// buffered and direct readers, over the real metadata engine and page cache
// on a poisoned sim device with latency, for blocks smaller than and equal
// to pages and both hole policies, in a presized sparse file (holes inside
// the size: BufferedFallback's fallback runs). Readers never see poison and
// every byte they see is 0 or from a writer covering it; at the end every
// covered byte holds one of its writers' values and the rest is zero, read
// both directly and through the cache.
func TestIntegrationConcurrentDirectBuffered(t *testing.T) {
	for _, bs := range []int{1024, 4096} {
		for _, policy := range []HolePolicy{Unwritten, BufferedFallback} {
			t.Run(fmt.Sprintf("bs%d/policy%d", bs, policy), func(t *testing.T) {
				for round := 0; round < 3; round++ {
					integrationRound(t, bs, policy, round)
				}
			})
		}
	}
}

// metaStack is the real stack under the integration tests: a new meta
// volume with one file "f", an Engine over it and a page cache in front of
// the file's inode.
type metaStack struct {
	fs  *meta.FS
	ino meta.Ino
	e   *Engine
	in  *Inode
	pc  *pagecache.Cache
	cf  *pagecache.File
}

// newMetaStack makes a meta volume of block size bs on dev, creates "f" in
// it (its size set to size if that is not 0) and opens the engine (hole
// policy policy) and the page cache over it. The caller closes it (not
// dev); on a failure, what was opened is closed.
func newMetaStack(t *testing.T, dev device.Device, bs int, policy HolePolicy, size int64) *metaStack {
	t.Helper()
	s := &metaStack{}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	if err := meta.Mkfs(dev, meta.MkfsOptions{BlockSize: bs}); err != nil {
		t.Fatal(err)
	}
	var err error
	if s.fs, err = meta.Mount(dev, meta.MountOptions{}); err != nil {
		t.Fatal(err)
	}
	if s.ino, _, err = s.fs.Create("f", 0o644, true); err != nil {
		t.Fatal(err)
	}
	if size != 0 {
		if err := s.fs.SetSize(s.ino, size); err != nil {
			t.Fatal(err)
		}
	}
	if s.e, err = New(dev, s.fs, Options{BlockSize: bs, HolePolicy: policy}); err != nil {
		t.Fatal(err)
	}
	s.in = NewInode(s.ino, size, nil)
	s.pc = pagecache.New(pagecache.Options{Limit: 1 << 20})
	s.cf = s.pc.Open(&backing{fs: s.fs, dev: dev, in: s.in})
	s.in.cache = s.cf
	ok = true
	return s
}

// close closes the page cache, the engine and the meta volume, in that
// order (what was opened of them).
func (s *metaStack) close() {
	if s.pc != nil {
		s.pc.Close()
	}
	if s.e != nil {
		s.e.Close()
	}
	if s.fs != nil {
		s.fs.Close()
	}
}

// checkWriterBytes fails the test if got, read at off, holds poison or a
// byte that no writer covering it wrote (covering returns their ids, the
// bytes they write); a 0 passes where no writer covers the byte, or
// anywhere while the writes may still be in flight (!final). what names
// the read in the messages.
func checkWriterBytes(t *testing.T, what string, got []byte, off int64, final bool, covering func(b int64) []byte) {
	t.Helper()
	if bytes.Contains(got, poison[:4]) {
		t.Fatalf("%s: poison read", what)
	}
	for i, v := range got {
		c := covering(off + int64(i))
		if bytes.IndexByte(c, v) < 0 && !(v == 0 && (!final || len(c) == 0)) {
			t.Fatalf("%s: byte %d holds %d; covering writers %v (final %v)", what, off+int64(i), v, c, final)
		}
	}
}

// raceWritersReaders runs write(i) for every i < writers, each in its own
// goroutine, all released together, and, once they are released, readers
// goroutines that each run the step newReader(g) returns over and over,
// until the writers are all done or the step returns false. It returns
// when every writer and reader has stopped.
func raceWritersReaders(writers, readers int, write func(i int), newReader func(g int) (step func() bool)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			write(i)
		}()
	}
	close(start)
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	for g := 0; g < readers; g++ {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			step := newReader(g)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !step() {
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rwg.Wait()
}

func integrationRound(t *testing.T, bs int, policy HolePolicy, round int) {
	const fileMax = 64 << 10
	dev := sim.New(sim.Options{Size: 16 << 20, Seed: int64(round), Completers: 2,
		Latency: 100 * time.Microsecond, LatencyJitter: true})
	defer dev.Close()
	dev.Poison(poison)
	st := newMetaStack(t, dev, bs, policy, fileMax)
	defer st.close()
	e, in, cf := st.e, st.in, st.cf
	ctx := context.Background()

	type w struct {
		off      int64
		n        int
		buffered bool
	}
	rng := rand.New(rand.NewPCG(uint64(round), uint64(bs)))
	ws := make([]w, 24)
	for i := range ws {
		x := w{buffered: i%3 == 2}
		x.off = rng.Int64N(fileMax - 1)
		x.n = 1 + rng.IntN(min(3*4096, int(fileMax-x.off)))
		if !x.buffered && rng.IntN(4) != 0 { // mostly sector-aligned direct I/O
			x.off &^= 511
			x.n = min((x.n+511)&^511, int(fileMax-x.off))
		}
		ws[i] = x
	}
	// refused[id]: the direct write failed its first invalidation (EBUSY:
	// a page of its range was dirtied by a concurrent buffered fallback) and
	// was refused before anything was submitted (I5): its bytes must never
	// appear.
	refused := make([]atomic.Bool, len(ws)+1)
	covering := func(b int64) []byte {
		var c []byte
		for i, x := range ws {
			if refused[i+1].Load() {
				continue
			}
			if x.off <= b && b < x.off+int64(x.n) {
				c = append(c, byte(i+1))
			}
		}
		return c
	}
	check := func(what string, got []byte, off int64, final bool) {
		t.Helper()
		checkWriterBytes(t, fmt.Sprintf("bs %d policy %d round %d %s", bs, policy, round, what), got, off, final, covering)
	}
	write := func(i int) {
		id, x := byte(i+1), ws[i]
		buf := alignbuf.Alloc(x.n)
		for k := range buf {
			buf[k] = id
		}
		var n int
		var err error
		if x.buffered {
			if err = in.Lock.Lock(ctx); err != nil {
				t.Error(err)
				return
			}
			if err = in.DIO.Wait(ctx); err == nil {
				n, err = cf.WriteAt(buf, x.off)
			}
			in.Lock.Unlock()
		} else {
			n, err = e.WriteAt(in, buf, x.off, 0)
			if n == 0 && errors.Is(err, syscall.EBUSY) {
				refused[id].Store(true)
				return
			}
		}
		if n != x.n || err != nil {
			t.Errorf("write %d (buffered %v) %d@%d: %d, %v", id, x.buffered, x.n, x.off, n, err)
		}
	}
	newReader := func(g int) (step func() bool) {
		direct, rr := g == 0, rand.New(rand.NewPCG(uint64(round*7+g), 3))
		return func() bool {
			off := rr.Int64N(fileMax)
			got := make([]byte, 1+rr.IntN(8192))
			var k int
			var err error
			if direct {
				k, err = e.ReadAt(in, got, off, 0)
			} else {
				if err = in.Lock.RLock(ctx); err != nil {
					t.Error(err)
					return false
				}
				k, err = cf.ReadAt(got[:min(len(got), int(fileMax-off))], off)
				in.Lock.RUnlock()
			}
			if err != nil && !errors.Is(err, io.EOF) {
				t.Errorf("read (direct %v): %v", direct, err)
				return false
			}
			check(fmt.Sprintf("concurrent read (direct %v)", direct), got[:k], off, false)
			return true
		}
	}
	raceWritersReaders(len(ws), 2, write, newReader)
	all := make([]byte, fileMax)
	if k, err := e.ReadAt(in, all, 0, 0); k != fileMax || (err != nil && !errors.Is(err, io.EOF)) {
		t.Fatalf("final direct read: %d, %v", k, err)
	}
	check("final direct read", all, 0, true)
	if k, err := cf.ReadAt(all, 0); k != fileMax || err != nil {
		t.Fatalf("final buffered read: %d, %v", k, err)
	}
	check("final buffered read", all, 0, true)
	if err := cf.Close(); err != nil {
		t.Fatal(err)
	}
}
