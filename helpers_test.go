package aiodio

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/device/sim"
)

// poison is the marker written over the whole medium before mkfs: a read
// that returns it returned data nobody wrote (I1).
var poison = []byte("POISON!!")

// testVolume is a volume on a device the test owns; its cleanup closes the
// volume, runs fsck on the device (it must be clean) and closes the device.
type testVolume struct {
	*Volume
	dev device.Device
	sim *sim.Device
}

// newSimVolume makes a volume on a poisoned sim device of size bytes.
func newSimVolume(t testing.TB, size int64, o Options, so sim.Options) *testVolume {
	t.Helper()
	return newSimVolumeBS(t, size, 0, o, so)
}

// newSimVolumeBS is newSimVolume with a block size (0: default).
func newSimVolumeBS(t testing.TB, size int64, bs int, o Options, so sim.Options) *testVolume {
	t.Helper()
	so.Size = size
	d := sim.New(so)
	d.Poison(poison)
	if err := MkfsDevice(d, MkfsOptions{BlockSize: bs}); err != nil {
		d.Close()
		t.Fatalf("mkfs: %v", err)
	}
	tv := openTestVolume(t, d, o)
	tv.sim = d
	return tv
}

// newMemVolume makes a volume on a RAM device.
func newMemVolume(t testing.TB, size int64, o Options) *testVolume {
	t.Helper()
	d := device.NewMemory(size, 512)
	if err := MkfsDevice(d, MkfsOptions{}); err != nil {
		d.Close()
		t.Fatalf("mkfs: %v", err)
	}
	return openTestVolume(t, d, o)
}

func openTestVolume(t testing.TB, d device.Device, o Options) *testVolume {
	t.Helper()
	v, err := OpenDevice(d, o)
	if err != nil {
		d.Close()
		t.Fatalf("open: %v", err)
	}
	tv := &testVolume{Volume: v, dev: d}
	t.Cleanup(func() {
		if findings, err := tv.Volume.Fsck(); err == nil && len(findings) > 0 {
			t.Errorf("live fsck: %v", findings)
		}
		if err := tv.Volume.Close(); err != nil {
			t.Errorf("cleanup: close volume: %v", err)
		}
		checkFsck(t, d)
		d.Close()
	})
	return tv
}

// remount closes the volume and opens it again on the same device.
func (tv *testVolume) remount(t testing.TB, o Options) {
	t.Helper()
	if err := tv.Volume.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	checkFsck(t, tv.dev)
	v, err := OpenDevice(tv.dev, o)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	tv.Volume = v
}

// mountAfterCrash fsck's the device a crash left (sim.Device.Crash) and
// mounts it; when the test ends the volume is closed and fsck'd again.
// Callers register nd's own close with t.Cleanup before calling (cleanups
// run last-in first-out, so nd outlives the volume).
func mountAfterCrash(t testing.TB, nd device.Device) *Volume {
	t.Helper()
	checkFsck(t, nd)
	v, err := OpenDevice(nd, Options{})
	if err != nil {
		t.Fatalf("mount after the crash: %v", err)
	}
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Error(err)
		}
		checkFsck(t, nd)
	})
	return v
}

func checkFsck(t testing.TB, d device.Device) {
	t.Helper()
	findings, err := FsckDevice(d)
	if err != nil {
		t.Errorf("fsck: %v", err)
	}
	for _, f := range findings {
		t.Errorf("fsck finding: %s", f)
	}
}

// tempImage returns a path for an image file in a fresh temp dir.
func tempImage(t testing.TB) string {
	return filepath.Join(t.TempDir(), "vol.img")
}

// fsckImage runs Fsck on an image path in cleanup.
func fsckImage(t testing.TB, path string) {
	t.Helper()
	t.Cleanup(func() {
		findings, err := Fsck(path)
		if err != nil {
			t.Errorf("fsck %s: %v", path, err)
		}
		for _, f := range findings {
			t.Errorf("fsck finding: %s", f)
		}
	})
}

func mustOpen(t testing.TB, v *Volume, name string, flag int) *File {
	t.Helper()
	f, err := v.OpenFile(name, flag, 0o644)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	return f
}

func mustWrite(t testing.TB, f *File, p []byte, off int64) {
	t.Helper()
	n, err := f.WriteAt(p, off)
	if err != nil || n != len(p) {
		t.Fatalf("write %d bytes at %d: n=%d err=%v", len(p), off, n, err)
	}
}

// readAll reads the whole file through f (which must be readable).
func readAll(t testing.TB, f *File) []byte {
	t.Helper()
	fi, err := f.Stat()
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	buf := make([]byte, fi.Size())
	n, err := f.ReadAt(buf, 0)
	if n != len(buf) || (err != nil && err != io.EOF) {
		t.Fatalf("read all (%d bytes): n=%d err=%v", len(buf), n, err)
	}
	return buf
}

func wantErrno(t testing.TB, what string, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
}

func noPoison(t testing.TB, what string, b []byte) {
	t.Helper()
	if i := bytes.Index(b, poison[:4]); i >= 0 {
		t.Fatalf("%s: poison bytes at %d (stale data, I1)", what, i)
	}
}
