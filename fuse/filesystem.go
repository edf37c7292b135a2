package fuse

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	"github.com/aiodio/aiodio"
	gofs "github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
)

// filesystem is the state shared by every node of one mount.
type filesystem struct {
	v    *aiodio.Volume
	opts Options
	log  *slog.Logger
	uid  uint32
	gid  uint32
	bs   int

	// namespaceMu orders path resolution against path changes: unlink,
	// rmdir and rename hold it exclusive from their volume call until the
	// nodes are updated; every other call that resolves a node's path
	// holds it shared until its volume call returned. Outer to every
	// volume lock.
	namespaceMu sync.RWMutex

	// ptrMu protects every node's parent, name and removed fields. A
	// leaf: nothing is taken while it is held.
	ptrMu sync.Mutex

	// handlesMu protects handles, the volume files open for kernel file
	// handles (closed at unmount if the kernel never released them). A
	// leaf.
	handlesMu sync.Mutex
	handles   map[*handle]struct{}

	// bufs holds page-aligned maxIOBytes buffers for direct reads whose
	// destination is not aligned (*[]byte).
	bufs sync.Pool
}

func newFilesystem(v *aiodio.Volume, o Options) *filesystem {
	fsys := &filesystem{
		v:       v,
		opts:    o,
		log:     o.Logger,
		uid:     o.UID,
		gid:     o.GID,
		bs:      v.BlockSize(),
		handles: make(map[*handle]struct{}),
	}
	fsys.log = newFilesystemLogger(o.Logger)
	if fsys.uid == 0 {
		fsys.uid = uint32(os.Geteuid())
	}
	if fsys.gid == 0 {
		fsys.gid = uint32(os.Getegid())
	}
	fsys.bufs.New = func() any {
		b := aiodio.AlignedBuffer(maxIOBytes)
		return &b
	}
	return fsys
}

// newFilesystemLogger returns l, or a logger that discards when l is nil.
func newFilesystemLogger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// rootIno is the volume's root inode number (1 if it cannot be read: the
// first Getattr will report the error).
func (fsys *filesystem) rootIno() uint64 {
	fi, err := fsys.v.Stat(".")
	if err != nil {
		return 1
	}
	return fileStat(fi).Ino
}

// fileStat returns fi's aiodio.FileStat (zero if fi is not from aiodio).
func fileStat(fi fs.FileInfo) *aiodio.FileStat {
	if st, ok := fi.Sys().(*aiodio.FileStat); ok && st != nil {
		return st
	}
	return &aiodio.FileStat{}
}

// fillAttr converts a volume FileInfo to FUSE attributes.
func (fsys *filesystem) fillAttr(fi fs.FileInfo, out *gofuse.Attr) {
	st := fileStat(fi)
	out.Ino = st.Ino
	out.Size = uint64(fi.Size())
	out.Blocks = uint64(st.Blocks)
	out.Blksize = uint32(fsys.bs)
	out.Nlink = st.Nlink
	out.Mode = unixMode(fi.Mode())
	mt := fi.ModTime()
	out.SetTimes(&mt, &mt, &st.Ctime)
	out.Owner = gofuse.Owner{Uid: fsys.uid, Gid: fsys.gid}
}

// unixMode converts an fs.FileMode to st_mode bits.
func unixMode(m fs.FileMode) uint32 {
	mode := uint32(m.Perm())
	switch {
	case m.IsDir():
		mode |= syscall.S_IFDIR
	case m.IsRegular():
		mode |= syscall.S_IFREG
	case m&fs.ModeSymlink != 0:
		mode |= syscall.S_IFLNK
	}
	if m&fs.ModeSetuid != 0 {
		mode |= syscall.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		mode |= syscall.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		mode |= syscall.S_ISVTX
	}
	return mode
}

// toErrno maps a volume error to the errno the kernel returns to the
// caller: the error's own errno when it has one (every aiodio error does),
// else EIO, logged.
func (fsys *filesystem) toErrno(op string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		if en == 0 {
			return syscall.EIO
		}
		return en
	}
	switch {
	case errors.Is(err, io.ErrShortWrite), errors.Is(err, io.ErrUnexpectedEOF):
		return syscall.EIO
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.Is(err, fs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, fs.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, fs.ErrClosed):
		return syscall.EBADF
	}
	fsys.log.Warn("volume error without an errno (answered EIO)", "op", op, "err", err)
	return syscall.EIO
}

// addHandle and dropHandle keep the set of open volume files.
func (fsys *filesystem) addHandle(h *handle) {
	fsys.handlesMu.Lock()
	fsys.handles[h] = struct{}{}
	fsys.handlesMu.Unlock()
}

// dropHandle removes h from the set; it reports false if h was not there
// (already closed at unmount).
func (fsys *filesystem) dropHandle(h *handle) bool {
	fsys.handlesMu.Lock()
	defer fsys.handlesMu.Unlock()
	if _, ok := fsys.handles[h]; !ok {
		return false
	}
	delete(fsys.handles, h)
	return true
}

// runFusermount lazily unmounts dir through fusermount3 (or fusermount).
func runFusermount(dir string) error {
	var out []byte
	var err error
	for _, prog := range []string{"fusermount3", "fusermount"} {
		if _, lerr := exec.LookPath(prog); lerr != nil {
			err = lerr
			continue
		}
		out, err = exec.Command(prog, "-u", "-z", dir).CombinedOutput()
		if err == nil {
			return nil
		}
		break
	}
	if len(out) > 0 {
		return errors.New(strings.TrimSpace(string(out)) + ": " + err.Error())
	}
	return err
}

// compile-time checks: the node implements what the doc promises.
var (
	_ gofs.NodeLookuper  = (*node)(nil)
	_ gofs.NodeGetattrer = (*node)(nil)
	_ gofs.NodeSetattrer = (*node)(nil)
	_ gofs.NodeCreater   = (*node)(nil)
	_ gofs.NodeOpener    = (*node)(nil)
	_ gofs.NodeReader    = (*node)(nil)
	_ gofs.NodeWriter    = (*node)(nil)
	_ gofs.NodeFsyncer   = (*node)(nil)
	_ gofs.NodeFlusher   = (*node)(nil)
	_ gofs.NodeReleaser  = (*node)(nil)
	_ gofs.NodeMkdirer   = (*node)(nil)
	_ gofs.NodeUnlinker  = (*node)(nil)
	_ gofs.NodeRmdirer   = (*node)(nil)
	_ gofs.NodeRenamer   = (*node)(nil)
	_ gofs.NodeReaddirer = (*node)(nil)
	_ gofs.NodeAllocater = (*node)(nil)
	_ gofs.NodeStatfser  = (*node)(nil)
	_ gofs.NodeOpendirer = (*node)(nil)
)
