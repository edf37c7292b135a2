package dio

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/alignbuf"
	"github.com/aiodio/aiodio/internal/meta"
	"github.com/aiodio/aiodio/internal/pagecache"
)

// BenchmarkParallel4K: random 4 KiB direct overwrites and reads of a
// written file from 32 goroutines on the RAM device over the real metadata
// engine, with and without the real page cache attached (empty: only the
// coherence calls of step 3 cost). Shows what the direct path adds per op.
func BenchmarkParallel4K(b *testing.B) {
	for _, write := range []bool{false, true} {
		for _, cached := range []bool{false, true} {
			name := "read"
			if write {
				name = "overwrite"
			}
			if cached {
				name += "/pagecache"
			} else {
				name += "/nocache"
			}
			b.Run(name, func(b *testing.B) { benchParallel(b, write, cached) })
		}
	}
}

func benchParallel(b *testing.B, write, cached bool) {
	const blocks = 4096
	dev := device.NewMemory(64<<20, 512)
	defer dev.Close()
	if err := meta.Mkfs(dev, meta.MkfsOptions{}); err != nil {
		b.Fatal(err)
	}
	fs, err := meta.Mount(dev, meta.MountOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer fs.Close()
	ino, _, err := fs.Create("f", 0o644, true)
	if err != nil {
		b.Fatal(err)
	}
	if err := fs.AllocUnwritten(ino, 0, blocks); err != nil {
		b.Fatal(err)
	}
	if err := fs.ConvertWritten(ino, 0, blocks, blocks*testBS); err != nil {
		b.Fatal(err)
	}
	e, err := New(dev, fs, Options{BlockSize: fs.BlockSize()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	in := NewInode(ino, blocks*testBS, nil)
	if cached {
		pc := pagecache.New(pagecache.Options{Limit: 4 << 20})
		defer pc.Close()
		in.cache = pc.Open(&backing{fs: fs, dev: dev, in: in})
	}
	var seed atomic.Uint64
	b.ReportAllocs()
	b.SetBytes(testBS)
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 1))
		buf := alignbuf.Alloc(testBS)
		for pb.Next() {
			off := int64(rng.IntN(blocks)) * testBS
			var err error
			if write {
				_, err = e.WriteAt(in, buf, off, 0)
			} else {
				_, err = e.ReadAt(in, buf, off, 0)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
