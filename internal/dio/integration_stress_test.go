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

func integrationRound(t *testing.T, bs int, policy HolePolicy, round int) {
	const fileMax = 64 << 10
	dev := sim.New(sim.Options{Size: 16 << 20, Seed: int64(round), Completers: 2,
		Latency: 100 * time.Microsecond, LatencyJitter: true})
	defer dev.Close()
	dev.Poison(poison)
	if err := meta.Mkfs(dev, meta.MkfsOptions{BlockSize: bs}); err != nil {
		t.Fatal(err)
	}
	fs, err := meta.Mount(dev, meta.MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	ino, _, err := fs.Create("f", 0o644, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.SetSize(ino, fileMax); err != nil {
		t.Fatal(err)
	}
	e, err := New(dev, fs, Options{BlockSize: bs, HolePolicy: policy})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	in := NewInode(ino, fileMax, nil)
	pc := pagecache.New(pagecache.Options{Limit: 1 << 20})
	defer pc.Close()
	cf := pc.Open(&backing{fs: fs, dev: dev, in: in})
	in.cache = cf
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
		if bytes.Contains(got, poison[:4]) {
			t.Fatalf("bs %d policy %d round %d %s: poison read", bs, policy, round, what)
		}
		for i, v := range got {
			c := covering(off + int64(i))
			if bytes.IndexByte(c, v) < 0 && !(v == 0 && (!final || len(c) == 0)) {
				t.Fatalf("bs %d policy %d round %d %s: byte %d holds %d; covering writers %v",
					bs, policy, round, what, off+int64(i), v, c)
			}
		}
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, x := range ws {
		wg.Add(1)
		go func(id byte, x w) {
			defer wg.Done()
			<-start
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
		}(byte(i+1), x)
	}
	close(start)
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	for g := 0; g < 2; g++ {
		rwg.Add(1)
		go func(direct bool, seed uint64) {
			defer rwg.Done()
			rr := rand.New(rand.NewPCG(seed, 3))
			for {
				select {
				case <-stop:
					return
				default:
				}
				off := rr.Int64N(fileMax)
				got := make([]byte, 1+rr.IntN(8192))
				var k int
				var err error
				if direct {
					k, err = e.ReadAt(in, got, off, 0)
				} else {
					if err = in.Lock.RLock(ctx); err != nil {
						t.Error(err)
						return
					}
					k, err = cf.ReadAt(got[:min(len(got), int(fileMax-off))], off)
					in.Lock.RUnlock()
				}
				if err != nil && !errors.Is(err, io.EOF) {
					t.Errorf("read (direct %v): %v", direct, err)
					return
				}
				check(fmt.Sprintf("concurrent read (direct %v)", direct), got[:k], off, false)
			}
		}(g == 0, uint64(round*7+g))
	}
	wg.Wait()
	close(stop)
	rwg.Wait()
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
