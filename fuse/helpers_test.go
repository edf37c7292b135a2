package fuse

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/internal/testenv"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// needFUSE skips (or, under AIODIO_REQUIRE, fails) a test that mounts:
// it needs root and /dev/fuse.
func needFUSE(t testing.TB) {
	t.Helper()
	testenv.NeedRoot(t)
	_, err := os.Stat("/dev/fuse")
	testenv.Need(t, "fuse", err == nil, "/dev/fuse is missing")
}

// mounted is a volume on an image in a temporary directory, mounted on
// another one.
type mounted struct {
	img, dir string
	v        *aiodio.Volume
	srv      *Server
	done     bool // unmounted and closed
}

// mountVolume makes a 256 MiB volume, opens it with vo and mounts it with
// fo. Cleanup unmounts (lazily if the mount is busy), closes the volume,
// checks it with fsck and checks that no goroutine leaked, also when the
// test failed.
func mountVolume(t *testing.T, vo aiodio.Options, fo Options) *mounted {
	t.Helper()
	return mountImage(t, 256<<20, nil, vo, fo)
}

// mountImage is mountVolume with an image of size bytes, filled with
// poison (repeated) before mkfs when poison is not nil.
func mountImage(t *testing.T, size int64, poison []byte, vo aiodio.Options, fo Options) *mounted {
	t.Helper()
	needFUSE(t)
	leaks := goleak.IgnoreCurrent()
	img := filepath.Join(t.TempDir(), "vol.img")
	if poison != nil {
		writePoison(t, img, size, poison)
	}
	if err := aiodio.Mkfs(img, aiodio.MkfsOptions{Size: size}); err != nil {
		t.Fatal(err)
	}
	v, err := aiodio.Open(img, vo)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if fo.Logger == nil {
		fo.Logger = slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	srv, err := Mount(dir, v, fo)
	if err != nil {
		v.Close()
		t.Fatal(err)
	}
	m := &mounted{img: img, dir: dir, v: v, srv: srv}
	t.Cleanup(func() {
		if !m.done {
			m.unmountClose(t)
		}
		goleak.VerifyNone(t, leaks)
	})
	return m
}

// unmountClose unmounts (lazily if busy), waits for the serving loop,
// closes the volume and checks it with fsck.
func (m *mounted) unmountClose(t testing.TB) {
	t.Helper()
	m.done = true
	if err := m.srv.Unmount(); err != nil {
		t.Errorf("unmount: %v (falling back to a lazy unmount)", err)
		if err := m.srv.UnmountLazy(); err != nil {
			t.Errorf("lazy unmount: %v", err)
		}
		if err := m.srv.Wait(); err != nil {
			t.Errorf("wait: %v", err)
		}
	}
	if mounted, _ := isMounted(m.dir); mounted {
		t.Errorf("%s still mounted after unmount", m.dir)
		unix.Unmount(m.dir, unix.MNT_DETACH)
	}
	if err := m.v.Close(); err != nil {
		t.Errorf("volume close: %v", err)
	}
	findings, err := aiodio.Fsck(m.img)
	if err != nil || len(findings) > 0 {
		t.Errorf("fsck after unmount: %v %q", err, findings)
	}
}

// path returns the mount path of name.
func (m *mounted) path(name string) string { return filepath.Join(m.dir, name) }

// isMounted reports whether dir is a mount point in /proc/self/mounts.
func isMounted(dir string) (bool, error) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[1] == dir {
			return true, nil
		}
	}
	return false, nil
}

// wantErrno fails unless err carries errno want.
func wantErrno(t testing.TB, what string, err error, want syscall.Errno) {
	t.Helper()
	var got syscall.Errno
	if !errors.As(err, &got) || got != want {
		t.Errorf("%s: got error %v, want %v (%d)", what, err, want, int(want))
	}
}

// pattern returns n bytes derived from seed.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+int(seed)) | 1 // never zero: zeros mean "not written"
	}
	return b
}

func mustEqual(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: %d bytes differ from the %d expected, first at %d", what, len(got), len(want), i)
	}
}

// tlogWriter sends log lines to the test log.
type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// writePoison writes an image of size bytes holding marker repeated.
func writePoison(t testing.TB, img string, size int64, marker []byte) {
	t.Helper()
	chunk := bytes.Repeat(marker, (1<<20)/len(marker))
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off := int64(0); off < size; off += int64(len(chunk)) {
		if _, err := f.WriteAt(chunk[:min(int64(len(chunk)), size-off)], off); err != nil {
			t.Fatal(err)
		}
	}
}
