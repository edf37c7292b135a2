package meta

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/aiodio/aiodio/device/sim"
)

// TestMkfsOverOldVolume checks that journal chunks left by an earlier
// volume are never replayed into a new one made on the same device.
func TestMkfsOverOldVolume(t *testing.T) {
	dev := sim.New(sim.Options{Size: 4 << 20, SectorSize: 512, WriteThrough: true})
	defer dev.Close()
	must(t, Mkfs(dev, MkfsOptions{}))
	f, err := Mount(dev, MountOptions{})
	must(t, err)
	for i := range 10 {
		_, _, err := f.Create(fmt.Sprintf("old%d", i), 0o644, false)
		must(t, err)
		must(t, f.Commit())
	}
	must(t, Mkfs(dev, MkfsOptions{}))
	g, err := Mount(dev, MountOptions{})
	must(t, err)
	_, _, err = g.Create("new", 0o644, false)
	must(t, err)
	must(t, g.Commit())
	h, err := Mount(dev, MountOptions{})
	must(t, err)
	ents, _ := h.ReadDir(".")
	if len(ents) != 1 || ents[0].Name != "new" {
		t.Fatalf("entries after mkfs over an old volume: %+v", ents)
	}
}

// TestCommitEIO checks that a failed flush fails Commit with EIO, makes the
// volume refuse updates, and leaves the last committed state on the device.
func TestCommitEIO(t *testing.T) {
	dev := sim.New(sim.Options{Size: 4 << 20, SectorSize: 512, WriteThrough: true})
	defer dev.Close()
	must(t, Mkfs(dev, MkfsOptions{}))
	f, err := Mount(dev, MountOptions{})
	must(t, err)
	_, _, err = f.Create("kept", 0o644, false)
	must(t, err)
	must(t, f.Commit())
	_, _, err = f.Create("lost", 0o644, false)
	must(t, err)
	inj := dev.FailFlush()
	wantErr(t, f.Commit(), syscall.EIO, "commit with failing flush")
	inj.Remove()
	_, _, err = f.Create("after", 0o644, false)
	wantErr(t, err, syscall.EIO, "update after a failed commit")
	wantErr(t, f.Commit(), syscall.EIO, "commit after a failed commit")
	g, err := Mount(dev, MountOptions{})
	must(t, err)
	ents, _ := g.ReadDir(".")
	if len(ents) != 1 || ents[0].Name != "kept" {
		t.Fatalf("entries: %+v", ents)
	}
}
