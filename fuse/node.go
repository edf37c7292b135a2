package fuse

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is one file or directory of the mount. The volume is addressed by
// path, so a node knows its parent and its name; the root has neither.
type node struct {
	gofs.Inode
	fsys *filesystem

	// parent, name and removed are protected by fsys.ptrMu, and change
	// only under fsys.namespaceMu held exclusive (rename, unlink, rmdir).
	// A removed node has no parent: its path fails with ENOENT.
	parent  *node
	name    string
	removed bool
	isRoot  bool
}

// pathOf returns n's volume path ("." for the root).
// REQUIRES: fsys.namespaceMu held (either mode), so the path stays valid
// until the caller's volume call returns.
func (n *node) pathOf() (string, syscall.Errno) {
	fsys := n.fsys
	fsys.ptrMu.Lock()
	defer fsys.ptrMu.Unlock()
	var parts []string
	c := n
	for ; c != nil && !c.isRoot; c = c.parent {
		if c.removed {
			return "", syscall.ENOENT
		}
		parts = append(parts, c.name)
	}
	if c == nil {
		return "", syscall.ENOENT // detached from the root
	}
	if len(parts) == 0 {
		return ".", 0
	}
	slices.Reverse(parts)
	return strings.Join(parts, "/"), 0
}

// childPath returns the volume path of name in directory n.
// REQUIRES: fsys.namespaceMu held (either mode).
func (n *node) childPath(name string) (string, syscall.Errno) {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return "", syscall.EINVAL
	}
	p, errno := n.pathOf()
	if errno != 0 {
		return "", errno
	}
	if p == "." {
		return name, 0
	}
	return p + "/" + name, 0
}

// newChild returns a new kernel inode for the child name of n whose
// attributes are fi, filling attr. When the kernel already knows the inode
// number, go-fuse keeps the node it has (it looks it up after Lookup
// returns), whose location moveChild and forgetChild keep current.
// REQUIRES: fsys.namespaceMu held (either mode).
func (n *node) newChild(ctx context.Context, name string, fi fs.FileInfo, attr *gofuse.Attr) *gofs.Inode {
	fsys := n.fsys
	fsys.fillAttr(fi, attr)
	ino := fileStat(fi).Ino
	mode := uint32(syscall.S_IFREG)
	if fi.IsDir() {
		mode = syscall.S_IFDIR
	}
	child := &node{fsys: fsys, parent: n, name: name}
	// Generation 0: the volume never reuses an inode number
	// (internal/meta), so a number always names the same file.
	return n.NewInode(ctx, child, gofs.StableAttr{Mode: mode, Ino: ino})
}

// forgetChild records that the volume removed name (inode ino) from n:
// the node, if the kernel still holds it, is detached.
// REQUIRES: fsys.namespaceMu held exclusive.
func (n *node) forgetChild(name string, ino uint64) {
	c := n.GetChild(name) // go-fuse's lock; not under ptrMu (a leaf)
	fsys := n.fsys
	fsys.ptrMu.Lock()
	defer fsys.ptrMu.Unlock()
	if c == nil || c.StableAttr().Ino != ino {
		return
	}
	if cn, ok := c.Operations().(*node); ok {
		cn.removed, cn.parent = true, nil
	}
}

// moveChild records that the volume moved name (inode ino) of n to
// newName in np.
// REQUIRES: fsys.namespaceMu held exclusive.
func (n *node) moveChild(name string, ino uint64, np *node, newName string) {
	c := n.GetChild(name)
	if c == nil || c.StableAttr().Ino != ino {
		return // the kernel holds no inode for it: the next lookup builds one
	}
	if cn, ok := c.Operations().(*node); ok {
		n.fsys.ptrMu.Lock()
		cn.parent, cn.name = np, newName
		n.fsys.ptrMu.Unlock()
	}
}

// stat returns the attributes of n, through the open handle h if given
// (fstat of a file whose name was removed gives ESTALE, as its I/O does).
func (n *node) stat(h *handle) (fs.FileInfo, syscall.Errno) {
	fsys := n.fsys
	if h != nil {
		fi, err := h.file.Stat()
		return fi, fsys.toErrno("stat", err)
	}
	fsys.namespaceMu.RLock()
	defer fsys.namespaceMu.RUnlock()
	p, errno := n.pathOf()
	if errno != 0 {
		return nil, errno
	}
	fi, err := fsys.v.Stat(p)
	return fi, fsys.toErrno("stat", err)
}

// Lookup resolves name in directory n.
func (n *node) Lookup(ctx context.Context, name string, out *gofuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	fsys := n.fsys
	fsys.namespaceMu.RLock()
	defer fsys.namespaceMu.RUnlock()
	p, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	fi, err := fsys.v.Stat(p)
	if err != nil {
		return nil, fsys.toErrno("lookup", err)
	}
	return n.newChild(ctx, name, fi, &out.Attr), 0
}

// Getattr returns n's attributes.
func (n *node) Getattr(ctx context.Context, f gofs.FileHandle, out *gofuse.AttrOut) syscall.Errno {
	h, _ := f.(*handle)
	fi, errno := n.stat(h)
	if errno != 0 {
		return errno
	}
	n.fsys.fillAttr(fi, &out.Attr)
	return 0
}

// Setattr truncates (FATTR_SIZE) and accepts the attribute changes the
// volume can represent (see the package doc); anything else fails with
// EOPNOTSUPP before anything is changed.
func (n *node) Setattr(ctx context.Context, f gofs.FileHandle, in *gofuse.SetAttrIn, out *gofuse.AttrOut) syscall.Errno {
	fsys := n.fsys
	h, _ := f.(*handle)
	cur, errno := n.stat(h)
	if errno != 0 {
		return errno
	}
	size, setSize := in.GetSize()
	if errno := fsys.checkAttrChange(in, cur); errno != 0 {
		return errno
	}
	if setSize {
		if fsys.opts.ReadOnly {
			return syscall.EROFS
		}
		if cur.IsDir() {
			return syscall.EISDIR
		}
		if size > uint64(1<<63-1) {
			return syscall.EFBIG
		}
		if errno := n.truncate(h, int64(size)); errno != 0 {
			return errno
		}
		if cur, errno = n.stat(h); errno != 0 {
			return errno
		}
	}
	fsys.fillAttr(cur, &out.Attr)
	return 0
}

// checkAttrChange refuses the changes of in the volume cannot store: a
// different mode, owner or explicit time.
func (fsys *filesystem) checkAttrChange(in *gofuse.SetAttrIn, cur fs.FileInfo) syscall.Errno {
	const permBits = 0o7777
	if mode, ok := in.GetMode(); ok && mode&permBits != unixMode(cur.Mode())&permBits {
		return syscall.EOPNOTSUPP
	}
	if uid, ok := in.GetUID(); ok && uid != fsys.uid {
		return syscall.EOPNOTSUPP
	}
	if gid, ok := in.GetGID(); ok && gid != fsys.gid {
		return syscall.EOPNOTSUPP
	}
	explicit := func(set, now uint32, sec uint64, nsec uint32) bool {
		if in.Valid&set == 0 || in.Valid&now != 0 {
			return false
		}
		mt := cur.ModTime()
		return int64(sec) != mt.Unix() || int64(nsec) != int64(mt.Nanosecond())
	}
	if explicit(gofuse.FATTR_MTIME, gofuse.FATTR_MTIME_NOW, in.Mtime, in.Mtimensec) ||
		explicit(gofuse.FATTR_ATIME, gofuse.FATTR_ATIME_NOW, in.Atime, in.Atimensec) {
		return syscall.EOPNOTSUPP
	}
	if fsys.opts.ReadOnly && in.Valid&(gofuse.FATTR_MODE|gofuse.FATTR_UID|gofuse.FATTR_GID|gofuse.FATTR_ATIME|gofuse.FATTR_MTIME) != 0 {
		return syscall.EROFS
	}
	return 0
}

// truncate sets n's size, through h when it is open for writing, else
// through a file opened for the purpose (truncate(2) by name).
func (n *node) truncate(h *handle, size int64) syscall.Errno {
	fsys := n.fsys
	if h != nil && h.writable {
		return fsys.toErrno("truncate", h.file.Truncate(size))
	}
	fsys.namespaceMu.RLock()
	defer fsys.namespaceMu.RUnlock()
	p, errno := n.pathOf()
	if errno != 0 {
		return errno
	}
	vf, err := fsys.v.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return fsys.toErrno("truncate", err)
	}
	err = vf.Truncate(size)
	if cerr := vf.Close(); err == nil {
		err = cerr
	}
	return fsys.toErrno("truncate", err)
}

// volumeFlags converts the kernel's open flags to the volume's: the access
// mode, O_DIRECT, O_DSYNC, O_SYNC and O_TRUNC. O_APPEND is dropped: the
// kernel sends every append at the end-of-file offset it computed under
// its inode lock.
func volumeFlags(flags uint32) int {
	return int(flags) & (unix.O_ACCMODE | syscall.O_DIRECT | unix.O_DSYNC | unix.O_SYNC | os.O_TRUNC)
}

// writes reports whether open flags ask for writing.
func writes(flags uint32) bool {
	acc := int(flags) & unix.O_ACCMODE
	return acc == os.O_WRONLY || acc == os.O_RDWR || int(flags)&os.O_TRUNC != 0
}

// Create creates and opens name in directory n.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *gofuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	fsys := n.fsys
	if fsys.opts.ReadOnly {
		return nil, nil, 0, syscall.EROFS
	}
	fsys.namespaceMu.RLock()
	defer fsys.namespaceMu.RUnlock()
	p, errno := n.childPath(name)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	vflags := volumeFlags(flags) | os.O_CREATE | int(flags)&os.O_EXCL
	vf, err := fsys.v.OpenFile(p, vflags, fs.FileMode(mode&0o777))
	if err != nil {
		return nil, nil, 0, fsys.toErrno("create", err)
	}
	fi, err := vf.Stat()
	if err != nil {
		vf.Close()
		return nil, nil, 0, fsys.toErrno("create", err)
	}
	h := fsys.newHandle(vf, fileStat(fi).Ino, vflags)
	return n.newChild(ctx, name, fi, &out.Attr), h, openFlags, 0
}

// openFlags are returned by every open: no kernel page cache (one cache:
// aiodio's), and non-extending direct writes in parallel.
const openFlags = gofuse.FOPEN_DIRECT_IO | gofuse.FOPEN_PARALLEL_DIRECT_WRITES

// Open opens the file n.
func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	fsys := n.fsys
	if fsys.opts.ReadOnly && writes(flags) {
		return nil, 0, syscall.EROFS
	}
	fsys.namespaceMu.RLock()
	defer fsys.namespaceMu.RUnlock()
	p, errno := n.pathOf()
	if errno != 0 {
		return nil, 0, errno
	}
	vflags := volumeFlags(flags)
	ino := n.StableAttr().Ino
	vf, err := fsys.v.OpenFile(p, vflags, 0)
	if err != nil {
		return nil, 0, fsys.toErrno("open", err)
	}
	return fsys.newHandle(vf, ino, vflags), openFlags, 0
}

// Read reads from an open file.
func (n *node) Read(ctx context.Context, f gofs.FileHandle, dest []byte, off int64) (gofuse.ReadResult, syscall.Errno) {
	h, ok := f.(*handle)
	if !ok {
		return nil, syscall.EBADF
	}
	return h.read(dest, off)
}

// Write writes to an open file. A write that did part of its work before
// an error (ENOSPC, EIO) reports the part: the caller sees a short write
// and its retry of the rest gets the error.
func (n *node) Write(ctx context.Context, f gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	h, ok := f.(*handle)
	if !ok {
		return 0, syscall.EBADF
	}
	if n.fsys.opts.ReadOnly {
		return 0, syscall.EROFS
	}
	if hook := testHookWrite.Load(); hook != nil {
		(*hook)(h.direct)
	}
	nw, err := h.file.WriteAt(data, off)
	// A short write reports its part (the retry of the rest gets the
	// error), except where the error concerns bytes already counted: a
	// full write whose O_DSYNC/O_SYNC sync failed, or any partial write on
	// such a handle (its part was never synced). Those report the error,
	// never a success that is not durable.
	if err != nil && (nw == 0 || nw == len(data) || h.dsync) {
		return 0, n.fsys.toErrno("write", err)
	}
	return uint32(nw), 0
}

// testHookWrite, when set (by tests only), is called by every write
// before it reaches the volume, with whether its handle is direct.
var testHookWrite atomic.Pointer[func(direct bool)]

// Fsync makes an open file durable (data and metadata: fdatasync and
// fsync do the same), or for a directory the volume's metadata.
func (n *node) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno {
	fsys := n.fsys
	if h, ok := f.(*handle); ok {
		return fsys.toErrno("fsync", h.file.Sync())
	}
	fsys.namespaceMu.RLock()
	defer fsys.namespaceMu.RUnlock()
	p, errno := n.pathOf()
	if errno != 0 {
		return errno
	}
	vf, err := fsys.v.OpenFile(p, os.O_RDONLY, 0)
	if err != nil {
		return fsys.toErrno("fsync", err)
	}
	err = vf.Sync()
	if cerr := vf.Close(); err == nil {
		err = cerr
	}
	return fsys.toErrno("fsync", err)
}

// Flush (close(2) of a descriptor) writes nothing back, like a local
// filesystem: durability comes from fsync (see the package doc).
func (n *node) Flush(ctx context.Context, f gofs.FileHandle) syscall.Errno { return 0 }

// Release closes the volume file of a handle (the last close of its
// descriptors). Its error cannot reach the caller; it is logged.
func (n *node) Release(ctx context.Context, f gofs.FileHandle) syscall.Errno {
	h, ok := f.(*handle)
	if !ok {
		return 0
	}
	return h.release()
}

// Mkdir creates the directory name in n.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *gofuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	fsys := n.fsys
	if fsys.opts.ReadOnly {
		return nil, syscall.EROFS
	}
	fsys.namespaceMu.RLock()
	defer fsys.namespaceMu.RUnlock()
	p, errno := n.childPath(name)
	if errno != 0 {
		return nil, errno
	}
	if err := fsys.v.Mkdir(p, fs.FileMode(mode&0o777)); err != nil {
		return nil, fsys.toErrno("mkdir", err)
	}
	fi, err := fsys.v.Stat(p)
	if err != nil {
		return nil, fsys.toErrno("mkdir", err)
	}
	return n.newChild(ctx, name, fi, &out.Attr), 0
}

// Unlink removes the file name from n (EISDIR for a directory).
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.remove(name, false)
}

// Rmdir removes the empty directory name from n (ENOTDIR for a file,
// ENOTEMPTY for a directory with entries).
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.remove(name, true)
}

func (n *node) remove(name string, dir bool) syscall.Errno {
	fsys := n.fsys
	if fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	fsys.namespaceMu.Lock()
	defer fsys.namespaceMu.Unlock()
	p, errno := n.childPath(name)
	if errno != 0 {
		return errno
	}
	fi, err := fsys.v.Stat(p)
	if err != nil {
		return fsys.toErrno("remove", err)
	}
	switch {
	case dir && !fi.IsDir():
		return syscall.ENOTDIR
	case !dir && fi.IsDir():
		return syscall.EISDIR
	}
	if err := fsys.v.Remove(p); err != nil {
		return fsys.toErrno("remove", err)
	}
	n.forgetChild(name, fileStat(fi).Ino)
	return 0
}

// Rename moves name in n to newName in newParent, replacing what is there
// (RENAME_NOREPLACE: EEXIST instead). RENAME_EXCHANGE and RENAME_WHITEOUT
// are not supported (EINVAL, as Linux answers for a filesystem without
// them).
func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	fsys := n.fsys
	if fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	np, ok := newParent.(*node)
	if !ok || np.fsys != fsys {
		return syscall.EXDEV
	}
	if flags&^uint32(unix.RENAME_NOREPLACE) != 0 {
		return syscall.EINVAL
	}
	fsys.namespaceMu.Lock()
	defer fsys.namespaceMu.Unlock()
	from, errno := n.childPath(name)
	if errno != 0 {
		return errno
	}
	to, errno := np.childPath(newName)
	if errno != 0 {
		return errno
	}
	src, err := fsys.v.Stat(from)
	if err != nil {
		return fsys.toErrno("rename", err)
	}
	srcIno := fileStat(src).Ino
	dst, derr := fsys.v.Stat(to)
	if derr != nil && !errors.Is(derr, fs.ErrNotExist) {
		return fsys.toErrno("rename", derr)
	}
	replaced := derr == nil
	if replaced {
		if flags&unix.RENAME_NOREPLACE != 0 {
			return syscall.EEXIST
		}
		if fileStat(dst).Ino == srcIno {
			return 0 // rename(2) of a name onto itself does nothing
		}
		switch {
		case dst.IsDir() && !src.IsDir():
			return syscall.EISDIR
		case !dst.IsDir() && src.IsDir():
			return syscall.ENOTDIR
		}
	}
	if err := fsys.v.Rename(from, to); err != nil {
		return fsys.toErrno("rename", err)
	}
	if replaced {
		np.forgetChild(newName, fileStat(dst).Ino)
	}
	n.moveChild(name, srcIno, np, newName)
	return 0
}

// Opendir checks that n is still a directory of the volume.
func (n *node) Opendir(ctx context.Context) syscall.Errno {
	fi, errno := n.stat(nil)
	if errno != 0 {
		return errno
	}
	if !fi.IsDir() {
		return syscall.ENOTDIR
	}
	return 0
}

// Readdir lists directory n (a snapshot taken at opendir/rewind).
func (n *node) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	fsys := n.fsys
	fsys.namespaceMu.RLock()
	defer fsys.namespaceMu.RUnlock()
	p, errno := n.pathOf()
	if errno != 0 {
		return nil, errno
	}
	ents, err := fsys.v.ReadDir(p)
	if err != nil {
		return nil, fsys.toErrno("readdir", err)
	}
	list := make([]gofuse.DirEntry, 0, len(ents))
	for _, e := range ents {
		de := gofuse.DirEntry{Name: e.Name(), Mode: syscall.S_IFREG}
		if e.IsDir() {
			de.Mode = syscall.S_IFDIR
		}
		if fi, err := e.Info(); err == nil {
			de.Ino = fileStat(fi).Ino
		}
		list = append(list, de)
	}
	return gofs.NewListDirStream(list), 0
}

// Allocate is fallocate(2) on an open file (modes as File.Fallocate:
// 0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE[|KEEP_SIZE]; others
// EOPNOTSUPP).
func (n *node) Allocate(ctx context.Context, f gofs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	h, ok := f.(*handle)
	if !ok {
		return syscall.EBADF
	}
	if n.fsys.opts.ReadOnly {
		return syscall.EROFS
	}
	if off > 1<<63-1 || size > 1<<63-1 {
		return syscall.EFBIG
	}
	return n.fsys.toErrno("fallocate", h.file.Fallocate(mode, int64(off), int64(size)))
}

// Statfs reports the volume's data area, its free blocks (those freed but
// not yet durable count as free, as df expects right after rm), its inodes
// in use and an estimate of the inodes its metadata budget has room for.
func (n *node) Statfs(ctx context.Context, out *gofuse.StatfsOut) syscall.Errno {
	st, err := n.fsys.v.StatFS()
	if err != nil {
		return n.fsys.toErrno("statfs", err)
	}
	out.Bsize = uint32(st.BlockSize)
	out.Frsize = uint32(st.BlockSize)
	out.NameLen = 255
	out.Blocks = uint64(st.Blocks)
	out.Bfree = uint64(st.Free + st.Pending)
	out.Bavail = out.Bfree
	perInode := max(1, st.MetaBytes/max(1, st.Inodes))
	freeInodes := max(0, (st.MetaBudget-st.MetaBytes)/perInode)
	out.Files = uint64(st.Inodes + freeInodes)
	out.Ffree = uint64(freeInodes)
	return 0
}
