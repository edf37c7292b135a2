package check

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// DirTarget is a directory of a kernel filesystem: files are opened with
// open(2) (O_DIRECT passed through), synchronous I/O is pread/pwrite, and
// the async queue is goroutines doing the same on the file's descriptor, or
// with URing an io_uring on which every op is one request on the file's own
// descriptor (RWF_NOWAIT and RWF_DSYNC passed as rw_flags), so that the
// kernel's asynchronous direct-I/O path is what gets exercised. It lets the
// exerciser prove itself on the kernel's own AIO-DIO implementation, and
// check a filesystem's.
//
// With URing on ext4 (Linux 6.18) the run finds what Linux documents as a
// direct/buffered collision: a buffered write into a page that a direct
// write in flight also covers reads the page before the direct data lands,
// and its write-back later puts the old bytes (zeros in a hole) back over
// the completed direct write; the kernel logs "Page cache invalidation
// failure on direct I/O. Possible data corruption due to collision with
// buffered I/O!" and the next fsync fails with EIO. aiodio prevents it
// (I5: buffered writes wait for direct I/O in flight). With goroutines the
// window is too small to show in a run, so the default run proves the
// suite.
type DirTarget struct {
	Dir string
	// URing makes the async queue io_uring (see above).
	URing bool
}

// NewDirTarget returns a Target over dir, which must exist.
func NewDirTarget(dir string) (*DirTarget, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, &fs.PathError{Op: "check", Path: dir, Err: syscall.ENOTDIR}
	}
	return &DirTarget{Dir: dir}, nil
}

func (d *DirTarget) path(name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: "open", Path: name, Err: syscall.EINVAL}
	}
	return filepath.Join(d.Dir, filepath.FromSlash(name)), nil
}

func (d *DirTarget) String() string { return "dir:" + d.Dir }

// OpenFile opens name in the directory.
func (d *DirTarget) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, flag|syscall.O_CLOEXEC, perm)
	if err != nil {
		return nil, err
	}
	kf := &kernelFile{f: f, fd: int(f.Fd()), direct: flag&syscall.O_DIRECT != 0, memAlign: 4096, offAlign: 4096}
	var sx unix.Statx_t
	if err := unix.Statx(kf.fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &sx); err == nil &&
		sx.Mask&unix.STATX_DIOALIGN != 0 && sx.Dio_offset_align != 0 {
		kf.memAlign, kf.offAlign = int(sx.Dio_mem_align), int(sx.Dio_offset_align)
	}
	return kf, nil
}

func (d *DirTarget) Remove(name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	return os.Remove(p)
}

func (d *DirTarget) Stat(name string) (fs.FileInfo, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	return os.Stat(p)
}

// Sync syncs the filesystem holding the directory (syncfs).
func (d *DirTarget) Sync() error {
	f, err := os.Open(d.Dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return &fs.PathError{Op: "syncfs", Path: d.Dir, Err: err}
	}
	return nil
}

// NewAsync returns goroutines doing pread/pwrite, or with URing an
// io_uring queue.
func (d *DirTarget) NewAsync(entries int) (Async, error) {
	if d.URing {
		a, err := newURingAsync(entries)
		if err != nil {
			return nil, fmt.Errorf("check: %s: async queue: %w", d, err)
		}
		return a, nil
	}
	return newGoAsync(entries), nil
}

func (d *DirTarget) UnalignedDirect() bool { return false }

// StalePageCacheEIO: Linux reports direct/buffered collisions as EIO from
// fsync (see StalePageCacheReporter).
func (d *DirTarget) StalePageCacheEIO() bool { return true }

func (d *DirTarget) Close() error { return nil }

// kernelFile is a File over a kernel file descriptor.
type kernelFile struct {
	f                  *os.File
	fd                 int
	direct             bool
	memAlign, offAlign int
}

// ReadAt is pread(2) in a loop. Unlike os.File.ReadAt it never issues a
// misaligned continuation on an O_DIRECT descriptor: a short read there is
// end of file.
func (k *kernelFile) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Pread(k.fd, p[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, &fs.PathError{Op: "pread", Path: k.f.Name(), Err: err}
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
		if k.direct && n < len(p) && (off+int64(n))%int64(k.offAlign) != 0 {
			return n, io.EOF
		}
	}
	return n, nil
}

func (k *kernelFile) WriteAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Pwrite(k.fd, p[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, &fs.PathError{Op: "pwrite", Path: k.f.Name(), Err: err}
		}
		if m == 0 {
			return n, &fs.PathError{Op: "pwrite", Path: k.f.Name(), Err: io.ErrShortWrite}
		}
		n += m
	}
	return n, nil
}

func (k *kernelFile) Truncate(size int64) error { return k.f.Truncate(size) }

func (k *kernelFile) Fallocate(mode uint32, off, n int64) error {
	for {
		err := unix.Fallocate(k.fd, mode, off, n)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "fallocate", Path: k.f.Name(), Err: err}
		}
		return nil
	}
}

func (k *kernelFile) Sync() error { return k.f.Sync() }

func (k *kernelFile) Stat() (fs.FileInfo, error) { return k.f.Stat() }

func (k *kernelFile) DIOAlign() (mem, offset int) { return k.memAlign, k.offAlign }

func (k *kernelFile) Close() error {
	err := k.f.Close()
	if errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("close %s: %w", k.f.Name(), syscall.EBADF)
	}
	return err
}
