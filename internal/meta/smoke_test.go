package meta

import (
	"testing"

	"github.com/aiodio/aiodio/device"
)

func TestSmoke(t *testing.T) {
	dev := device.NewMemory(8<<20, 512)
	defer dev.Close()
	if err := Mkfs(dev, MkfsOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := Mount(dev, MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Mkdir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	ino, created, err := f.Create("d/a", 0o644, true)
	if err != nil || !created {
		t.Fatal(err)
	}
	if err := f.AllocUnwritten(ino, 0, 10); err != nil {
		t.Fatal(err)
	}
	if err := f.ConvertWritten(ino, 0, 4, 4*4096); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	m, _ := f.Map(nil, ino, 0, 12)
	t.Logf("%+v", m)
	if c := f.Check(); len(c) > 0 {
		t.Fatal(c)
	}
	f2, err := Mount(dev, MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := f2.Map(nil, ino, 0, 12)
	t.Logf("%+v", m2)
	if c := f2.Check(); len(c) > 0 {
		t.Fatal(c)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f3, err := Mount(dev, MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", f3.Stats())
	fi, err := Fsck(dev)
	if err != nil || len(fi) > 0 {
		t.Fatal(fi, err)
	}
}
