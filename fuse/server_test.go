package fuse

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/aiodio/aiodio"
)

// TestCloseHandlesAtUnmount: when the serving loop ends with kernel
// handles never released (a lazy unmount whose users were killed, an
// aborted connection), Wait closes their volume files, so that the
// caller's Volume.Close finds nothing open; a late Release does not close
// a file twice. Needs no mount.
func TestCloseHandlesAtUnmount(t *testing.T) {
	img := filepath.Join(t.TempDir(), "vol.img")
	if err := aiodio.Mkfs(img, aiodio.MkfsOptions{Size: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	v, err := aiodio.Open(img, aiodio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	fsys := newFilesystem(v, Options{})
	vf, err := v.OpenFile("f", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vf.WriteAt([]byte("cached"), 0); err != nil {
		t.Fatal(err)
	}
	h := fsys.newHandle(vf, 0, os.O_RDWR)
	if err := fsys.closeHandles(); err != nil {
		t.Fatal(err)
	}
	if _, err := vf.WriteAt([]byte("x"), 0); !errors.Is(err, aiodio.ErrFileClosed) {
		t.Errorf("write after closeHandles: %v, want ErrFileClosed", err)
	}
	if errno := h.release(); errno != 0 {
		t.Errorf("late release: %v", errno)
	}
	if len(fsys.handles) != 0 {
		t.Errorf("%d handles left", len(fsys.handles))
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if findings, err := aiodio.Fsck(img); err != nil || len(findings) > 0 {
		t.Errorf("fsck: %v %q", err, findings)
	}
}

// TestToErrno: every error becomes an errno, never 0 for an error.
func TestToErrno(t *testing.T) {
	fsys := &filesystem{}
	fsys.log = newFilesystemLogger(nil)
	for _, c := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{&os.PathError{Op: "open", Path: "x", Err: syscall.ENOENT}, syscall.ENOENT},
		{aiodio.ErrRemoved, syscall.ESTALE},
		{aiodio.ErrFileClosed, syscall.EBADF},
		{errors.New("no errno"), syscall.EIO},
		{syscall.Errno(0), syscall.EIO},
	} {
		if got := fsys.toErrno("test", c.err); got != c.want {
			t.Errorf("toErrno(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
