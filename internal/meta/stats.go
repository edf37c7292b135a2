package meta

// Stats returns the volume's usage.
func (f *FS) Stats() Stats {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := Stats{
		BlockSize: int(f.bs), TotalBlocks: int64(f.sb.TotalBlocks), DataStart: f.dataStart,
		DataBlocks: f.dataEnd - f.dataStart, FreeBlocks: f.free.total, PendingBlocks: f.pendingN,
		Inodes: int64(len(f.inodes)), Extents: f.nExtents, JournalBlocks: int64(f.sb.JournalBlocks),
		JournalUsed: f.jpos, CheckpointSlot: int(f.sb.ActiveSlot), Epoch: f.sb.Epoch,
		CheckpointBlocks: int64(f.sb.CheckpointBlocks), UUID: f.sb.UUID,
		MetaBytes: f.metaBytes, MetaBudget: f.inodeBudget, Commits: f.nCommits, Checkpoints: f.nCkpts,
	}
	s.UsedBlocks = s.DataBlocks - s.FreeBlocks - s.PendingBlocks
	for _, n := range f.inodes {
		if n.isDir() {
			s.Dirs++
		} else {
			s.Files++
		}
	}
	return s
}
