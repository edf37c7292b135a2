package fuse

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/aiodio/aiodio"
	"github.com/aiodio/aiodio/device/sim"
)

// TestDirectIO writes and reads through O_DIRECT descriptors: aligned
// buffers and offsets, then misaligned ones, which FUSE passes through and
// aiodio serves correctly by default; a buffered descriptor sees the same
// bytes.
func TestDirectIO(t *testing.T) {
	m := mountVolume(t, aiodio.Options{}, Options{})
	p := m.path("d")
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_DIRECT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	want := make([]byte, 256<<10)
	buf := aiodio.AlignedBuffer(128 << 10)
	copy(buf, pattern(len(buf), 5))
	if n, err := unix.Pwrite(fd, buf, 64<<10); err != nil || n != len(buf) {
		t.Fatalf("aligned direct write: %d, %v", n, err)
	}
	copy(want[64<<10:], buf)
	got := aiodio.AlignedBuffer(256 << 10)
	if n, err := unix.Pread(fd, got, 0); err != nil || n != 192<<10 {
		t.Fatalf("aligned direct read: %d, %v (want %d: end of file)", n, err, 192<<10)
	}
	mustEqual(t, "aligned direct read", got[:192<<10], want[:192<<10])

	// Misaligned memory, offset and length.
	odd := pattern(10001, 9)
	mem := make([]byte, len(odd)+1)[1:]
	copy(mem, odd)
	if n, err := unix.Pwrite(fd, mem, 200_003); err != nil || n != len(mem) {
		t.Fatalf("misaligned direct write: %d, %v", n, err)
	}
	copy(want[200_003:], odd)
	rd := make([]byte, 15001)[1:]
	if n, err := unix.Pread(fd, rd, 190_001); err != nil || n != len(rd) {
		t.Fatalf("misaligned direct read: %d, %v", n, err)
	}
	mustEqual(t, "misaligned direct read", rd, want[190_001:205_001])

	bf, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	all, err := io.ReadAll(bf)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "buffered read of direct writes", all, want[:210_004])
}

// TestDirectIOStrict proves that O_DIRECT reaches the volume: on a volume
// with StrictAlignment a misaligned write through an O_DIRECT descriptor
// fails with EINVAL (the volume's check; FUSE enforces no alignment), the
// same write through a buffered descriptor succeeds, and aligned direct
// I/O works.
func TestDirectIOStrict(t *testing.T) {
	m := mountVolume(t, aiodio.Options{StrictAlignment: true}, Options{})
	p := m.path("s")
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_DIRECT, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	buf := aiodio.AlignedBuffer(8192)
	copy(buf, pattern(8192, 2))
	_, err = unix.Pwrite(fd, buf[:1000], 0)
	wantErrno(t, "misaligned length on an O_DIRECT descriptor", err, syscall.EINVAL)
	_, err = unix.Pwrite(fd, buf[:4096], 100)
	wantErrno(t, "misaligned offset on an O_DIRECT descriptor", err, syscall.EINVAL)
	if n, err := unix.Pwrite(fd, buf, 0); err != nil || n != len(buf) {
		t.Fatalf("aligned direct write: %d, %v", n, err)
	}
	bfd, err := unix.Open(p, unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(bfd)
	if n, err := unix.Pwrite(bfd, buf[:1000], 100); err != nil || n != 1000 {
		t.Errorf("misaligned buffered write: %d, %v", n, err)
	}
}

// TestOneCache checks that buffered and direct descriptors of one file
// never disagree: a buffered reader sees a direct write made after its
// first read (no stale kernel page cache), and a direct reader sees a
// buffered write not yet written back (aiodio's I5).
func TestOneCache(t *testing.T) {
	m := mountVolume(t, aiodio.Options{}, Options{})
	p := m.path("c")
	old := pattern(64<<10, 1)
	if err := os.WriteFile(p, old, 0o644); err != nil {
		t.Fatal(err)
	}
	bf, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	dfd, err := unix.Open(p, unix.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	got := make([]byte, len(old))
	if _, err := bf.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "first buffered read", got, old)
	nw := aiodio.AlignedBuffer(16 << 10)
	copy(nw, pattern(len(nw), 77))
	if _, err := unix.Pwrite(dfd, nw, 16<<10); err != nil {
		t.Fatal(err)
	}
	if _, err := bf.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := append([]byte(nil), old...)
	copy(want[16<<10:], nw)
	mustEqual(t, "buffered read after a direct write", got, want)

	bw := pattern(4096, 33)
	if _, err := bf.WriteAt(bw, 40<<10); err != nil {
		t.Fatal(err)
	}
	copy(want[40<<10:], bw)
	dr := aiodio.AlignedBuffer(len(want))
	if n, err := unix.Pread(dfd, dr, 0); err != nil || n != len(want) {
		t.Fatalf("direct read: %d, %v", n, err)
	}
	mustEqual(t, "direct read after a buffered write", dr, want)
}

// TestRemoveOpenFile: removing a file that is open frees it (aiodio keeps
// no unlinked file alive), so the descriptor's I/O fails with ESTALE; a new
// file of the same name is a new inode that the old descriptor never sees.
func TestRemoveOpenFile(t *testing.T) {
	m := mountVolume(t, aiodio.Options{}, Options{})
	p := m.path("r")
	if err := os.WriteFile(p, []byte("old contents"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt([]byte("x"), 0)
	wantErrno(t, "write to a removed open file", err, syscall.ESTALE)
	if err := os.WriteFile(p, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 20)
	_, err = f.ReadAt(b, 0)
	wantErrno(t, "read of the removed file after a new one took its name", err, syscall.ESTALE)
	if got, err := os.ReadFile(p); err != nil || string(got) != "new" {
		t.Errorf("the new file: %q, %v", got, err)
	}
}

// TestReadOnly: a read-only mount serves reads and refuses every change
// with EROFS.
func TestReadOnly(t *testing.T) {
	m := mountVolume(t, aiodio.Options{}, Options{ReadOnly: true})
	vf, err := m.v.OpenFile("f", os.O_RDWR|os.O_CREATE, 0o644) // written through the Go API
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vf.WriteAt([]byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	vf.Close()
	if b, err := os.ReadFile(m.path("f")); err != nil || string(b) != "data" {
		t.Errorf("read on a read-only mount: %q, %v", b, err)
	}
	_, err = os.OpenFile(m.path("f"), os.O_WRONLY, 0)
	wantErrno(t, "open for writing", err, syscall.EROFS)
	_, err = os.Create(m.path("g"))
	wantErrno(t, "create", err, syscall.EROFS)
	wantErrno(t, "mkdir", os.Mkdir(m.path("d"), 0o755), syscall.EROFS)
	wantErrno(t, "remove", os.Remove(m.path("f")), syscall.EROFS)
	wantErrno(t, "truncate", os.Truncate(m.path("f"), 0), syscall.EROFS)
}

// TestFallocate: preallocation grows the size (or not, KEEP_SIZE) and
// reads zeros; a punched hole reads zeros.
func TestFallocate(t *testing.T) {
	m := mountVolume(t, aiodio.Options{}, Options{})
	f, err := os.OpenFile(m.path("a"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	data := pattern(64<<10, 4)
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 8192, 16384); err != nil {
		t.Fatal(err)
	}
	clear(data[8192 : 8192+16384])
	if err := unix.Fallocate(fd, 0, 64<<10, 32<<10); err != nil {
		t.Fatal(err)
	}
	data = append(data, make([]byte, 32<<10)...)
	if err := unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 96<<10, 32<<10); err != nil {
		t.Fatal(err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != 96<<10 {
		t.Fatalf("size after fallocate: %v, %v; want %d", fi.Size(), err, 96<<10)
	}
	got := make([]byte, len(data))
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "after punch and preallocate", got, data)
}

// TestStatfs: statfs(2) on the mount reports the volume's data area and
// free blocks (Volume.StatFS): a file of 8 MiB made durable takes at least
// its blocks from the free count, and removing it gives them back.
func TestStatfs(t *testing.T) {
	m := mountVolume(t, aiodio.Options{}, Options{})
	statfs := func() unix.Statfs_t {
		t.Helper()
		var st unix.Statfs_t
		if err := unix.Statfs(m.path("."), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	st0 := statfs()
	vs, err := m.v.StatFS()
	if err != nil {
		t.Fatal(err)
	}
	if st0.Bsize != int64(vs.BlockSize) || st0.Blocks != uint64(vs.Blocks) || st0.Bfree == 0 || st0.Bfree > st0.Blocks || st0.Files == 0 || st0.Ffree >= st0.Files {
		t.Fatalf("statfs of an empty mount: %+v (volume: %+v)", st0, vs)
	}
	const n = 8 << 20
	if err := os.WriteFile(m.path("big"), pattern(n, 5), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fsyncPath(m.path("big")); err != nil {
		t.Fatal(err)
	}
	st1 := statfs()
	if used := int64(st0.Bfree-st1.Bfree) * st0.Bsize; used < n {
		t.Fatalf("an 8 MiB durable file took %d bytes from the free count", used)
	}
	if err := os.Remove(m.path("big")); err != nil {
		t.Fatal(err)
	}
	if st2 := statfs(); st2.Bfree < st0.Bfree {
		t.Fatalf("after removing it: %d free blocks, had %d", st2.Bfree, st0.Bfree)
	}
}

// TestDsyncWriteFailsWhenSyncFails: a write on an O_DSYNC descriptor whose
// sync fails returns the error, never a success that is not durable. The
// volume is on a simulated device whose flushes fail. (Checked by hand:
// acknowledging the full write whatever the error makes the write succeed
// here.)
func TestDsyncWriteFailsWhenSyncFails(t *testing.T) {
	needFUSE(t)
	leaks := goleak.IgnoreCurrent()
	d := sim.New(sim.Options{Size: 64 << 20, Seed: 7})
	if err := aiodio.MkfsDevice(d, aiodio.MkfsOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := aiodio.OpenDevice(d, aiodio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv, err := Mount(dir, v, Options{Logger: slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		v.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
			srv.UnmountLazy()
			srv.Wait()
		}
		v.Close() // the failed flush may be reported again here
		d.Close()
		goleak.VerifyNone(t, leaks)
	})
	f, err := os.OpenFile(filepath.Join(dir, "d"), os.O_RDWR|os.O_CREATE|unix.O_DSYNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("durable"), 0); err != nil {
		t.Fatalf("O_DSYNC write with a working device: %v", err)
	}
	fail := d.FailFlush()
	defer fail.Remove()
	n, err := f.WriteAt([]byte("not durable"), 0)
	if err == nil {
		t.Fatalf("O_DSYNC write whose sync failed: %d bytes, no error", n)
	}
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("O_DSYNC write whose sync failed: %v, want EIO", err)
	}
}
