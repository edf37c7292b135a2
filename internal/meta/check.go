package meta

import (
	"fmt"
	"slices"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/format"
)

// Fsck checks the volume on dev without writing to it: it mounts read-only
// (replaying the journal in memory) and runs Check. err is set when the
// volume cannot be read at all (foreign, unsupported version, unreadable
// superblocks or checkpoint); otherwise findings lists every inconsistency
// (empty when clean). dev must not be mounted elsewhere at the same time.
func Fsck(dev device.Device) (findings []string, err error) {
	f, bad, err := load(dev, MountOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	findings = append(findings, bad...)
	findings = append(findings, f.Check()...)
	slices.Sort(findings)
	return slices.Compact(findings), nil
}

// Check verifies the in-memory metadata and returns its findings (nil when
// consistent):
//   - every extent lies inside the data area, is non-empty, has a known state,
//     and the extents of a file are sorted and disjoint;
//   - no device block is owned twice;
//   - free space equals the data area minus owned blocks minus blocks
//     pending free;
//   - no written extent lies wholly past EOF (unwritten ones may: fallocate
//     KEEP_SIZE); the block count matches the extents;
//   - every directory entry names a live inode, every inode but the root is
//     named exactly once and is reachable from the root, a directory's
//     parent is the directory naming it, link counts are 2 + subdirectories
//     for directories and 1 for files, names are valid.
func (f *FS) Check() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []string
	add := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	f.checkExtents(add)
	f.checkFree(add)
	f.checkNamespace(add)
	return out
}

func (f *FS) checkExtents(add func(string, ...any)) {
	var nExt, metaBytes int64
	for _, n := range f.inodes {
		nExt += int64(n.ext.n)
		metaBytes += inodeCost
		for name := range n.dir {
			metaBytes += direntCost(name)
		}
	}
	if nExt != f.nExtents || metaBytes != f.metaBytes {
		add("counters: %d extents and %d metadata bytes, recounted %d and %d", f.nExtents, f.metaBytes, nExt, metaBytes)
	}
	for ino, n := range f.inodes {
		if n.isDir() {
			if n.ext.n > 0 {
				add("directory %d has extents", ino)
			}
			continue
		}
		var blocks, end int64
		eofBlock := (n.size + f.bs - 1) / f.bs
		for i, e := range n.ext.flat(nil) {
			blocks += e.Count
			if e.Count <= 0 || (e.State != format.StateUnwritten && e.State != format.StateWritten) {
				add("inode %d extent %d malformed: %+v", ino, i, e)
				continue
			}
			if i > 0 && e.FileBlock < end {
				add("inode %d extent %d overlaps the previous one", ino, i)
			}
			end = e.FileBlock + e.Count
			if e.DevBlock < f.dataStart || e.DevBlock > f.dataEnd-e.Count {
				add("inode %d extent at file block %d: device blocks [%d, +%d) outside the data area [%d, %d)",
					ino, e.FileBlock, e.DevBlock, e.Count, f.dataStart, f.dataEnd)
			}
			if e.State == format.StateWritten && e.FileBlock >= eofBlock {
				add("inode %d: written extent at file block %d lies past EOF (size %d)", ino, e.FileBlock, n.size)
			}
		}
		if blocks != n.blocks {
			add("inode %d block count %d, extents hold %d", ino, n.blocks, blocks)
		}
	}
}

func (f *FS) checkFree(add func(string, ...any)) {
	owned := f.owned()
	_, bad := complement(f.dataStart, f.dataEnd, owned)
	for _, b := range bad {
		add("%s", b)
	}
	all := owned
	for _, p := range f.pending {
		all = append(all, p.s)
	}
	slices.SortFunc(all, func(a, b span) int { return cmp64(a.start, b.start) })
	want, bad2 := complement(f.dataStart, f.dataEnd, all)
	if len(bad) == 0 && len(bad2) > 0 {
		add("blocks pending free are also owned: %s", bad2[0])
	}
	if want.total != f.free.total || want.n != f.free.n || !slices.Equal(want.list(), f.free.list()) {
		add("free space holds %d blocks in %d spans; data area minus owned and pending gives %d in %d spans",
			f.free.total, f.free.n, want.total, want.n)
	}
}

func cmp64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (f *FS) checkNamespace(add func(string, ...any)) {
	root := f.inodes[RootIno]
	if root == nil || !root.isDir() {
		add("root directory missing")
		return
	}
	refs := make(map[Ino]int, len(f.inodes))
	for ino, n := range f.inodes {
		if ino >= f.nextIno {
			add("inode %d not below the next inode number %d", ino, f.nextIno)
		}
		if !n.isDir() {
			continue
		}
		subdirs := uint32(0)
		for name, c := range n.dir {
			if checkName(name) != nil {
				add("directory %d: invalid name %q", ino, name)
			}
			ci := f.inodes[c]
			if ci == nil {
				add("directory %d: entry %q names missing inode %d", ino, name, c)
				continue
			}
			refs[c]++
			if ci.isDir() {
				subdirs++
				if ci.parent != ino {
					add("directory %d (%q in %d) has parent %d", c, name, ino, ci.parent)
				}
			}
		}
		if n.nlink != 2+subdirs {
			add("directory %d link count %d, want %d", ino, n.nlink, 2+subdirs)
		}
	}
	for ino, n := range f.inodes {
		switch {
		case ino == RootIno:
			if refs[ino] != 0 {
				add("root directory is named by a directory entry")
			}
		case refs[ino] != 1:
			add("inode %d is named by %d directory entries", ino, refs[ino])
		case !n.isDir() && n.nlink != 1:
			add("file %d link count %d, want 1", ino, n.nlink)
		}
	}
	// Reachability: walk from the root with an explicit stack.
	seen := map[Ino]bool{RootIno: true}
	stack := []Ino{RootIno}
	for len(stack) > 0 {
		d := f.inodes[stack[len(stack)-1]]
		stack = stack[:len(stack)-1]
		for _, c := range d.dir {
			if ci := f.inodes[c]; ci != nil && !seen[c] {
				seen[c] = true
				if ci.isDir() {
					stack = append(stack, c)
				}
			}
		}
	}
	if len(seen) != len(f.inodes) {
		add("%d inodes unreachable from the root", len(f.inodes)-len(seen))
	}
}
