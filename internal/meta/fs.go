package meta

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/aiodio/aiodio/device"
	"github.com/aiodio/aiodio/internal/alignbuf"
	"github.com/aiodio/aiodio/internal/format"
)

// MountOptions configure Mount.
type MountOptions struct {
	// Logger receives recovery and checkpoint events (nil: discard).
	Logger *slog.Logger
	// ReadOnly refuses every update and never writes to the device.
	ReadOnly bool
}

// FS is a mounted volume's metadata. It is safe for concurrent use.
type FS struct {
	dev      device.Device
	log      *slog.Logger
	readOnly bool

	// Immutable after Mount.
	bs          int64
	dataStart   int64
	dataEnd     int64
	inodeBudget int64

	// sb, jpos and jseq are written only by the running committer (the
	// goroutine that set running, see commit) and only while holding mu;
	// the committer reads them without mu, everyone else reads them under mu.
	sb   format.Superblock // current superblock (Seq, slot, epoch, checkpoint)
	jpos int64             // next free journal block (relative to JournalStart)
	jseq uint64            // sequence number of the next chunk in sb.Epoch

	// mu protects everything below (the in-memory metadata, the allocator,
	// the queued journal records and the group-commit state). It is held
	// only for memory work, never across device I/O. Readers (Map, Attr,
	// Lookup, ReadDir, Stats) take it shared.
	mu     sync.RWMutex
	cond   *sync.Cond // on &mu (write side): signals the end of a commit round
	inodes map[Ino]*inode
	// nextIno is the next inode number to hand out.
	nextIno Ino
	// metaBytes is the inode/name budget in use (see inodeCost).
	metaBytes int64
	nExtents  int64
	free      freeSpace
	// pending holds freed blocks with the LSN of the record that freed
	// them, in LSN order; they join free once that LSN is durable (O3).
	pending  []pendingFree
	pendingN int64
	rotor    int64  // goal for files without a previous extent
	jbuf     []byte // encoded records not yet written
	jrecs    int    // number of records in jbuf
	lastLSN  uint64 // LSN of the last record queued
	durable  uint64 // every record with LSN <= durable is on the device
	started  uint64 // commit rounds started
	done     uint64 // commit rounds finished
	running  bool   // a committer is running a round
	err      error  // sticky: a failed journal write breaks the volume
	closed   bool
	closing  bool // Close started: updates are refused, the final commit runs
	nCommits uint64
	nCkpts   uint64
}

type pendingFree struct {
	lsn uint64
	s   span
}

// layout computes the areas of a volume of total blocks of bs bytes.
func layout(total, bs, journal int64) (format.Superblock, error) {
	var sb format.Superblock
	j := min(max(total/256, 64), 8192)
	if journal > 0 {
		j = journal
	}
	budget := max(int64(256<<10), 8*total)
	slotBytes := extentCost*total + budget + format.CheckpointHeaderSize
	slot := (slotBytes + bs - 1) / bs
	dataStart := 2 + j + 2*slot
	if total-dataStart < 16 {
		return sb, fmt.Errorf("%w: %d blocks of %d bytes, need at least %d", ErrTooSmall, total, bs, dataStart+16)
	}
	sb = format.Superblock{Version: format.Version, BlockSize: uint32(bs), TotalBlocks: uint64(total),
		JournalStart: 2, JournalBlocks: uint64(j), CheckpointStart: [2]uint64{uint64(2 + j), uint64(2 + j + slot)},
		CheckpointBlocks: uint64(slot), DataStart: uint64(dataStart), DataBlocks: uint64(total - dataStart)}
	return sb, nil
}

// Mkfs writes an empty volume (a root directory) on dev. It writes only the
// superblocks, the first checkpoint and the first journal block: the data
// area is not touched (stale data there is never exposed: I1).
func Mkfs(dev device.Device, o MkfsOptions) error {
	info := dev.Info()
	bs := int64(o.BlockSize)
	if bs == 0 {
		bs = 4096
	}
	if bs < format.MinBlockSize || bs > format.MaxBlockSize || bs&(bs-1) != 0 ||
		bs < int64(info.LogicalBlockSize) || (info.MaxIO > 0 && bs > int64(info.MaxIO)) {
		return fmt.Errorf("meta: mkfs: block size %d must be a power of two in [%d, %d] and at least the device's logical block size %d: %w",
			bs, format.MinBlockSize, format.MaxBlockSize, info.LogicalBlockSize, syscall.EINVAL)
	}
	sb, err := layout(info.Size/bs, bs, o.journalBlocks)
	if err != nil {
		return fmt.Errorf("meta: mkfs: %w", err)
	}
	if _, err := io.ReadFull(rand.Reader, sb.UUID[:]); err != nil {
		return fmt.Errorf("meta: mkfs: uuid: %w", err)
	}
	now := time.Now().UnixNano()
	root := format.Inode{Ino: uint64(RootIno), Mode: uint32(fs.ModeDir | 0o755), Nlink: 2,
		Mtime: now, Ctime: now, Parent: uint64(RootIno)}
	payload := format.AppendInode(nil, 0, &root)
	f := &FS{dev: dev, bs: bs, log: slog.New(slog.DiscardHandler)}
	// A random first epoch: journal chunks left by an earlier volume on the
	// same device can never carry this volume's epoch and sequence numbers.
	sb.Epoch = binary.LittleEndian.Uint64(sb.UUID[8:])>>2 | 1
	sb.ActiveSlot = 0
	buf := f.checkpointImage(&sb, uint64(RootIno)+1, 1, payload)
	// Invalidate any journal left by an earlier volume: a zero block has no magic.
	if err := f.writeSync(int64(sb.JournalStart)*bs, alignbuf.Alloc(int(bs))); err != nil {
		return fmt.Errorf("meta: mkfs: %w", err)
	}
	if err := f.writeSync(int64(sb.CheckpointStart[0])*bs, buf); err != nil {
		return fmt.Errorf("meta: mkfs: %w", err)
	}
	if err := f.flushSync(); err != nil {
		return fmt.Errorf("meta: mkfs: %w", err)
	}
	sb.Seq = 1
	if err := f.writeSuperblocks(&sb); err != nil {
		return fmt.Errorf("meta: mkfs: %w", err)
	}
	return nil
}

// checkpointImage builds the block-aligned checkpoint for payload and records
// its length and crc in sb.
func (f *FS) checkpointImage(sb *format.Superblock, nextIno, nInodes uint64, payload []byte) []byte {
	n := format.CheckpointHeaderSize + len(payload)
	n = (n + int(f.bs) - 1) / int(f.bs) * int(f.bs)
	buf := alignbuf.Alloc(n)
	h := format.EncodeCheckpointHeader(buf, format.CheckpointHeader{Epoch: sb.Epoch, NextIno: nextIno, Inodes: nInodes}, payload)
	copy(buf[format.CheckpointHeaderSize:], payload)
	sb.CheckpointLen = h.PayloadLen
	sb.CheckpointCRC = h.PayloadCRC
	return buf
}

// writeSuperblocks writes copy 0, flushes, writes copy 1, flushes: a torn
// write can damage at most one copy.
func (f *FS) writeSuperblocks(sb *format.Superblock) error {
	buf := alignbuf.Alloc(int(f.bs))
	sb.Encode(buf)
	for copyNo := int64(0); copyNo < 2; copyNo++ {
		if err := f.writeSync(copyNo*f.bs, buf); err != nil {
			return err
		}
		if err := f.flushSync(); err != nil {
			return err
		}
	}
	return nil
}

// BlockSize returns the volume block size in bytes.
func (f *FS) BlockSize() int { return int(f.bs) }

// DataStart returns the first device block of the data area; device byte
// offset of block b is b*BlockSize().
func (f *FS) DataStart() int64 { return f.dataStart }

// DataBlocks returns the number of blocks in the data area.
func (f *FS) DataBlocks() int64 { return f.dataEnd - f.dataStart }

// Device returns the device the volume lives on.
func (f *FS) Device() device.Device { return f.dev }

// UUID returns the volume's identifier.
func (f *FS) UUID() [16]byte {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.sb.UUID
}

// Close commits everything queued, writes a checkpoint (so the next mount
// replays nothing) and makes later calls fail with ErrClosed. It does not
// close the device. Close is idempotent.
func (f *FS) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	ro := f.readOnly
	f.closing = true
	f.mu.Unlock()
	var err error
	if !ro {
		err = f.commit(true)
	}
	f.mu.Lock()
	f.closed = true
	f.cond.Broadcast()
	f.mu.Unlock()
	return err
}
