package fuse

import (
	"io"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/aiodio/aiodio"
	"golang.org/x/sys/unix"
)

// TestFilesThroughMount drives the mount with ordinary system calls —
// create, write, read back, stat, readdir, rename, truncate down and up,
// fsync, remove — and checks each result, then unmounts, reopens the volume
// with the Go API and finds the same data there (persistence), fsck clean.
func TestFilesThroughMount(t *testing.T) {
	// No attribute caching: st_blocks is checked after write-back, which
	// a cached getattr from before it would hide.
	m := mountVolume(t, aiodio.Options{}, Options{AttrTimeout: -1})
	if err := os.Mkdir(m.path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := pattern(100_000, 3)
	if err := os.WriteFile(m.path("d/a"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(m.path("d/a"))
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "read back", got, data)

	// Stat: size, mode, stable inode number (the volume's). Blocks are
	// counted once they are allocated, at write-back: the release of the
	// descriptors above reaches the daemon asynchronously and may still be
	// writing back, so make the data durable first. (Counting dirty data
	// not yet allocated, as ext4 and xfs count delayed allocations, is
	// open work in the volume's Stat.)
	if err := fsyncPath(m.path("d/a")); err != nil {
		t.Fatal(err)
	}
	st1 := statT(t, m.path("d/a"))
	if st1.Size != int64(len(data)) || st1.Mode&syscall.S_IFMT != syscall.S_IFREG || st1.Mode&0o777 != 0o644 || st1.Nlink != 1 {
		t.Errorf("stat d/a: size %d mode %o nlink %d", st1.Size, st1.Mode, st1.Nlink)
	}
	if st1.Blocks < int64(len(data))/512 {
		t.Errorf("stat d/a: %d blocks for %d bytes", st1.Blocks, len(data))
	}
	fi, err := m.v.Stat("d/a")
	if err != nil {
		t.Fatal(err)
	}
	if ino := fi.Sys().(*aiodio.FileStat).Ino; st1.Ino != ino {
		t.Errorf("st_ino %d, volume inode %d", st1.Ino, ino)
	}

	// Rename keeps the inode; readdir shows the new name with its d_ino.
	if err := os.Rename(m.path("d/a"), m.path("d/b")); err != nil {
		t.Fatal(err)
	}
	if st2 := statT(t, m.path("d/b")); st2.Ino != st1.Ino {
		t.Errorf("inode changed by rename: %d -> %d", st1.Ino, st2.Ino)
	}
	_, err = os.Stat(m.path("d/a"))
	wantErrno(t, "stat of the old name", err, syscall.ENOENT)
	if names := readdirNames(t, m.path("d")); !slices.Equal(names, []string{"b"}) {
		t.Errorf("readdir d: %q", names)
	}

	// Truncate down, then up: the grown range reads as zeros.
	if err := os.Truncate(m.path("d/b"), 5000); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(m.path("d/b"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(20000); err != nil {
		t.Fatal(err)
	}
	got = make([]byte, 20000)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(data[:5000]), make([]byte, 15000)...)
	mustEqual(t, "after truncate down and up", got, want)
	if _, err := f.WriteAt([]byte("tail"), 30000); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want = append(want, make([]byte, 10000)...)
	want = append(want, "tail"...)

	// A directory fsync, then remove a second file.
	if err := os.WriteFile(m.path("gone"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(m.path("gone")); err != nil {
		t.Fatal(err)
	}
	dirf, err := os.Open(m.path("d"))
	if err != nil {
		t.Fatal(err)
	}
	if err := dirf.Sync(); err != nil {
		t.Errorf("fsync of a directory: %v", err)
	}
	dirf.Close()
	if names := readdirNames(t, m.dir); !slices.Equal(names, []string{"d"}) {
		t.Errorf("readdir root: %q", names)
	}

	// Persistence: the data is in the volume after unmount and close.
	m.unmountClose(t)
	v, err := aiodio.Open(m.img, aiodio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	vf, err := v.OpenFile("d/b", os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer vf.Close()
	got = make([]byte, len(want)+10)
	n, err := vf.ReadAt(got, 0)
	if err != io.EOF || n != len(want) {
		t.Fatalf("reopened read: %d, %v; want %d, EOF", n, err, len(want))
	}
	mustEqual(t, "after remount through the Go API", got[:n], want)
	if _, err := v.Stat("gone"); err == nil {
		t.Error("removed file is back after remount")
	}
}

// TestErrnos checks that the volume's errors reach callers as their errno.
func TestErrnos(t *testing.T) {
	m := mountVolume(t, aiodio.Options{}, Options{})
	_, err := os.Open(m.path("missing"))
	wantErrno(t, "open missing", err, syscall.ENOENT)
	if err := os.WriteFile(m.path("f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = os.OpenFile(m.path("f"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	wantErrno(t, "O_EXCL create of an existing file", err, syscall.EEXIST)
	if err := os.Mkdir(m.path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "mkdir existing", os.Mkdir(m.path("d"), 0o755), syscall.EEXIST)
	if err := os.WriteFile(m.path("d/x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "rmdir of a non-empty directory", unix.Rmdir(m.path("d")), syscall.ENOTEMPTY)
	wantErrno(t, "unlink of a directory", unix.Unlink(m.path("d")), syscall.EISDIR)
	wantErrno(t, "rmdir of a file", unix.Rmdir(m.path("f")), syscall.ENOTDIR)
	wantErrno(t, "rename of a missing file", os.Rename(m.path("nope"), m.path("x")), syscall.ENOENT)
	wantErrno(t, "rename of a file onto a directory", unix.Rename(m.path("f"), m.path("d")), syscall.EISDIR)
	if err := os.Mkdir(m.path("e"), 0o755); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "rename of a directory onto a non-empty one", unix.Rename(m.path("e"), m.path("d")), syscall.ENOTEMPTY)
	wantErrno(t, "rename of a directory onto a file", unix.Rename(m.path("e"), m.path("f")), syscall.ENOTDIR)
	wantErrno(t, "RENAME_NOREPLACE onto a file",
		unix.Renameat2(unix.AT_FDCWD, m.path("d/x"), unix.AT_FDCWD, m.path("f"), unix.RENAME_NOREPLACE), syscall.EEXIST)
	wantErrno(t, "RENAME_EXCHANGE",
		unix.Renameat2(unix.AT_FDCWD, m.path("d/x"), unix.AT_FDCWD, m.path("f"), unix.RENAME_EXCHANGE), syscall.EINVAL)
	_, err = os.Open(m.path("f/sub"))
	wantErrno(t, "a file in the middle of a path", err, syscall.ENOTDIR)
	f, err := os.OpenFile(m.path("f"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = f.WriteAt([]byte("x"), 1<<61)
	wantErrno(t, "write past the maximum file size", err, syscall.EFBIG)
	wantErrno(t, "unsupported fallocate mode",
		unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_COLLAPSE_RANGE, 0, 4096), syscall.EOPNOTSUPP)
	// Replacing a file by rename frees it: the replaced name's data is gone
	// and the moved file's is there.
	if err := os.WriteFile(m.path("g"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m.path("g"), m.path("f")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(m.path("f")); err != nil || string(b) != "new" {
		t.Errorf("after rename over f: %q, %v", b, err)
	}
}

// TestSetattr checks what setattr accepts: sizes, the current mode and
// owner, times set to now (touch); other changes fail with EOPNOTSUPP and
// change nothing.
func TestSetattr(t *testing.T) {
	m := mountVolume(t, aiodio.Options{}, Options{})
	p := m.path("f")
	if err := os.WriteFile(p, pattern(10000, 1), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Errorf("chmod to the current mode: %v", err)
	}
	wantErrno(t, "chmod to another mode", os.Chmod(p, 0o600), syscall.EOPNOTSUPP)
	if st := statT(t, p); st.Mode&0o777 != 0o640 {
		t.Errorf("mode %o after a refused chmod", st.Mode&0o777)
	}
	if err := os.Chown(p, os.Geteuid(), os.Getegid()); err != nil {
		t.Errorf("chown to the current owner: %v", err)
	}
	wantErrno(t, "chown to another owner", os.Chown(p, 4242, 4242), syscall.EOPNOTSUPP)
	if err := unix.UtimesNano(p, []unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_NOW}}); err != nil {
		t.Errorf("touch (times = now): %v", err)
	}
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	wantErrno(t, "explicit mtime", os.Chtimes(p, old, old), syscall.EOPNOTSUPP)
	if err := os.Truncate(p, 3); err != nil {
		t.Fatal(err)
	}
	if st := statT(t, p); st.Size != 3 {
		t.Errorf("size %d after truncate to 3", st.Size)
	}
}

func statT(t testing.TB, p string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func readdirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// fsyncPath opens path and fsyncs it.
func fsyncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
