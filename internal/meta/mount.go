package meta

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"sync"
	"syscall"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/alignbuf"
	"github.com/aiodio/aiodio/internal/format"
)

// Mount reads a volume: the newest valid superblock copy, its checkpoint,
// then the journal chunks of the checkpoint's epoch, in order, until the
// first invalid one (torn or stale). Free space is rebuilt as the data area
// minus every block owned by a file. A volume where a block is owned twice or
// lies outside the data area is refused (ErrCorrupt): run Fsck.
func Mount(dev device.Device, o MountOptions) (*FS, error) {
	f, findings, err := load(dev, o)
	if err != nil {
		return nil, err
	}
	if len(findings) > 0 {
		return nil, fmt.Errorf("meta: mount: %w: %s (%d findings; run fsck)", ErrCorrupt, findings[0], len(findings))
	}
	return f, nil
}

// load builds an FS from the device; findings are allocation conflicts
// (blocks owned twice or outside the data area).
func load(dev device.Device, o MountOptions) (*FS, []string, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &FS{dev: dev, log: log, readOnly: o.ReadOnly, inodes: make(map[Ino]*inode)}
	f.cond = sync.NewCond(&f.mu)
	sbs, err := f.readSuperblocks()
	if err != nil {
		return nil, nil, err
	}
	var ckErr error
	for _, sb := range sbs {
		f.bs = int64(sb.BlockSize)
		f.dataStart = int64(sb.DataStart)
		f.dataEnd = int64(sb.DataStart + sb.DataBlocks)
		if ckErr = f.loadCheckpoint(&sb); ckErr == nil {
			f.sb = sb
			break
		}
		log.Warn("checkpoint unusable, trying the other superblock copy", "seq", sb.Seq, "err", ckErr)
		f.inodes = make(map[Ino]*inode)
	}
	if ckErr != nil {
		return nil, nil, fmt.Errorf("meta: mount: %w", ckErr)
	}
	f.inodeBudget = int64(f.sb.CheckpointBlocks)*f.bs - format.CheckpointHeaderSize - extentCost*int64(f.sb.TotalBlocks)
	if err := f.replay(); err != nil {
		return nil, nil, fmt.Errorf("meta: mount: %w", err)
	}
	findings := f.rebuildFree()
	f.rotor = f.dataStart
	return f, findings, nil
}

// readSuperblocks returns the valid superblock copies, newest first. With
// none valid it returns copy 0's error (naming a foreign format).
func (f *FS) readSuperblocks() ([]format.Superblock, error) {
	info := f.dev.Info()
	lbs := max(int64(info.LogicalBlockSize), 512)
	first := min(max(lbs, 4096), info.Size/lbs*lbs)
	if first < format.SuperblockSize {
		return nil, fmt.Errorf("meta: mount: device of %d bytes: %w", info.Size, ErrNotAiodio)
	}
	f.bs = lbs
	buf := alignbuf.Alloc(int(first))
	if err := f.readSync(0, buf); err != nil {
		return nil, fmt.Errorf("meta: mount: reading superblock: %w", err)
	}
	var out []format.Superblock
	sb0, err0 := format.DecodeSuperblock(buf)
	candidates := []int64{}
	if err0 == nil {
		out = append(out, sb0)
		candidates = append(candidates, int64(sb0.BlockSize))
	} else {
		for bs := int64(format.MinBlockSize); bs <= format.MaxBlockSize; bs *= 2 {
			candidates = append(candidates, bs)
		}
	}
	for _, bs := range candidates {
		if bs < lbs || bs+lbs > info.Size {
			continue
		}
		n := max(lbs, format.SuperblockSize)
		b1 := alignbuf.Alloc(int(n))
		if err := f.readSync(bs, b1); err != nil {
			continue
		}
		if sb1, err := format.DecodeSuperblock(b1); err == nil && int64(sb1.BlockSize) == bs {
			out = append(out, sb1)
			break
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("meta: mount: %w", err0)
	}
	slices.SortStableFunc(out, func(a, b format.Superblock) int {
		switch {
		case a.Seq > b.Seq:
			return -1
		case a.Seq < b.Seq:
			return 1
		}
		return 0
	})
	if need := int64(out[0].TotalBlocks) * int64(out[0].BlockSize); need > info.Size {
		return nil, fmt.Errorf("meta: mount: device is %d bytes but the volume needs %d (truncated image?): %w",
			info.Size, need, syscall.EINVAL)
	}
	if int64(out[0].BlockSize) < lbs {
		return nil, fmt.Errorf("meta: mount: volume block size %d is smaller than the device's logical block size %d: %w",
			out[0].BlockSize, lbs, syscall.EINVAL)
	}
	return out, nil
}

// loadCheckpoint reads and decodes sb's checkpoint into f.inodes.
func (f *FS) loadCheckpoint(sb *format.Superblock) error {
	n := (format.CheckpointHeaderSize + int64(sb.CheckpointLen) + f.bs - 1) / f.bs * f.bs
	buf := alignbuf.Alloc(int(n))
	if err := f.readSync(int64(sb.CheckpointStart[sb.ActiveSlot])*f.bs, buf); err != nil {
		return err
	}
	cp, err := format.DecodeCheckpoint(buf)
	if err != nil {
		return fmt.Errorf("checkpoint slot %d: %w", sb.ActiveSlot, err)
	}
	if cp.Epoch != sb.Epoch || cp.PayloadLen != sb.CheckpointLen || cp.PayloadCRC != sb.CheckpointCRC {
		return fmt.Errorf("checkpoint slot %d (epoch %d) does not match superblock (epoch %d): %w",
			sb.ActiveSlot, cp.Epoch, sb.Epoch, ErrCorrupt)
	}
	f.nextIno = Ino(max(cp.NextIno, 2))
	for i := range cp.Inodes {
		in := &cp.Inodes[i]
		n := &inode{mode: fs.FileMode(in.Mode), size: in.Size, nlink: in.Nlink, mtime: in.Mtime,
			ctime: in.Ctime, parent: Ino(in.Parent), ext: fromFlat(in.Extents)}
		if n.isDir() {
			n.dir = make(map[string]Ino, len(in.Entries))
			for _, e := range in.Entries {
				n.dir[e.Name] = Ino(e.Ino)
				f.metaBytes += direntCost(e.Name)
			}
		}
		for _, e := range in.Extents {
			n.blocks += e.Count
		}
		f.nExtents += int64(n.ext.n)
		f.metaBytes += inodeCost
		f.inodes[Ino(in.Ino)] = n
		f.nextIno = max(f.nextIno, Ino(in.Ino)+1)
	}
	if root := f.inodes[RootIno]; root == nil || !root.isDir() {
		return fmt.Errorf("checkpoint has no root directory: %w", ErrCorrupt)
	}
	return nil
}

// replay applies the journal chunks of the current epoch.
func (f *FS) replay() error {
	jb := int64(f.sb.JournalBlocks)
	buf := alignbuf.Alloc(int(jb * f.bs))
	if err := f.readSync(int64(f.sb.JournalStart)*f.bs, buf); err != nil {
		return fmt.Errorf("reading journal: %w", err)
	}
	f.jpos, f.jseq = 0, 1
	var nrec int
	for f.jpos < jb {
		b := buf[f.jpos*f.bs:]
		h, err := format.DecodeChunkHeader(b, int(f.bs))
		if err != nil || h.Epoch != f.sb.Epoch || h.Seq != f.jseq || int64(h.Blocks) > jb-f.jpos {
			break
		}
		payload, err := format.ChunkPayload(h, b[:int64(h.Blocks)*f.bs])
		if err != nil {
			f.log.Info("journal replay stops at a damaged chunk (torn last commit)", "seq", h.Seq, "err", err)
			break
		}
		recs, err := format.DecodeRecords(payload, int(h.Records))
		if err != nil {
			return fmt.Errorf("journal chunk %d: %w", h.Seq, err)
		}
		for i := range recs {
			if _, err := f.apply(&recs[i]); err != nil {
				return fmt.Errorf("journal chunk %d record %d (%v) does not apply: %v: %w",
					h.Seq, i, recs[i].Type, err, ErrCorrupt)
			}
		}
		nrec += len(recs)
		f.jpos += int64(h.Blocks)
		f.jseq++
	}
	f.log.Debug("journal replayed", "chunks", f.jseq-1, "records", nrec, "blocks", f.jpos)
	return nil
}

// owned returns every device span owned by a file, sorted by start.
// REQUIRES: f.mu held (or f not yet shared).
func (f *FS) owned() []span {
	out := make([]span, 0, f.nExtents)
	for _, n := range f.inodes {
		n.ext.all(func(e format.Extent) { out = append(out, span{e.DevBlock, e.Count}) })
	}
	slices.SortFunc(out, func(a, b span) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	return out
}

// rebuildFree derives free space from the owned blocks.
func (f *FS) rebuildFree() []string {
	free, bad := complement(f.dataStart, f.dataEnd, f.owned())
	f.free = free
	return bad
}

var _ = errors.Is
