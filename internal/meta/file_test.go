package meta

import (
	"syscall"
	"testing"

	"github.com/aiodio/aiodio/device/sim"
)

// TestAllocContiguousAndGoal checks that successive allocations of one file
// continue its previous extent, so a sequentially written file is one extent.
func TestAllocContiguousAndGoal(t *testing.T) {
	f, _ := newFS(t, 8<<20, MkfsOptions{})
	a, _, _ := f.Create("a", 0o644, false)
	b, _, _ := f.Create("b", 0o644, false)
	must(t, f.AllocUnwritten(a, 0, 4))
	must(t, f.AllocUnwritten(b, 0, 4)) // interleaved: b lands after a
	must(t, f.AllocUnwritten(a, 4, 4)) // goal is right after a's extent: taken by b, so elsewhere
	must(t, f.AllocUnwritten(a, 100, 2))
	ext, _ := f.Extents(a)
	if len(ext) < 2 {
		t.Fatalf("extents %+v", ext)
	}
	c, _, _ := f.Create("c", 0o644, false)
	for i := int64(0); i < 8; i++ {
		must(t, f.AllocUnwritten(c, i*3, 3))
	}
	ext, _ = f.Extents(c)
	if len(ext) != 1 || ext[0].Count != 24 {
		t.Fatalf("sequential allocation not contiguous: %+v", ext)
	}
	must(t, f.ConvertWritten(c, 2, 5, 7*4096))
	m, _ := f.Map(make([]Mapping, 0, 8), c, 0, 30)
	want := []Mapping{{0, 2, ext[0].DevBlock, Unwritten}, {2, 5, ext[0].DevBlock + 2, Written},
		{7, 17, ext[0].DevBlock + 7, Unwritten}, {24, 6, -1, Hole}}
	if len(m) != len(want) {
		t.Fatalf("map %+v", m)
	}
	for i := range want {
		if m[i] != want[i] {
			t.Fatalf("map %+v, want %+v", m, want)
		}
	}
	if at, _ := f.Attr(c); at.Size != 7*4096 || at.Blocks != 24 {
		t.Fatalf("attr %+v", at)
	}
	dst := make([]Mapping, 0, 8)
	if n := testing.AllocsPerRun(100, func() { dst, _ = f.Map(dst[:0], c, 0, 30) }); n != 0 {
		t.Fatalf("Map allocates %v times with room in dst", n)
	}
}

// TestENOSPCClean checks that a request larger than the free space fails
// with ENOSPC and changes nothing, and that freed blocks are reusable only
// after the record freeing them is durable (O3).
func TestENOSPCClean(t *testing.T) {
	f, _ := newFS(t, 2<<20, MkfsOptions{})
	a, _, _ := f.Create("a", 0o644, false)
	data := f.DataBlocks()
	wantErr(t, f.AllocUnwritten(a, 0, data+1), syscall.ENOSPC, "alloc past capacity")
	if at, _ := f.Attr(a); at.Blocks != 0 {
		t.Fatalf("half-done allocation: %+v", at)
	}
	must(t, f.AllocUnwritten(a, 0, data))
	b, _, _ := f.Create("b", 0o644, false)
	wantErr(t, f.AllocUnwritten(b, 0, 1), syscall.ENOSPC, "full volume")
	must(t, f.Punch(a, 0, 10))
	if s := f.Stats(); s.PendingBlocks != 10 || s.FreeBlocks != 0 {
		t.Fatalf("stats after punch: %+v", s)
	}
	// The freed blocks are pending: allocating them forces a commit first
	// (O3), then succeeds.
	commits := f.Stats().Commits
	must(t, f.AllocUnwritten(b, 0, 10))
	if s := f.Stats(); s.Commits != commits+1 || s.PendingBlocks != 0 {
		t.Fatalf("allocation of pending blocks did not commit first: %+v", s)
	}
	if f.durable != f.lastLSN-1 { // everything but b's own allocation record is durable
		t.Fatalf("durable LSN %d, last %d", f.durable, f.lastLSN)
	}
	wantErr(t, f.AllocUnwritten(b, 10, 1), syscall.ENOSPC, "still full")
	// Truncate and unlink free too, and those blocks are allocatable only after commit.
	must(t, f.Truncate(a, 0))
	must(t, f.Unlink("b"))
	if s := f.Stats(); s.FreeBlocks != 0 || s.PendingBlocks != data {
		t.Fatalf("stats: %+v", s)
	}
	must(t, f.Commit())
	if s := f.Stats(); s.FreeBlocks != data || s.UsedBlocks != 0 {
		t.Fatalf("stats: %+v", s)
	}
}

// TestFileOps checks truncate, punch, zero range and size rules.
func TestFileOps(t *testing.T) {
	f, _ := newFS(t, 8<<20, MkfsOptions{BlockSize: 1024})
	a, _, _ := f.Create("a", 0o644, false)
	must(t, f.AllocUnwritten(a, 0, 10))
	must(t, f.ConvertWritten(a, 0, 10, 10*1024))
	must(t, f.ZeroRange(a, 2, 2))
	must(t, f.Punch(a, 5, 1))
	must(t, f.Truncate(a, 7*1024+1)) // keeps blocks 0..7
	m, _ := f.Map(nil, a, 0, 10)
	var states []State
	for _, x := range m {
		for range x.Count {
			states = append(states, x.State)
		}
	}
	want := []State{Written, Written, Unwritten, Unwritten, Written, Hole, Written, Written, Hole, Hole}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("states %v, want %v", states, want)
		}
	}
	must(t, f.SetSize(a, 1<<20))
	if at, _ := f.Attr(a); at.Size != 1<<20 || at.Blocks != 7 {
		t.Fatalf("attr %+v", at)
	}
	wantErr(t, f.AllocUnwritten(a, -1, 1), syscall.EINVAL, "negative block")
	wantErr(t, f.AllocUnwritten(a, 1<<60, 1<<60), syscall.EINVAL, "overflowing range")
	wantErr(t, f.Truncate(a, -1), syscall.EFBIG, "negative size")
	d, _ := f.Mkdir("d", 0o755)
	wantErr(t, f.AllocUnwritten(d, 0, 1), syscall.EISDIR, "alloc on dir")
	_, err := f.Map(nil, 999, 0, 1)
	wantErr(t, err, syscall.ENOENT, "map unknown inode")
}

// TestPersistence checks that committed state survives remount, both by
// journal replay (no Close) and by checkpoint (Close), and that the journal
// filling up turns into checkpoints transparently.
func TestPersistence(t *testing.T) {
	dev := sim.New(sim.Options{Size: 8 << 20, SectorSize: 512})
	defer dev.Close()
	must(t, Mkfs(dev, MkfsOptions{journalBlocks: 4}))
	f, err := Mount(dev, MountOptions{})
	must(t, err)
	for i := range 300 {
		ino, _, err := f.Create(sprintf("f%03d", i), 0o644, false)
		must(t, err)
		must(t, f.AllocUnwritten(ino, 0, 1))
		must(t, f.ConvertWritten(ino, 0, 1, int64(i)))
		if i%7 == 0 {
			must(t, f.Commit())
		}
	}
	must(t, f.Unlink("f000"))
	must(t, f.Commit())
	st := f.Stats()
	if st.Checkpoints == 0 {
		t.Fatalf("journal of 4 blocks never filled: %+v", st)
	}
	g, err := Mount(dev, MountOptions{})
	must(t, err)
	if c := g.Check(); len(c) > 0 {
		t.Fatal(c)
	}
	for i := 1; i < 300; i++ {
		a, err := g.Stat(sprintf("f%03d", i))
		if err != nil || a.Size != int64(i) || a.Blocks != 1 {
			t.Fatalf("f%03d: %+v %v", i, a, err)
		}
	}
	if _, err := g.Stat("f000"); err == nil {
		t.Fatal("unlinked file came back")
	}
	must(t, f.Close())
	g, err = Mount(dev, MountOptions{})
	must(t, err)
	if s := g.Stats(); s.JournalUsed != 0 || s.Files != 299 {
		t.Fatalf("after close: %+v", s)
	}
	must(t, g.Close())
	fi, err := Fsck(dev)
	if err != nil || len(fi) > 0 {
		t.Fatal(fi, err)
	}
}
