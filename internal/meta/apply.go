package meta

import (
	"io/fs"
	"syscall"

	"github.com/aiodio/aiodio/internal/format"
)

// maxFileBlocks bounds file block numbers so that byte offsets fit in int64.
func (f *FS) maxFileBlocks() int64 { return (1 << 62) / f.bs }

// apply applies one record to the in-memory metadata and returns the device
// spans it freed. It validates everything it relies on and returns an errno
// (never panics) so that replay of a damaged journal fails cleanly; live
// operations validate first and use the same function, so replay and live
// updates can never disagree.
//
// REQUIRES: f.mu held for writing.
func (f *FS) apply(r *format.Record) ([]span, error) {
	switch r.Type {
	case format.RecCreate:
		return nil, f.applyCreate(r)
	case format.RecRemove:
		return f.applyRemove(r)
	case format.RecRename:
		return f.applyRename(r)
	case format.RecSetSize:
		return f.applySetSize(r)
	case format.RecAlloc:
		return nil, f.applyAlloc(r)
	case format.RecConvert, format.RecUnwrite:
		return nil, f.applyState(r)
	case format.RecPunch:
		return f.applyPunch(r)
	case format.RecSetAttr:
		n, err := f.fileOrDir(Ino(r.Ino))
		if err != nil {
			return nil, err
		}
		n.mode = n.mode&^fs.ModePerm | fs.FileMode(r.Mode)&fs.ModePerm
		n.mtime, n.ctime = r.Time, r.Time
		return nil, nil
	}
	return nil, syscall.EINVAL
}

func (f *FS) fileOrDir(ino Ino) (*inode, error) {
	n := f.inodes[ino]
	if n == nil {
		return nil, syscall.ENOENT
	}
	return n, nil
}

func (f *FS) file(ino Ino) (*inode, error) {
	n := f.inodes[ino]
	if n == nil {
		return nil, syscall.ENOENT
	}
	if n.isDir() {
		return nil, syscall.EISDIR
	}
	return n, nil
}

func (f *FS) dir(ino Ino) (*inode, error) {
	n := f.inodes[ino]
	if n == nil {
		return nil, syscall.ENOENT
	}
	if !n.isDir() {
		return nil, syscall.ENOTDIR
	}
	return n, nil
}

func (f *FS) applyCreate(r *format.Record) error {
	p, err := f.dir(Ino(r.Parent))
	if err != nil {
		return err
	}
	if err := checkName(r.Name); err != nil {
		return err
	}
	if _, ok := p.dir[r.Name]; ok {
		return syscall.EEXIST
	}
	ino := Ino(r.Ino)
	if ino <= RootIno || f.inodes[ino] != nil {
		return syscall.EINVAL
	}
	mode := fs.FileMode(r.Mode)
	if mode&fs.ModeType&^fs.ModeDir != 0 {
		return syscall.EINVAL
	}
	n := &inode{mode: mode, nlink: 1, mtime: r.Time, ctime: r.Time}
	if mode.IsDir() {
		n.nlink = 2
		n.parent = Ino(r.Parent)
		n.dir = make(map[string]Ino)
		p.nlink++
	}
	f.inodes[ino] = n
	p.dir[r.Name] = ino
	p.mtime, p.ctime = r.Time, r.Time
	f.nextIno = max(f.nextIno, ino+1)
	f.metaBytes += inodeCost + direntCost(r.Name)
	return nil
}

// unlinkLocked removes entry name (child c) from p and frees c.
func (f *FS) unlinkEntry(p *inode, name string, ino Ino, freed []span) []span {
	c := f.inodes[ino]
	delete(p.dir, name)
	f.metaBytes -= direntCost(name)
	if c == nil {
		return freed
	}
	if c.isDir() {
		p.nlink--
	}
	if c.nlink > 0 {
		c.nlink--
	}
	if c.isDir() || c.nlink == 0 {
		c.ext.all(func(e format.Extent) { freed = append(freed, span{e.DevBlock, e.Count}) })
		f.nExtents -= int64(c.ext.n)
		f.metaBytes -= inodeCost
		delete(f.inodes, ino)
	}
	return freed
}

func (f *FS) applyRemove(r *format.Record) ([]span, error) {
	p, err := f.dir(Ino(r.Parent))
	if err != nil {
		return nil, err
	}
	ino, ok := p.dir[r.Name]
	if !ok {
		return nil, syscall.ENOENT
	}
	if c := f.inodes[ino]; c != nil && c.isDir() && len(c.dir) > 0 {
		return nil, syscall.ENOTEMPTY
	}
	p.mtime, p.ctime = r.Time, r.Time
	return f.unlinkEntry(p, r.Name, ino, nil), nil
}

// isAncestor reports whether a is d or one of d's ancestors (bounded walk).
func (f *FS) isAncestor(a, d Ino) bool {
	for steps := 0; steps <= len(f.inodes); steps++ {
		if d == a {
			return true
		}
		n := f.inodes[d]
		if n == nil || d == RootIno {
			return false
		}
		d = n.parent
	}
	return true // a cycle: treat as inside, refuse
}

func (f *FS) applyRename(r *format.Record) ([]span, error) {
	sp, err := f.dir(Ino(r.Parent))
	if err != nil {
		return nil, err
	}
	dp, err := f.dir(Ino(r.Parent2))
	if err != nil {
		return nil, err
	}
	if err := checkName(r.Name2); err != nil {
		return nil, err
	}
	sino, ok := sp.dir[r.Name]
	if !ok {
		return nil, syscall.ENOENT
	}
	if r.Parent == r.Parent2 && r.Name == r.Name2 {
		return nil, nil
	}
	src := f.inodes[sino]
	if src == nil {
		return nil, syscall.ENOENT
	}
	if src.isDir() && f.isAncestor(sino, Ino(r.Parent2)) {
		return nil, syscall.EINVAL
	}
	var freed []span
	if dino, ok := dp.dir[r.Name2]; ok {
		if dino == sino {
			return nil, nil
		}
		dst := f.inodes[dino]
		if dst != nil {
			switch {
			case src.isDir() && !dst.isDir():
				return nil, syscall.ENOTDIR
			case !src.isDir() && dst.isDir():
				return nil, syscall.EISDIR
			case dst.isDir() && len(dst.dir) > 0:
				return nil, syscall.ENOTEMPTY
			}
		}
		freed = f.unlinkEntry(dp, r.Name2, dino, nil)
	}
	delete(sp.dir, r.Name)
	dp.dir[r.Name2] = sino
	f.metaBytes += int64(len(r.Name2)) - int64(len(r.Name))
	if src.isDir() && r.Parent != r.Parent2 {
		sp.nlink--
		dp.nlink++
		src.parent = Ino(r.Parent2)
	}
	sp.mtime, sp.ctime = r.Time, r.Time
	dp.mtime, dp.ctime = r.Time, r.Time
	src.ctime = r.Time
	return freed, nil
}

func (f *FS) applySetSize(r *format.Record) ([]span, error) {
	n, err := f.file(Ino(r.Ino))
	if err != nil {
		return nil, err
	}
	if r.Size < 0 || r.Size > f.maxFileBlocks()*f.bs {
		return nil, syscall.EFBIG
	}
	var freed []span
	if r.Flags&format.FlagTruncate != 0 {
		first := (r.Size + f.bs - 1) / f.bs
		before := n.ext.n
		n.ext.modify(first, f.maxFileBlocks(), func(w []format.Extent) []format.Extent {
			w, freed = extRemove(w, first, f.maxFileBlocks(), freed)
			return w
		})
		f.accountFreed(n, before, freed)
	}
	n.size = r.Size
	n.mtime, n.ctime = r.Time, r.Time
	return freed, nil
}

func (f *FS) accountFreed(n *inode, before int, freed []span) {
	for _, s := range freed {
		n.blocks -= s.count
	}
	f.nExtents += int64(n.ext.n - before)
}

// checkRange validates a file block range.
func (f *FS) checkRange(fb, count int64) error {
	if fb < 0 || count < 0 || fb > f.maxFileBlocks()-count {
		return syscall.EINVAL
	}
	return nil
}

func (f *FS) applyAlloc(r *format.Record) error {
	n, err := f.file(Ino(r.Ino))
	if err != nil {
		return err
	}
	if r.Count <= 0 || f.checkRange(r.FileBlock, r.Count) != nil ||
		r.DevBlock < f.dataStart || r.DevBlock > f.dataEnd-r.Count {
		return syscall.EINVAL
	}
	if !n.ext.isHole(r.FileBlock, r.FileBlock+r.Count) {
		return syscall.EEXIST
	}
	before := n.ext.n
	e := format.Extent{FileBlock: r.FileBlock, DevBlock: r.DevBlock, Count: r.Count, State: format.StateUnwritten}
	n.ext.modify(r.FileBlock, r.FileBlock+r.Count, func(w []format.Extent) []format.Extent { return extInsert(w, e) })
	n.blocks += r.Count
	f.nExtents += int64(n.ext.n - before)
	return nil
}

func (f *FS) applyState(r *format.Record) error {
	n, err := f.file(Ino(r.Ino))
	if err != nil {
		return err
	}
	if f.checkRange(r.FileBlock, r.Count) != nil {
		return syscall.EINVAL
	}
	from, to := format.StateUnwritten, format.StateWritten
	if r.Type == format.RecUnwrite {
		from, to = to, from
	}
	if r.Type == format.RecConvert && (r.Size < 0 || r.Size > f.maxFileBlocks()*f.bs) {
		return syscall.EFBIG
	}
	before := n.ext.n
	n.ext.modify(r.FileBlock, r.FileBlock+r.Count, func(w []format.Extent) []format.Extent {
		w, _ = extSetState(w, r.FileBlock, r.FileBlock+r.Count, from, to)
		return w
	})
	f.nExtents += int64(n.ext.n - before)
	if r.Type == format.RecConvert {
		n.size = max(n.size, r.Size)
	}
	n.mtime, n.ctime = r.Time, r.Time
	return nil
}

func (f *FS) applyPunch(r *format.Record) ([]span, error) {
	n, err := f.file(Ino(r.Ino))
	if err != nil {
		return nil, err
	}
	if f.checkRange(r.FileBlock, r.Count) != nil {
		return nil, syscall.EINVAL
	}
	before := n.ext.n
	var freed []span
	n.ext.modify(r.FileBlock, r.FileBlock+r.Count, func(w []format.Extent) []format.Extent {
		w, freed = extRemove(w, r.FileBlock, r.FileBlock+r.Count, freed)
		return w
	})
	f.accountFreed(n, before, freed)
	n.mtime, n.ctime = r.Time, r.Time
	return freed, nil
}
