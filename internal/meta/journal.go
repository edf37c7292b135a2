package meta

import (
	"fmt"
	"slices"
	"syscall"

	"github.com/aiodio/aiodio/internal/alignbuf"
	"github.com/aiodio/aiodio/internal/format"
)

// Commit makes every update made before the call durable: group commit.
// Concurrent callers share rounds; a round is run by one of them and covers
// every caller that arrived before it started:
//
//  1. take the queued records (under mu);
//  2. flush the device, so data writes that completed before the callers
//     called ConvertWritten are durable before the records that expose
//     them (O2);
//  3. write the records as one journal chunk, or a checkpoint when the
//     journal is full;
//  4. flush again; then the records are durable: wake the callers and let
//     the blocks they freed be allocated (O3).
//
// With no records queued a round is a single flush (so Commit also makes
// overwrites of written blocks durable). A failed write or flush breaks the
// volume: every later update and Commit returns the error (EIO); what was
// committed before stays valid on the device. On a read-only mount Commit
// does nothing and returns nil.
func (f *FS) Commit() error { return f.commit(false) }

// commit runs or joins a round; ckpt forces a round of its own that writes a checkpoint.
func (f *FS) commit(ckpt bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.readOnly {
		if f.closed {
			return ErrClosed
		}
		return nil // nothing can be queued: like fsync on a read-only mount
	}
	my := f.started + 1
	for {
		if f.closed {
			return ErrClosed
		}
		if f.err != nil {
			return f.err
		}
		if f.done >= my && !ckpt {
			return nil
		}
		if f.running {
			f.cond.Wait()
			continue
		}
		f.running = true
		f.started++
		my = f.started
		err := f.roundLocked(ckpt)
		ckpt = false
		f.running = false
		f.done = my
		if err != nil && f.err == nil {
			f.err = fmt.Errorf("meta: commit failed, volume is now read-only until remounted: %w", err)
			f.log.Error("commit failed", "err", err)
		}
		f.cond.Broadcast()
	}
}

// roundLocked runs one commit round. It releases mu during device I/O.
// REQUIRES: f.mu held for writing, f.running set by the caller.
func (f *FS) roundLocked(ckpt bool) error {
	payload, nrec, upto := f.jbuf, f.jrecs, f.lastLSN
	f.jbuf, f.jrecs = make([]byte, 0, min(cap(payload), 1<<20)), 0
	chunkBlocks := int64(format.ChunkBlocks(len(payload), int(f.bs)))
	if !ckpt && nrec > 0 && f.jpos+chunkBlocks > int64(f.sb.JournalBlocks) {
		ckpt = true
	}
	if ckpt {
		return f.checkpointLocked(upto)
	}
	var buf []byte
	if nrec > 0 {
		buf = format.EncodeChunk(alignbuf.Alloc(int(chunkBlocks*f.bs)), int(f.bs), f.sb.Epoch, f.jseq, nrec, payload)
	}
	f.mu.Unlock()
	err := f.flushSync()
	if err == nil && buf != nil {
		err = f.writeSync(int64(f.sb.JournalStart+uint64(f.jpos))*f.bs, buf)
		if err == nil {
			err = f.flushSync()
		}
	}
	f.mu.Lock()
	if err != nil {
		return err
	}
	if buf != nil {
		f.jpos += chunkBlocks
		f.jseq++
	}
	f.nCommits++
	f.durableLocked(upto)
	return nil
}

// durableLocked records that every record up to lsn is durable and releases
// the blocks they freed to the allocator (O3).
func (f *FS) durableLocked(lsn uint64) {
	f.durable = max(f.durable, lsn)
	i := 0
	for ; i < len(f.pending) && f.pending[i].lsn <= f.durable; i++ {
		f.free.add(f.pending[i].s)
		f.pendingN -= f.pending[i].s.count
	}
	f.pending = slices.Delete(f.pending, 0, i)
}

// checkpointLocked writes the whole metadata (as of now, covering records up
// to upto) to the inactive slot, then both superblocks, and starts a new
// journal epoch. It releases mu during device I/O.
// REQUIRES: f.mu held for writing, f.running set.
func (f *FS) checkpointLocked(upto uint64) error {
	sb := f.sb
	sb.Epoch++
	sb.Seq++
	sb.ActiveSlot ^= 1
	payload := f.encodeLocked()
	if int64(format.CheckpointHeaderSize+len(payload)) > int64(sb.CheckpointBlocks)*f.bs {
		return fmt.Errorf("meta: checkpoint of %d bytes exceeds its slot of %d blocks: %w",
			len(payload), sb.CheckpointBlocks, syscall.ENOSPC)
	}
	buf := f.checkpointImage(&sb, uint64(f.nextIno), uint64(len(f.inodes)), payload)
	f.mu.Unlock()
	err := f.flushSync()
	if err == nil {
		err = f.writeSync(int64(sb.CheckpointStart[sb.ActiveSlot])*f.bs, buf)
	}
	if err == nil {
		err = f.flushSync()
	}
	if err == nil {
		err = f.writeSuperblocks(&sb)
	}
	f.mu.Lock()
	if err != nil {
		return err
	}
	f.sb = sb
	f.jpos, f.jseq = 0, 1
	f.nCkpts++
	f.nCommits++
	f.durableLocked(upto)
	f.log.Debug("checkpoint", "epoch", sb.Epoch, "slot", sb.ActiveSlot, "bytes", len(payload), "inodes", len(f.inodes))
	return nil
}

// encodeLocked encodes every inode, in ascending order, as a checkpoint payload.
// REQUIRES: f.mu held.
func (f *FS) encodeLocked() []byte {
	inos := make([]Ino, 0, len(f.inodes))
	for ino := range f.inodes {
		inos = append(inos, ino)
	}
	slices.Sort(inos)
	out := make([]byte, 0, 64*len(inos)+8*int(f.nExtents)+int(f.metaBytes))
	var prev uint64
	var ents []format.Dirent
	var exts []format.Extent
	for _, ino := range inos {
		n := f.inodes[ino]
		rec := format.Inode{Ino: uint64(ino), Mode: uint32(n.mode), Size: n.size, Nlink: n.nlink,
			Mtime: n.mtime, Ctime: n.ctime, Parent: uint64(n.parent)}
		if n.ext.n > 0 {
			exts = n.ext.flat(exts[:0])
			rec.Extents = exts
		}
		if n.isDir() {
			ents = ents[:0]
			for name, c := range n.dir {
				ents = append(ents, format.Dirent{Name: name, Ino: uint64(c)})
			}
			rec.Entries = ents
		}
		out = format.AppendInode(out, prev, &rec)
		prev = uint64(ino)
	}
	return out
}
