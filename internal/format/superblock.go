package format

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Superblock constants. Frozen: they are stored on devices.
const (
	// Magic opens every superblock.
	Magic = "AIODIOSB"
	// Version is the format version written by this code, and the newest it reads.
	Version uint32 = 1
	// SuperblockSize is the number of meaningful bytes at the start of a superblock block.
	SuperblockSize = 512
	// MinBlockSize and MaxBlockSize bound Superblock.BlockSize (a power of two).
	MinBlockSize = 512
	MaxBlockSize = 65536
)

// Superblock describes a volume's layout and names its current checkpoint.
// All positions and counts are in blocks.
type Superblock struct {
	Version   uint32
	BlockSize uint32
	// Seq increases with every superblock update; mount uses the highest valid one.
	Seq  uint64
	UUID [16]byte

	TotalBlocks      uint64 // blocks of the volume (device size / BlockSize at mkfs)
	JournalStart     uint64
	JournalBlocks    uint64
	CheckpointStart  [2]uint64
	CheckpointBlocks uint64 // size of each slot
	DataStart        uint64
	DataBlocks       uint64

	// ActiveSlot (0 or 1) holds the checkpoint of epoch Epoch.
	ActiveSlot uint32
	// Epoch is the checkpoint's epoch; journal chunks of this epoch follow it.
	Epoch uint64
	// CheckpointLen is the checkpoint's payload length in bytes and
	// CheckpointCRC its crc32c (both repeated in the checkpoint header).
	CheckpointLen uint64
	CheckpointCRC uint32
}

const sbFieldsEnd = 8 + 4 + 4 + 8 + 16 + 8*9 + 4 + 8 + 8 + 4

// Encode writes the superblock into buf[:SuperblockSize] (zero padded, crc last).
func (s *Superblock) Encode(buf []byte) {
	b := buf[:SuperblockSize]
	clear(b)
	copy(b, Magic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], s.Version)
	le.PutUint32(b[12:], s.BlockSize)
	le.PutUint64(b[16:], s.Seq)
	copy(b[24:40], s.UUID[:])
	o := 40
	for _, v := range []uint64{s.TotalBlocks, s.JournalStart, s.JournalBlocks,
		s.CheckpointStart[0], s.CheckpointStart[1], s.CheckpointBlocks, s.DataStart, s.DataBlocks} {
		le.PutUint64(b[o:], v)
		o += 8
	}
	le.PutUint64(b[o:], 0) // reserved
	o += 8
	le.PutUint32(b[o:], s.ActiveSlot)
	le.PutUint64(b[o+4:], s.Epoch)
	le.PutUint64(b[o+12:], s.CheckpointLen)
	le.PutUint32(b[o+20:], s.CheckpointCRC)
	le.PutUint32(b[SuperblockSize-4:], Checksum(b[:SuperblockSize-4]))
}

// DecodeSuperblock decodes and checks a superblock. It returns ErrNotAiodio
// (naming what was found instead), ErrVersion, ErrChecksum or ErrCorrupt.
func DecodeSuperblock(buf []byte) (Superblock, error) {
	var s Superblock
	if len(buf) < SuperblockSize {
		return s, errorf(ErrCorrupt, "superblock truncated: %d bytes, need %d", len(buf), SuperblockSize)
	}
	b := buf[:SuperblockSize]
	if string(b[:8]) != Magic {
		return s, errorf(ErrNotAiodio, "found %s", Identify(buf))
	}
	le := binary.LittleEndian
	if got, want := le.Uint32(b[SuperblockSize-4:]), Checksum(b[:SuperblockSize-4]); got != want {
		return s, errorf(ErrChecksum, "superblock crc32c %#08x, computed %#08x", got, want)
	}
	s.Version = le.Uint32(b[8:])
	if s.Version > Version || s.Version == 0 {
		return s, errorf(ErrVersion, "volume has format version %d, this build supports version %d", s.Version, Version)
	}
	s.BlockSize = le.Uint32(b[12:])
	s.Seq = le.Uint64(b[16:])
	copy(s.UUID[:], b[24:40])
	o := 40
	for _, p := range []*uint64{&s.TotalBlocks, &s.JournalStart, &s.JournalBlocks,
		&s.CheckpointStart[0], &s.CheckpointStart[1], &s.CheckpointBlocks, &s.DataStart, &s.DataBlocks} {
		*p = le.Uint64(b[o:])
		o += 8
	}
	o += 8
	s.ActiveSlot = le.Uint32(b[o:])
	s.Epoch = le.Uint64(b[o+4:])
	s.CheckpointLen = le.Uint64(b[o+12:])
	s.CheckpointCRC = le.Uint32(b[o+20:])
	if err := s.Check(); err != nil {
		return Superblock{}, err
	}
	return s, nil
}

// Check verifies that the layout is self-consistent: a valid block size, the
// areas in order, inside TotalBlocks and not overlapping.
func (s *Superblock) Check() error {
	bs := s.BlockSize
	if bs < MinBlockSize || bs > MaxBlockSize || bs&(bs-1) != 0 {
		return errorf(ErrCorrupt, "superblock block size %d is not a power of two in [%d, %d]", bs, MinBlockSize, MaxBlockSize)
	}
	if s.TotalBlocks > (1<<62)/uint64(bs) {
		return errorf(ErrCorrupt, "superblock total blocks %d too large", s.TotalBlocks)
	}
	type area struct {
		name         string
		start, count uint64
	}
	areas := []area{
		{"journal", s.JournalStart, s.JournalBlocks},
		{"checkpoint slot 0", s.CheckpointStart[0], s.CheckpointBlocks},
		{"checkpoint slot 1", s.CheckpointStart[1], s.CheckpointBlocks},
		{"data area", s.DataStart, s.DataBlocks},
	}
	next := uint64(2)
	for _, a := range areas {
		if a.count == 0 || a.count > s.TotalBlocks {
			return errorf(ErrCorrupt, "superblock %s has %d blocks", a.name, a.count)
		}
		if a.start < next || a.start > s.TotalBlocks || a.count > s.TotalBlocks-a.start {
			return errorf(ErrCorrupt, "superblock %s [%d, +%d) overlaps or exceeds the volume (%d blocks)",
				a.name, a.start, a.count, s.TotalBlocks)
		}
		next = a.start + a.count
	}
	if s.ActiveSlot > 1 {
		return errorf(ErrCorrupt, "superblock active checkpoint slot %d", s.ActiveSlot)
	}
	if s.CheckpointLen > s.CheckpointBlocks*uint64(bs) {
		return errorf(ErrCorrupt, "superblock checkpoint length %d exceeds its slot", s.CheckpointLen)
	}
	return nil
}

// Identify names what a foreign first block looks like, for error messages.
func Identify(b []byte) string {
	switch {
	case len(b) == 0:
		return "an empty device"
	case len(b) >= 4 && string(b[:4]) == "XFSB":
		return "an XFS filesystem"
	case len(b) >= 1082 && b[1080] == 0x53 && b[1081] == 0xef:
		return "an ext2/3/4 filesystem"
	case len(b) >= 0x10048 && string(b[0x10040:0x10048]) == "_BHRfS_M":
		return "a btrfs filesystem"
	case len(b) >= 8 && string(b[:8]) == "LUKS\xba\xbe\x00\x01":
		return "a LUKS volume"
	case len(b) >= 512 && b[510] == 0x55 && b[511] == 0xaa:
		return "a partition table or boot sector"
	case bytes.Count(b, []byte{0}) == len(b):
		return "zeros (not formatted)"
	}
	n := min(len(b), 8)
	return fmt.Sprintf("unknown magic %q", b[:n])
}
