package meta

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aiodio/aiodio/device"
)

// sparseDev is a synchronous device that stores only the 4 KiB pages
// written to it, so a volume of many GiB costs only its metadata in memory.
type sparseDev struct {
	size int64
	// mu protects pages.
	mu    sync.Mutex
	pages map[int64][]byte
}

func newSparse(size int64) *sparseDev { return &sparseDev{size: size, pages: map[int64][]byte{}} }

func (d *sparseDev) Info() device.Info {
	return device.Info{Size: d.size, LogicalBlockSize: 512, PhysicalBlockSize: 4096, MemAlign: 512,
		MaxIO: 1 << 20, Engine: "sparse"}
}

func (d *sparseDev) Submit(reqs ...*device.Request) (int, error) {
	for i, r := range reqs {
		if err := device.Check(d.Info(), r); err != nil {
			return i, err
		}
		d.mu.Lock()
		for done := 0; done < len(r.Buf); {
			off := r.Off + int64(done)
			pg, in := off/4096, int(off%4096)
			n := min(4096-in, len(r.Buf)-done)
			p := d.pages[pg]
			switch r.Kind {
			case device.Read:
				if p == nil {
					clear(r.Buf[done : done+n])
				} else {
					copy(r.Buf[done:done+n], p[in:])
				}
			case device.Write:
				if p == nil {
					p = make([]byte, 4096)
					d.pages[pg] = p
				}
				copy(p[in:in+n], r.Buf[done:])
			}
			done += n
		}
		d.mu.Unlock()
		r.N = r.Len()
		r.Done(r)
	}
	return len(reqs), nil
}

func (d *sparseDev) Close() error { return nil }

var (
	bigOnce sync.Once
	bigDev  *sparseDev
)

// bigVolume builds (once) a closed volume with 1 000 000 extents: 1000 files
// of 1000 blocks each, every other block converted to written so no two
// neighbouring extents merge.
func bigVolume(b *testing.B) *sparseDev {
	bigOnce.Do(func() {
		const files, blocks = 1000, 1000
		dev := newSparse(int64(files*blocks+200_000) * 4096)
		must(b, Mkfs(dev, MkfsOptions{}))
		f, err := Mount(dev, MountOptions{})
		must(b, err)
		for i := range files {
			ino, _, err := f.Create(fmt.Sprintf("f%04d", i), 0o644, true)
			must(b, err)
			must(b, f.AllocUnwritten(ino, 0, blocks))
			for k := int64(0); k < blocks; k += 2 {
				must(b, f.ConvertWritten(ino, k, 1, (k+1)*4096))
			}
		}
		if s := f.Stats(); s.Extents != files*blocks {
			b.Fatalf("built %d extents", s.Extents)
		}
		must(b, f.Close())
		bigDev = dev
	})
	if bigDev == nil {
		b.Fatal("building the big volume failed")
	}
	return bigDev
}

// BenchmarkMount1MExtents measures Mount of a volume holding 1 000 000
// extents (target: <= 2 s). Run: go test -run XXX -bench Mount1M ./internal/meta
func BenchmarkMount1MExtents(b *testing.B) {
	dev := bigVolume(b)
	b.ResetTimer()
	for b.Loop() {
		f, err := Mount(dev, MountOptions{ReadOnly: true})
		must(b, err)
		if f.Stats().Extents != 1_000_000 {
			b.Fatal("wrong extent count")
		}
	}
}

// BenchmarkFsck1MExtents measures Fsck of the same volume (target: <= 5 s).
func BenchmarkFsck1MExtents(b *testing.B) {
	dev := bigVolume(b)
	b.ResetTimer()
	for b.Loop() {
		fi, err := Fsck(dev)
		if err != nil || len(fi) > 0 {
			b.Fatal(fi, err)
		}
	}
}

// BenchmarkCreateUnlink measures create+unlink pairs of empty files with
// one Commit per 1000 pairs (the journal records are appended in memory and
// committed on Sync). Reports pairs/s.
func BenchmarkCreateUnlink(b *testing.B) {
	dev := device.NewMemory(256<<20, 512)
	defer dev.Close()
	f := mkfsMount(b, dev)
	b.ResetTimer()
	benchCreateUnlink(b, f)
}

// BenchmarkCreateUnlinkGroupCommit runs create+unlink+Commit from 32 per P
// goroutines: every pair is durable before its goroutine goes on, and group
// commit shares the flushes. Reports pairs/s and pairs per commit round.
func BenchmarkCreateUnlinkGroupCommit(b *testing.B) {
	dev := device.NewMemory(256<<20, 512)
	defer dev.Close()
	f := mkfsMount(b, dev)
	benchCreateUnlinkCommit(b, f, 32, true)
}

// mkfsMount makes a volume on dev and mounts it.
func mkfsMount(b *testing.B, dev device.Device) *FS {
	must(b, Mkfs(dev, MkfsOptions{}))
	f, err := Mount(dev, MountOptions{})
	must(b, err)
	return f
}

// benchCreateUnlink runs create+unlink pairs of empty files, with one Commit
// per 1000 pairs and one at the end, and reports pairs/s.
func benchCreateUnlink(b *testing.B, f *FS) {
	i := 0
	for b.Loop() {
		name := fmt.Sprintf("d%d", i)
		if _, _, err := f.Create(name, 0o644, true); err != nil {
			b.Fatal(err)
		}
		if err := f.Unlink(name); err != nil {
			b.Fatal(err)
		}
		i++
		if i%1000 == 0 {
			must(b, f.Commit())
		}
	}
	must(b, f.Commit())
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}

// benchCreateUnlinkCommit runs create+unlink+Commit from perP goroutines
// per P (resetting the timer first if reset), every pair durable before
// its goroutine goes on, and reports pairs/s and pairs per commit round.
func benchCreateUnlinkCommit(b *testing.B, f *FS, perP int, reset bool) {
	var n atomic.Int64
	b.SetParallelism(perP)
	start := f.Stats().Commits
	if reset {
		b.ResetTimer()
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			name := fmt.Sprintf("p%d", n.Add(1))
			if _, _, err := f.Create(name, 0o644, true); err != nil {
				b.Error(err)
				return
			}
			if err := f.Unlink(name); err != nil {
				b.Error(err)
				return
			}
			if err := f.Commit(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	rounds := f.Stats().Commits - start
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
	b.ReportMetric(float64(b.N)/float64(max(rounds, 1)), "pairs/round")
}

// benchImage opens a 256 MiB image file on the test's temporary directory
// (ext4 here) through device.Open: real io_uring/thread I/O and real flushes.
func benchImage(b *testing.B) device.Device {
	dev, err := device.Open(b.TempDir()+"/bench.img", device.OpenOptions{Create: true, Size: 256 << 20})
	if err != nil {
		b.Skipf("device.Open: %v", err)
	}
	b.Cleanup(func() { dev.Close() })
	return dev
}

// BenchmarkCreateUnlinkImage is BenchmarkCreateUnlink on an image file:
// create+unlink pairs with a Commit (flush, journal write, flush) every
// 1000 pairs. Target: >= 20 000 pairs/s.
func BenchmarkCreateUnlinkImage(b *testing.B) {
	f := mkfsMount(b, benchImage(b))
	benchCreateUnlink(b, f)
}

// BenchmarkCreateUnlinkImageGroupCommit: 16 goroutines per P, each pair committed
// (durable) before its goroutine continues; group commit shares the flushes.
func BenchmarkCreateUnlinkImageGroupCommit(b *testing.B) {
	f := mkfsMount(b, benchImage(b))
	benchCreateUnlinkCommit(b, f, 16, false)
}

// BenchmarkAllocFragmented measures one allocation plus one free on a free
// space of 1 000 000 one-block spans (every other block owned), with goals
// that miss: the by-size index finds a fit without scanning.
func BenchmarkAllocFragmented(b *testing.B) {
	const spans = 1_000_000
	owned := make([]span, spans)
	for i := range owned {
		owned[i] = span{int64(2 * i), 1}
	}
	owned = append(owned, span{2 * spans, 10}) // leave one 5-block span at the end
	free, _ := complement(0, 2*spans+15, owned)
	goal := int64(0)
	for b.Loop() {
		s := free.take(goal, 3) // no 3-block span before the end: by-size lookup
		free.add(s)
		goal = (goal + 7919) % (2 * spans)
	}
}

// BenchmarkConvertRandomBigFile measures ConvertWritten of random single
// blocks of one preallocated (unwritten) file of 1 000 000 blocks: the
// fio-on-fallocated-file pattern, which fragments the file into up to
// hundreds of thousands of extents. Each op splits or merges extents in a
// leaf of the extent tree, not in one flat slice.
func BenchmarkConvertRandomBigFile(b *testing.B) {
	const blocks = 1_000_000
	dev := newSparse(int64(blocks+100_000) * 4096)
	must(b, Mkfs(dev, MkfsOptions{}))
	f, err := Mount(dev, MountOptions{})
	must(b, err)
	ino, _, err := f.Create("big", 0o644, true)
	must(b, err)
	must(b, f.AllocUnwritten(ino, 0, blocks))
	x := uint64(1)
	for b.Loop() {
		x = x*6364136223846793005 + 1442695040888963407
		fb := int64(x>>33) % blocks
		if err := f.ConvertWritten(ino, fb, 1, 4096); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(f.Stats().Extents), "extents")
}
