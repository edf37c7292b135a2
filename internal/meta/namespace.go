package meta

import (
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/aiodio/aiodio/internal/format"
)

// pathMax bounds a whole path, like Linux's PATH_MAX.
const pathMax = 4096

// checkName validates one directory entry name.
func checkName(name string) error {
	switch {
	case len(name) > format.NameMax:
		return syscall.ENAMETOOLONG
	case name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00"):
		return syscall.EINVAL
	}
	return nil
}

// checkPath validates a path by io/fs.ValidPath rules plus name limits.
func checkPath(name string) error {
	if len(name) > pathMax {
		return syscall.ENAMETOOLONG
	}
	if strings.IndexByte(name, 0) >= 0 || !fs.ValidPath(name) {
		return syscall.EINVAL
	}
	if name == "." {
		return nil
	}
	for elem := range strings.SplitSeq(name, "/") {
		if err := checkName(elem); err != nil {
			return err
		}
	}
	return nil
}

// walkLocked resolves a checked path to an inode. A non-directory in the
// middle gives ENOTDIR.
// REQUIRES: f.mu held.
func (f *FS) walkLocked(name string) (Ino, error) {
	cur := RootIno
	if name == "." {
		return cur, nil
	}
	for elem := range strings.SplitSeq(name, "/") {
		d, err := f.dir(cur)
		if err != nil {
			return 0, err
		}
		next, ok := d.dir[elem]
		if !ok {
			return 0, syscall.ENOENT
		}
		cur = next
	}
	if f.inodes[cur] == nil {
		return 0, syscall.ENOENT
	}
	return cur, nil
}

// parentLocked resolves the directory holding a checked path other than ".".
// REQUIRES: f.mu held.
func (f *FS) parentLocked(name string) (Ino, string, error) {
	dirName, base := ".", name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		dirName, base = name[:i], name[i+1:]
	}
	p, err := f.walkLocked(dirName)
	if err != nil {
		return 0, "", err
	}
	if _, err := f.dir(p); err != nil {
		return 0, "", err
	}
	return p, base, nil
}

// usableLocked says whether updates are possible.
// REQUIRES: f.mu held.
func (f *FS) usableLocked() error {
	switch {
	case f.closed || f.closing:
		return ErrClosed
	case f.err != nil:
		return f.err
	case f.readOnly:
		return ErrReadOnly
	}
	return nil
}

// doLocked applies r, queues it for the journal and parks what it freed
// until r is durable. It reports whether the queue is long enough that the
// caller should commit after unlocking.
// REQUIRES: f.mu held for writing.
func (f *FS) doLocked(r *format.Record) (bool, error) {
	if err := f.usableLocked(); err != nil {
		return false, err
	}
	freed, err := f.apply(r)
	if err != nil {
		return false, err
	}
	f.lastLSN++
	f.jbuf = format.AppendRecord(f.jbuf, r)
	f.jrecs++
	for _, s := range freed {
		f.pending = append(f.pending, pendingFree{lsn: f.lastLSN, s: s})
		f.pendingN += s.count
	}
	return int64(len(f.jbuf)) > int64(f.sb.JournalBlocks)*f.bs/4, nil
}

// update runs fn under the write lock and commits afterwards when the queue
// of records grew long (bounding memory when callers rarely commit).
func (f *FS) update(fn func() (bool, error)) error {
	f.mu.Lock()
	full, err := fn()
	f.mu.Unlock()
	if full {
		_ = f.Commit() // a failure is sticky and reported by the next call
	}
	return err
}

func now() int64 { return time.Now().UnixNano() }

// Lookup resolves a path (io/fs.ValidPath rules; "." is the root).
func (f *FS) Lookup(name string) (Ino, error) {
	if err := checkPath(name); err != nil {
		return 0, pathErr("lookup", name, err)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return 0, pathErr("lookup", name, ErrClosed)
	}
	ino, err := f.walkLocked(name)
	return ino, pathErr("lookup", name, err)
}

// Create opens or creates the regular file name with permission bits
// mode.Perm(). With excl an existing entry gives EEXIST; an existing
// directory gives EISDIR. created says whether the file is new.
func (f *FS) Create(name string, mode fs.FileMode, excl bool) (ino Ino, created bool, err error) {
	if err := checkPath(name); err != nil {
		return 0, false, pathErr("create", name, err)
	}
	if name == "." {
		return 0, false, pathErr("create", name, syscall.EISDIR)
	}
	err = f.update(func() (bool, error) {
		p, base, err := f.parentLocked(name)
		if err != nil {
			return false, err
		}
		if old, ok := f.inodes[p].dir[base]; ok {
			switch {
			case excl:
				return false, syscall.EEXIST
			case f.inodes[old] != nil && f.inodes[old].isDir():
				return false, syscall.EISDIR
			}
			ino = old
			return false, nil
		}
		if err := f.budgetLocked(base); err != nil {
			return false, err
		}
		ino = f.nextIno
		created = true
		return f.doLocked(&format.Record{Type: format.RecCreate, Parent: uint64(p), Name: base,
			Ino: uint64(ino), Mode: uint32(mode.Perm()), Time: now()})
	})
	if err != nil {
		return 0, false, pathErr("create", name, err)
	}
	return ino, created, nil
}

// budgetLocked fails with ENOSPC when one more inode named base would not
// fit in a checkpoint slot.
func (f *FS) budgetLocked(base string) error {
	if f.metaBytes+inodeCost+direntCost(base) > f.inodeBudget {
		return syscall.ENOSPC
	}
	return nil
}

// Mkdir creates directory name with permission bits mode.Perm().
func (f *FS) Mkdir(name string, mode fs.FileMode) (Ino, error) {
	if err := checkPath(name); err != nil {
		return 0, pathErr("mkdir", name, err)
	}
	if name == "." {
		return 0, pathErr("mkdir", name, syscall.EEXIST)
	}
	var ino Ino
	err := f.update(func() (bool, error) {
		p, base, err := f.parentLocked(name)
		if err != nil {
			return false, err
		}
		if _, ok := f.inodes[p].dir[base]; ok {
			return false, syscall.EEXIST
		}
		if err := f.budgetLocked(base); err != nil {
			return false, err
		}
		ino = f.nextIno
		return f.doLocked(&format.Record{Type: format.RecCreate, Parent: uint64(p), Name: base,
			Ino: uint64(ino), Mode: uint32(fs.ModeDir | mode.Perm()), Time: now()})
	})
	if err != nil {
		return 0, pathErr("mkdir", name, err)
	}
	return ino, nil
}

// remove unlinks name; want is 'f' (files only), 'd' (directories only) or 0.
func (f *FS) remove(op, name string, want byte) error {
	if err := checkPath(name); err != nil {
		return pathErr(op, name, err)
	}
	if name == "." {
		return pathErr(op, name, syscall.EBUSY)
	}
	err := f.update(func() (bool, error) {
		p, base, err := f.parentLocked(name)
		if err != nil {
			return false, err
		}
		ino, ok := f.inodes[p].dir[base]
		if !ok {
			return false, syscall.ENOENT
		}
		if c := f.inodes[ino]; c != nil {
			if want == 'f' && c.isDir() {
				return false, syscall.EISDIR
			}
			if want == 'd' && !c.isDir() {
				return false, syscall.ENOTDIR
			}
		}
		return f.doLocked(&format.Record{Type: format.RecRemove, Parent: uint64(p), Name: base, Time: now()})
	})
	return pathErr(op, name, err)
}

// Unlink removes a regular file (EISDIR for a directory). Its blocks become
// allocatable once the removal is durable.
func (f *FS) Unlink(name string) error { return f.remove("unlink", name, 'f') }

// Rmdir removes an empty directory (ENOTDIR for a file, ENOTEMPTY).
func (f *FS) Rmdir(name string) error { return f.remove("rmdir", name, 'd') }

// Remove removes a file or an empty directory, like os.Remove.
func (f *FS) Remove(name string) error { return f.remove("remove", name, 0) }

// Rename moves from to to, replacing an existing file (or an empty directory
// when from is a directory). Moving a directory into its own subtree gives
// EINVAL; the root cannot be renamed or replaced (EBUSY).
func (f *FS) Rename(from, to string) error {
	for _, n := range []string{from, to} {
		if err := checkPath(n); err != nil {
			return pathErr("rename", n, err)
		}
		if n == "." {
			return pathErr("rename", n, syscall.EBUSY)
		}
	}
	err := f.update(func() (bool, error) {
		sp, sbase, err := f.parentLocked(from)
		if err != nil {
			return false, err
		}
		if _, ok := f.inodes[sp].dir[sbase]; !ok {
			return false, syscall.ENOENT
		}
		dp, dbase, err := f.parentLocked(to)
		if err != nil {
			return false, err
		}
		if sp == dp && sbase == dbase {
			return false, nil
		}
		return f.doLocked(&format.Record{Type: format.RecRename, Parent: uint64(sp), Name: sbase,
			Parent2: uint64(dp), Name2: dbase, Time: now()})
	})
	if err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// ReadDir lists a directory sorted by name.
func (f *FS) ReadDir(name string) ([]DirEntry, error) {
	if err := checkPath(name); err != nil {
		return nil, pathErr("readdir", name, err)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, pathErr("readdir", name, ErrClosed)
	}
	ino, err := f.walkLocked(name)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	d, err := f.dir(ino)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	out := make([]DirEntry, 0, len(d.dir))
	for n, c := range d.dir {
		e := DirEntry{Name: n, Ino: c}
		if ci := f.inodes[c]; ci != nil {
			e.Mode = ci.mode
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b DirEntry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Attr returns an inode's attributes.
func (f *FS) Attr(ino Ino) (Attr, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := f.inodes[ino]
	if n == nil {
		return Attr{}, inoErr("attr", ino, syscall.ENOENT)
	}
	return f.attrLocked(ino, n), nil
}

func (f *FS) attrLocked(ino Ino, n *inode) Attr {
	return Attr{Ino: ino, Mode: n.mode, Size: n.size, Nlink: n.nlink,
		Mtime: time.Unix(0, n.mtime), Ctime: time.Unix(0, n.ctime), Blocks: n.blocks}
}

// Stat resolves name and returns its attributes.
func (f *FS) Stat(name string) (Attr, error) {
	ino, err := f.Lookup(name)
	if err != nil {
		return Attr{}, err
	}
	a, err := f.Attr(ino)
	return a, pathErr("stat", name, err)
}

// SetAttr sets an inode's permission bits and mtime (ctime = mtime).
func (f *FS) SetAttr(ino Ino, mode fs.FileMode, mtime time.Time) error {
	return inoErr("setattr", ino, f.update(func() (bool, error) {
		return f.doLocked(&format.Record{Type: format.RecSetAttr, Ino: uint64(ino), Mode: uint32(mode.Perm()), Time: mtime.UnixNano()})
	}))
}
