package meta

import (
	"fmt"
	"testing"

	"github.com/aiodio/aiodio/device/sim"
)

// TestGeometries runs mkfs, updates, journal replay and checkpoint remount
// over block sizes from 512 to 65536 and sector sizes 512 and 4096.
func TestGeometries(t *testing.T) {
	for _, g := range []struct{ bs, sector int }{{512, 512}, {1024, 512}, {4096, 4096}, {65536, 512}, {8192, 4096}} {
		t.Run(fmt.Sprintf("bs=%d,sector=%d", g.bs, g.sector), func(t *testing.T) {
			dev := sim.New(sim.Options{Size: 16 << 20, SectorSize: g.sector, WriteThrough: true})
			defer dev.Close()
			must(t, Mkfs(dev, MkfsOptions{BlockSize: g.bs}))
			f, err := Mount(dev, MountOptions{})
			must(t, err)
			if f.BlockSize() != g.bs {
				t.Fatalf("block size %d", f.BlockSize())
			}
			_, err = f.Mkdir("d", 0o755)
			must(t, err)
			ino, _, err := f.Create("d/x", 0o644, true)
			must(t, err)
			must(t, f.AllocUnwritten(ino, 3, 5))
			must(t, f.ConvertWritten(ino, 3, 2, int64(5*g.bs)))
			must(t, f.Commit())
			want := dump(f, func(Ino, int64, int64) string { return "" })
			for round := range 2 {
				h, err := Mount(dev, MountOptions{})
				must(t, err)
				if got := dump(h, func(Ino, int64, int64) string { return "" }); got != want {
					t.Fatalf("round %d: remount gives\n%s\nwant\n%s", round, got, want)
				}
				must(t, f.Close()) // second round: from the checkpoint
			}
			if fi, err := Fsck(dev); err != nil || len(fi) > 0 {
				t.Fatal(fi, err)
			}
		})
	}
}
