package fuse

import (
	"errors"
	"fmt"
	"io/fs"
	"log"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/aiodio/aiodio"
	gofs "github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Options configures Mount. The zero value is a read-write mount owned by
// the serving process.
type Options struct {
	// ReadOnly mounts with "ro" and answers every change with EROFS.
	ReadOnly bool
	// AllowOther lets other users than the mounting one use the mount
	// (FUSE allow_other; needs root or user_allow_other in fuse.conf).
	AllowOther bool
	// UID and GID are the owner shown for every file. 0 means the
	// serving process's effective ids.
	UID, GID uint32
	// AttrTimeout is how long the kernel may cache attributes and
	// directory entries (default 1 s; negative: 0, no caching). The volume
	// changes only through this mount, so caching is safe.
	AttrTimeout time.Duration
	// MaxBackground is the number of asynchronous requests (async direct
	// I/O, readahead) the kernel may have in flight (default 64).
	MaxBackground int
	// Debug logs every FUSE request (go-fuse's debug output) to Logger.
	Debug bool
	// Logger receives the adapter's log lines (errors without an errno,
	// recovered panics, handles closed at unmount); nil means quiet.
	Logger *slog.Logger
}

// maxIOBytes is the largest read or write the kernel sends (FUSE max_write
// and max_read; the kernel's own bound is 1 MiB).
const maxIOBytes = 1 << 20

// Server is a mounted Volume. Its methods are safe for concurrent use.
type Server struct {
	srv  *gofuse.Server
	fsys *filesystem
	dir  string

	// waitOnce runs the end-of-serving cleanup once; waitErr is its result.
	waitOnce sync.Once
	waitErr  error
}

// Mount mounts v on the directory dir (which must exist) and serves it in
// the background until Unmount or an external unmount. As root it mounts
// with mount(2) directly; otherwise through fusermount3. The caller keeps
// ownership of v: close it only after Unmount or Wait returned.
func Mount(dir string, v *aiodio.Volume, o Options) (*Server, error) {
	if v == nil {
		return nil, &fs.PathError{Op: "mount", Path: dir, Err: fmt.Errorf("nil volume: %w", syscall.EINVAL)}
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, &fs.PathError{Op: "mount", Path: dir, Err: err}
	}
	if !st.IsDir() {
		return nil, &fs.PathError{Op: "mount", Path: dir, Err: syscall.ENOTDIR}
	}
	fsys := newFilesystem(v, o)
	root := &node{fsys: fsys, isRoot: true}
	srv, err := gofs.Mount(dir, root, fsys.mountOptions(root))
	if err != nil {
		return nil, &fs.PathError{Op: "mount", Path: dir, Err: fmt.Errorf("mount failed: %w", err)}
	}
	fsys.log.Info("mounted", "dir", dir, "readOnly", o.ReadOnly)
	return &Server{srv: srv, fsys: fsys, dir: dir}, nil
}

// mountOptions builds go-fuse's options.
func (fsys *filesystem) mountOptions(root *node) *gofs.Options {
	timeout := time.Second
	switch {
	case fsys.opts.AttrTimeout > 0:
		timeout = fsys.opts.AttrTimeout
	case fsys.opts.AttrTimeout < 0:
		timeout = 0
	}
	negative := time.Duration(0) // a failed lookup is not cached: names appear through this mount only, but cheaply
	bg := fsys.opts.MaxBackground
	if bg <= 0 {
		bg = 64
	}
	mo := gofuse.MountOptions{
		AllowOther:    fsys.opts.AllowOther,
		FsName:        "aiodio",
		Name:          "aiodio",
		MaxBackground: bg,
		MaxWrite:      maxIOBytes,
		// Async direct I/O: the kernel sends the requests of one
		// O_DIRECT read or write (and io_uring's) concurrently.
		ExtraCapabilities: gofuse.CAP_ASYNC_DIO,
		DirectMount:       os.Geteuid() == 0,
		Debug:             fsys.opts.Debug,
		Logger:            log.New(&slogWriter{fsys.log}, "", 0),
		PanicHandler:      fsys.panicked,
	}
	if fsys.opts.ReadOnly {
		mo.Options = append(mo.Options, "ro")
	}
	// The adapter checks no permissions itself: let the kernel check the
	// mode bits, or with AllowOther every local user could read and
	// write every file.
	mo.Options = append(mo.Options, "default_permissions")
	return &gofs.Options{
		MountOptions:    mo,
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &negative,
		UID:             fsys.uid,
		GID:             fsys.gid,
		RootStableAttr:  &gofs.StableAttr{Ino: fsys.rootIno(), Mode: syscall.S_IFDIR},
		Logger:          log.New(&slogWriter{fsys.log}, "", 0),
	}
}

// Dir returns the mount point.
func (s *Server) Dir() string { return s.dir }

// Wait blocks until the mount is gone (Unmount, or umount/fusermount3 -u
// from outside), then closes the volume files of handles the kernel did
// not release, and returns their errors. It does not close the Volume.
func (s *Server) Wait() error {
	s.srv.Wait()
	s.waitOnce.Do(func() { s.waitErr = s.fsys.closeHandles() })
	return s.waitErr
}

// Unmount unmounts the directory (it fails with EBUSY while a process uses
// the mount; see UnmountLazy), then does what Wait does.
func (s *Server) Unmount() error {
	if err := s.srv.Unmount(); err != nil {
		return &fs.PathError{Op: "unmount", Path: s.dir, Err: err}
	}
	return s.Wait()
}

// UnmountLazy detaches the mount even while it is busy (umount -l): new
// lookups fail at once, and the serving loop ends when the last user is
// gone. It returns without waiting: call Wait.
func (s *Server) UnmountLazy() error {
	if err := unmountLazy(s.dir); err != nil {
		return &fs.PathError{Op: "unmount", Path: s.dir, Err: err}
	}
	return nil
}

// unmountLazy detaches dir: umount2(MNT_DETACH) as root, else
// fusermount3 -u -z.
func unmountLazy(dir string) error {
	if os.Geteuid() == 0 {
		return unix.Unmount(dir, unix.MNT_DETACH)
	}
	return runFusermount(dir)
}

// closeHandles closes every volume file still open for a kernel handle.
func (fsys *filesystem) closeHandles() error {
	fsys.handlesMu.Lock()
	hs := make([]*handle, 0, len(fsys.handles))
	for h := range fsys.handles {
		hs = append(hs, h)
	}
	clear(fsys.handles)
	fsys.handlesMu.Unlock()
	var errs []error
	for _, h := range hs {
		fsys.log.Warn("closing a file the kernel did not release", "file", h.file.Name())
		if err := h.file.Close(); err != nil && !errors.Is(err, aiodio.ErrFileClosed) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("aiodio fuse: closing files at unmount: %w", err)
	}
	return nil
}

// panicked answers a handler's panic with EIO and logs it.
func (fsys *filesystem) panicked(obj any) gofuse.Status {
	fsys.log.Error("panic in a FUSE handler (a bug; answered EIO)", "panic", fmt.Sprint(obj))
	return gofuse.EIO
}

// slogWriter sends go-fuse's log.Logger lines to a slog.Logger.
type slogWriter struct{ l *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	w.l.Debug(string(trimNewline(p)), "from", "go-fuse")
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && p[len(p)-1] == '\n' {
		p = p[:len(p)-1]
	}
	return p
}
