package pagecache

import (
	"math/rand/v2"
	"testing"
)

func benchFile(b *testing.B, size int64) *File {
	c := New(Options{Limit: 2 * size})
	b.Cleanup(func() { c.Close() })
	mb := &memBacking{size: size, disk: make([]byte, size)}
	f := c.Open(mb)
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, err := f.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	return f
}

// BenchmarkReadSeq128K: cached 128 KiB sequential ReadAt, one goroutine.
func BenchmarkReadSeq128K(b *testing.B) {
	const size = 64 << 20
	f := benchFile(b, size)
	buf := make([]byte, 128<<10)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	off := int64(0)
	for b.Loop() {
		if _, err := f.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
		off += int64(len(buf))
		if off >= size {
			off = 0
		}
	}
}

// BenchmarkReadRand4K: cached 4 KiB random ReadAt from GOMAXPROCS goroutines
// over a 64 MiB file (DRAM bound) and a 1 MiB one (overhead bound).
func BenchmarkReadRand4K(b *testing.B) {
	b.Run("64MiB", func(b *testing.B) { benchRand(b, 64<<20) })
	b.Run("1MiB", func(b *testing.B) { benchRand(b, 1<<20) })
}

func benchRand(b *testing.B, size int64) {
	f := benchFile(b, size)
	b.SetBytes(PageSize)
	b.ResetTimer()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, PageSize)
		r := rand.New(rand.NewPCG(rand.Uint64(), 1))
		for pb.Next() {
			if _, err := f.ReadAt(buf, int64(r.IntN(int(size/PageSize)))*PageSize); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkWriteSeq128K: buffered 128 KiB sequential writes with writeback
// to the in-memory backing (dirty limit and flusher in play).
func BenchmarkWriteSeq128K(b *testing.B) {
	const size = 64 << 20
	c := New(Options{Limit: 32 << 20})
	b.Cleanup(func() { c.Close() })
	mb := &memBacking{size: size, disk: make([]byte, size)}
	f := c.Open(mb)
	buf := make([]byte, 128<<10)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	off := int64(0)
	for b.Loop() {
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
		off += int64(len(buf))
		if off >= size {
			off = 0
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
}
