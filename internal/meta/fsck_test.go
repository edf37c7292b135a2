package meta

import (
	"errors"
	"strings"
	"testing"

	"github.com/aiodio/aiodio/device/sim"
	"github.com/aiodio/aiodio/internal/format"
)

// TestFsckFindings damages the in-memory metadata in ways a buggy engine
// could (a block owned twice, a wrong link count, an extent outside the data
// area, a written extent past EOF, a dangling entry), checkpoints it, and
// checks that Fsck lists each problem, that Mount refuses double ownership,
// and that nothing panics.
func TestFsckFindings(t *testing.T) {
	cases := map[string]struct {
		damage     func(f *FS, a, b Ino)
		finding    string
		mountFails bool
	}{
		"owned twice": {func(f *FS, a, b Ino) {
			f.inodes[b].ext.leaves[0][0].DevBlock = f.inodes[a].ext.leaves[0][0].DevBlock
		}, "owned twice", true},
		"outside": {func(f *FS, a, b Ino) {
			f.inodes[b].ext.leaves[0][0].DevBlock = f.dataEnd - 1
		}, "outside the data area", true},
		"nlink": {func(f *FS, a, b Ino) { f.inodes[RootIno].nlink = 7 }, "link count 7", false},
		"past EOF": {func(f *FS, a, b Ino) {
			f.inodes[a].ext.leaves[0][0].State = format.StateWritten
			f.inodes[a].size = 0
		}, "past EOF", false},
		"dangling": {func(f *FS, a, b Ino) { f.inodes[RootIno].dir["ghost"] = 999 }, "missing inode 999", false},
		"unreachable": {func(f *FS, a, b Ino) {
			delete(f.inodes[RootIno].dir, "b")
			f.metaBytes -= direntCost("b")
		}, "named by 0", false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dev := sim.New(sim.Options{Size: 4 << 20, SectorSize: 512, WriteThrough: true})
			defer dev.Close()
			must(t, Mkfs(dev, MkfsOptions{}))
			f, err := Mount(dev, MountOptions{})
			must(t, err)
			a, _, _ := f.Create("a", 0o644, false)
			b, _, _ := f.Create("b", 0o644, false)
			must(t, f.AllocUnwritten(a, 0, 2))
			must(t, f.AllocUnwritten(b, 0, 2))
			f.mu.Lock()
			c.damage(f, a, b)
			f.mu.Unlock()
			must(t, f.Close())
			fi, err := Fsck(dev)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(fi, "\n"), c.finding) {
				t.Fatalf("findings %q lack %q", fi, c.finding)
			}
			_, err = Mount(dev, MountOptions{})
			if c.mountFails != (err != nil) {
				t.Fatalf("mount: %v", err)
			}
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("mount error %v is not ErrCorrupt", err)
			}
		})
	}
}
