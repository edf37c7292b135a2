package meta

import (
	"errors"
	"testing"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
)

// newFS makes a fresh volume on a memory device and checks consistency in
// Cleanup (the bbolt habit: a full check after every test).
func newFS(t testing.TB, size int64, o MkfsOptions) (*FS, device.Device) {
	t.Helper()
	dev := sim.New(sim.Options{Size: size, SectorSize: 512, WriteThrough: true})
	if err := Mkfs(dev, o); err != nil {
		t.Fatal(err)
	}
	f, err := Mount(dev, MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c := f.Check(); len(c) > 0 {
			t.Errorf("check at cleanup: %q", c)
		}
		_ = f.Close()
		if fi, err := Fsck(dev); err != nil || len(fi) > 0 {
			t.Errorf("fsck at cleanup: %q %v", fi, err)
		}
		dev.Close()
	})
	return f, dev
}

func wantErr(t testing.TB, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got %v, want %v", what, err, target)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
