package meta

import (
	"errors"
	"syscall"

	"github.com/aiodio/aiodio/internal/format"
)

// Map appends to dst the mappings covering file blocks [fileBlock,
// fileBlock+count) of ino, holes included, in order; adjacent blocks of one
// extent come as one Mapping. It allocates nothing when dst has room. The
// range may extend past EOF (unwritten blocks from fallocate KEEP_SIZE are
// reported there). EISDIR for a directory, ENOENT for an unknown inode.
func (f *FS) Map(dst []Mapping, ino Ino, fileBlock, count int64) ([]Mapping, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, err := f.file(ino)
	if err == nil {
		err = f.checkRange(fileBlock, count)
	}
	if err != nil {
		return dst, inoErr("map", ino, err)
	}
	if count == 0 {
		return dst, nil
	}
	return n.ext.mapRange(dst, fileBlock, count), nil
}

// Extents returns every mapped extent of ino (no holes), for `aiodio stat`.
func (f *FS) Extents(ino Ino) ([]Mapping, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n, err := f.file(ino)
	if err != nil {
		return nil, inoErr("extents", ino, err)
	}
	out := make([]Mapping, n.ext.n)
	for i, e := range n.ext.flat(nil) {
		out[i] = Mapping{FileBlock: e.FileBlock, Count: e.Count, DevBlock: e.DevBlock, State: State(e.State)}
	}
	return out, nil
}

// AllocUnwritten allocates every hole of [fileBlock, fileBlock+count) as
// unwritten blocks (reads return zeros until ConvertWritten). Allocation
// aims at the device block that continues the previous extent, contiguously.
// ENOSPC (counting only blocks allocatable now, not those pending free)
// leaves nothing changed. The size is not changed.
func (f *FS) AllocUnwritten(ino Ino, fileBlock, count int64) error {
	err := f.allocUnwritten(ino, fileBlock, count)
	if errors.Is(err, syscall.ENOSPC) {
		// Blocks freed by records not yet durable may cover the request:
		// commit to release them (O3), then retry once, as jbd2 does.
		f.mu.RLock()
		pending := f.pendingN
		f.mu.RUnlock()
		if pending > 0 && f.Commit() == nil {
			err = f.allocUnwritten(ino, fileBlock, count)
		}
	}
	return inoErr("alloc", ino, err)
}

func (f *FS) allocUnwritten(ino Ino, fileBlock, count int64) error {
	return f.update(func() (bool, error) {
		if err := f.usableLocked(); err != nil {
			return false, err
		}
		n, err := f.file(ino)
		if err == nil {
			err = f.checkRange(fileBlock, count)
		}
		if err != nil {
			return false, err
		}
		var holes []Mapping
		for _, m := range n.ext.mapRange(nil, fileBlock, count) {
			if m.State == Hole {
				holes = append(holes, m)
			}
		}
		var need int64
		for _, h := range holes {
			need += h.Count
		}
		if need == 0 {
			return false, nil
		}
		if need > f.free.total {
			return false, syscall.ENOSPC
		}
		var full bool
		for _, h := range holes {
			for pos := h.FileBlock; pos < h.FileBlock+h.Count; {
				got := f.free.take(f.goalLocked(n, pos), h.FileBlock+h.Count-pos)
				f.rotor = got.start + got.count
				full, err = f.doLocked(&format.Record{Type: format.RecAlloc, Ino: uint64(ino),
					FileBlock: pos, DevBlock: got.start, Count: got.count})
				if err != nil {
					// Cannot happen: the range was checked to be a hole.
					panic("meta: alloc record refused: " + err.Error())
				}
				pos += got.count
			}
		}
		return full, nil
	})
}

// goalLocked picks the device block to allocate file block fb at: continuing
// the nearest extent before fb, else the allocation rotor.
func (f *FS) goalLocked(n *inode, fb int64) int64 {
	if p, ok := n.ext.prev(fb); ok {
		g := p.DevBlock + (fb - p.FileBlock)
		if g >= f.dataStart && g < f.dataEnd {
			return g
		}
	}
	if f.rotor < f.dataStart || f.rotor >= f.dataEnd {
		return f.dataStart
	}
	return f.rotor
}

// ConvertWritten marks the unwritten blocks of [fileBlock, fileBlock+count)
// written and raises the size to at least newSize, at once in memory. Call
// it only after the data writes to those blocks completed: the record
// becomes durable at a Commit, which flushes the device before writing it
// (O2), so after a crash the blocks are either unwritten or hold the data.
func (f *FS) ConvertWritten(ino Ino, fileBlock, count int64, newSize int64) error {
	return inoErr("convert", ino, f.update(func() (bool, error) {
		return f.doLocked(&format.Record{Type: format.RecConvert, Ino: uint64(ino),
			FileBlock: fileBlock, Count: count, Size: newSize, Time: now()})
	}))
}

// SetSize sets the size without touching blocks when it grows; shrinking
// is Truncate.
func (f *FS) SetSize(ino Ino, size int64) error {
	return inoErr("setsize", ino, f.update(func() (bool, error) {
		n, err := f.file(ino)
		if err != nil {
			return false, err
		}
		flags := uint8(0)
		if size < n.size {
			flags = format.FlagTruncate
		}
		return f.doLocked(&format.Record{Type: format.RecSetSize, Flags: flags, Ino: uint64(ino), Size: size, Time: now()})
	}))
}

// Truncate sets the size. Shrinking frees every block from
// ceil(size/BlockSize) on (also unwritten blocks past EOF; so does
// truncating to the current size); growing is
// SetSize and keeps blocks preallocated past EOF. Freed blocks become
// allocatable once the record is durable (O3). Data in the last partial
// block is not touched: the caller zeroes its tail before the file can grow
// over it again (I1).
func (f *FS) Truncate(ino Ino, size int64) error {
	return inoErr("truncate", ino, f.update(func() (bool, error) {
		flags := uint8(format.FlagTruncate)
		if n, err := f.file(ino); err == nil && size > n.size {
			flags = 0
		}
		return f.doLocked(&format.Record{Type: format.RecSetSize, Flags: flags, Ino: uint64(ino), Size: size, Time: now()})
	}))
}

// Punch unmaps the blocks of [fileBlock, fileBlock+count) (size unchanged);
// they become allocatable once the record is durable (O3).
func (f *FS) Punch(ino Ino, fileBlock, count int64) error {
	return inoErr("punch", ino, f.update(func() (bool, error) {
		return f.doLocked(&format.Record{Type: format.RecPunch, Ino: uint64(ino), FileBlock: fileBlock, Count: count, Time: now()})
	}))
}

// ZeroRange turns the written blocks of [fileBlock, fileBlock+count) back to
// unwritten so they read as zeros (holes stay holes; size unchanged).
func (f *FS) ZeroRange(ino Ino, fileBlock, count int64) error {
	return inoErr("zerorange", ino, f.update(func() (bool, error) {
		return f.doLocked(&format.Record{Type: format.RecUnwrite, Ino: uint64(ino), FileBlock: fileBlock, Count: count, Time: now()})
	}))
}
