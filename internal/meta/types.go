package meta

import (
	"fmt"
	"io/fs"
	"time"

	"github.com/aiodio/aiodio/internal/format"
)

// Ino is an inode number. Inode numbers are never reused within a volume.
type Ino uint64

// RootIno is the root directory's inode number.
const RootIno Ino = 1

// State is the state of a range of file blocks. The values of Unwritten and
// Written are the on-device values of format.StateUnwritten/StateWritten.
type State uint8

const (
	// Hole: no device block; reads zero.
	Hole State = 0
	// Unwritten: device blocks allocated but never written; reads zero.
	Unwritten State = State(format.StateUnwritten)
	// Written: device blocks hold the file's data.
	Written State = State(format.StateWritten)
)

func (s State) String() string {
	switch s {
	case Hole:
		return "hole"
	case Unwritten:
		return "unwritten"
	case Written:
		return "written"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Mapping maps Count file blocks from FileBlock. For a Hole, DevBlock is -1.
type Mapping struct {
	FileBlock, Count, DevBlock int64
	State                      State
}

// Attr is an inode's attributes. Blocks counts allocated blocks (written and
// unwritten) in units of the volume's block size.
type Attr struct {
	Ino    Ino
	Mode   fs.FileMode
	Size   int64
	Nlink  uint32
	Mtime  time.Time
	Ctime  time.Time
	Blocks int64
}

// DirEntry is one directory entry as ReadDir returns it.
type DirEntry struct {
	Name string
	Ino  Ino
	Mode fs.FileMode // type bits and permissions
}

// MkfsOptions configure Mkfs.
type MkfsOptions struct {
	// BlockSize is the volume block size: a power of two in [512, 65536],
	// at least the device's logical block size; 0 means 4096.
	BlockSize int

	// journalBlocks overrides the journal size (tests: force checkpoints).
	journalBlocks int64
}

// Stats describes a volume's usage, for `aiodio stat`.
type Stats struct {
	BlockSize        int
	TotalBlocks      int64 // the whole volume, metadata areas included
	DataStart        int64 // first block of the data area
	DataBlocks       int64 // blocks of the data area
	UsedBlocks       int64 // owned by files (written or unwritten)
	FreeBlocks       int64 // allocatable now
	PendingBlocks    int64 // freed, allocatable once the freeing record is durable
	Inodes           int64
	Files            int64
	Dirs             int64
	Extents          int64
	JournalBlocks    int64
	JournalUsed      int64 // blocks of the journal written since the last checkpoint
	CheckpointSlot   int   // slot holding the current checkpoint
	CheckpointBlocks int64 // size of each of the two checkpoint slots
	UUID             [16]byte
	Epoch            uint64
	MetaBytes        int64 // inode and directory-entry budget in use
	MetaBudget       int64 // its limit (creating past it fails with ENOSPC)
	Commits          uint64
	Checkpoints      uint64
}

// inode is the in-memory inode. All fields are protected by FS.mu.
type inode struct {
	mode   fs.FileMode
	size   int64
	nlink  uint32
	mtime  int64 // unix nanoseconds
	ctime  int64
	parent Ino   // directories only
	blocks int64 // sum of extent counts

	ext extTree        // regular files: extent map
	dir map[string]Ino // directories: entries
}

func (n *inode) isDir() bool { return n.mode.IsDir() }

// Metadata budget: worst-case encoded sizes in a checkpoint. Extents need at
// most extentCost bytes each and there is at most one per data block, so the
// slot reserves extentCost per data block; inodes and names share the rest.
const (
	extentCost = 32
	inodeCost  = 72
	direntBase = 12
)

func direntCost(name string) int64 { return direntBase + int64(len(name)) }

func sprintf(f string, a ...any) string { return fmt.Sprintf(f, a...) }
