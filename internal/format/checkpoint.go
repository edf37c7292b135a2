package format

import (
	"encoding/binary"
	"io/fs"
)

// Checkpoint constants. Frozen: stored on devices.
const (
	// CheckpointMagic opens every checkpoint.
	CheckpointMagic = "AIODIOCP"
	// CheckpointHeaderSize is the size of the header before the payload.
	CheckpointHeaderSize = 64
)

// Extent states as stored. Frozen.
const (
	StateUnwritten uint8 = 1
	StateWritten   uint8 = 2
)

// Extent maps Count file blocks from FileBlock to device blocks from DevBlock.
type Extent struct {
	FileBlock int64
	DevBlock  int64
	Count     int64
	State     uint8
}

// Dirent is one directory entry.
type Dirent struct {
	Name string
	Ino  uint64
}

// Inode is one inode as stored in a checkpoint. Mode is an io/fs FileMode.
type Inode struct {
	Ino    uint64
	Mode   uint32
	Size   int64
	Nlink  uint32
	Mtime  int64
	Ctime  int64
	Parent uint64 // directories: the parent directory (the root is its own parent)
	// Extents (files) are sorted by FileBlock and do not overlap.
	Extents []Extent
	// Entries (directories) in any order.
	Entries []Dirent
}

// CheckpointHeader is the header in front of a checkpoint payload.
type CheckpointHeader struct {
	Epoch      uint64
	NextIno    uint64
	Inodes     uint64
	PayloadLen uint64
	PayloadCRC uint32
}

// Checkpoint is a decoded checkpoint.
type Checkpoint struct {
	CheckpointHeader
	Inodes []Inode
}

// AppendInode appends in's encoding to a checkpoint payload. Inodes must be
// appended in ascending Ino order, prev being the previous Ino (0 first).
func AppendInode(dst []byte, prev uint64, in *Inode) []byte {
	u := binary.AppendUvarint
	v := binary.AppendVarint
	dst = u(dst, in.Ino-prev)
	dst = u(dst, uint64(in.Mode))
	dst = u(dst, uint64(in.Size))
	dst = u(dst, uint64(in.Nlink))
	dst = v(dst, in.Mtime)
	dst = v(dst, in.Ctime)
	dst = u(dst, in.Parent)
	if fs.FileMode(in.Mode).IsDir() {
		dst = u(dst, uint64(len(in.Entries)))
		for _, e := range in.Entries {
			dst = putStr(dst, e.Name)
			dst = u(dst, e.Ino)
		}
		return dst
	}
	dst = u(dst, uint64(len(in.Extents)))
	var fend, dend int64
	for _, e := range in.Extents {
		dst = u(dst, uint64(e.FileBlock-fend))
		dst = v(dst, e.DevBlock-dend)
		dst = u(dst, uint64(e.Count))
		dst = append(dst, e.State)
		fend, dend = e.FileBlock+e.Count, e.DevBlock+e.Count
	}
	return dst
}

// EncodeCheckpointHeader fills h's PayloadLen and PayloadCRC from payload and
// writes the header into b[:CheckpointHeaderSize].
func EncodeCheckpointHeader(b []byte, h CheckpointHeader, payload []byte) CheckpointHeader {
	h.PayloadLen = uint64(len(payload))
	h.PayloadCRC = Checksum(payload)
	b = b[:CheckpointHeaderSize]
	clear(b)
	copy(b, CheckpointMagic)
	le := binary.LittleEndian
	le.PutUint64(b[8:], h.Epoch)
	le.PutUint64(b[16:], h.NextIno)
	le.PutUint64(b[24:], h.Inodes)
	le.PutUint64(b[32:], h.PayloadLen)
	le.PutUint32(b[40:], h.PayloadCRC)
	le.PutUint32(b[CheckpointHeaderSize-4:], Checksum(b[:CheckpointHeaderSize-4]))
	return h
}

// DecodeCheckpointHeader decodes and checks the header at the start of b.
func DecodeCheckpointHeader(b []byte) (CheckpointHeader, error) {
	var h CheckpointHeader
	if len(b) < CheckpointHeaderSize {
		return h, errorf(ErrCorrupt, "checkpoint header truncated")
	}
	if string(b[:8]) != CheckpointMagic {
		return h, errorf(ErrCorrupt, "no checkpoint magic")
	}
	le := binary.LittleEndian
	if le.Uint32(b[CheckpointHeaderSize-4:]) != Checksum(b[:CheckpointHeaderSize-4]) {
		return h, errorf(ErrChecksum, "checkpoint header")
	}
	h.Epoch = le.Uint64(b[8:])
	h.NextIno = le.Uint64(b[16:])
	h.Inodes = le.Uint64(b[24:])
	h.PayloadLen = le.Uint64(b[32:])
	h.PayloadCRC = le.Uint32(b[40:])
	return h, nil
}

// DecodeCheckpoint decodes a whole checkpoint (header followed by payload) and
// checks its crc32c and the local well-formedness of every inode: ascending
// inode numbers, extents sorted, non-empty, non-overlapping and of a known
// state, names of valid length. Cross-references are checked by the caller.
func DecodeCheckpoint(b []byte) (*Checkpoint, error) {
	h, err := DecodeCheckpointHeader(b)
	if err != nil {
		return nil, err
	}
	if h.PayloadLen > uint64(len(b)-CheckpointHeaderSize) {
		return nil, errorf(ErrCorrupt, "checkpoint payload of %d bytes truncated to %d", h.PayloadLen, len(b)-CheckpointHeaderSize)
	}
	payload := b[CheckpointHeaderSize : CheckpointHeaderSize+int(h.PayloadLen)]
	if Checksum(payload) != h.PayloadCRC {
		return nil, errorf(ErrChecksum, "checkpoint payload")
	}
	// Every inode takes at least 8 bytes.
	if h.Inodes > uint64(len(payload))/8 {
		return nil, errorf(ErrCorrupt, "checkpoint claims %d inodes in %d bytes", h.Inodes, len(payload))
	}
	c := &Checkpoint{CheckpointHeader: h, Inodes: make([]Inode, h.Inodes)}
	rd := reader{b: payload}
	var prev uint64
	for i := range c.Inodes {
		if err := decodeInode(&rd, prev, &c.Inodes[i]); err != nil {
			return nil, errorf(ErrCorrupt, "checkpoint inode #%d (after ino %d): %v", i, prev, err)
		}
		prev = c.Inodes[i].Ino
	}
	if rd.remaining() != 0 {
		return nil, errorf(ErrCorrupt, "checkpoint has %d trailing bytes", rd.remaining())
	}
	return c, nil
}

type decodeErr string

func (e decodeErr) Error() string { return string(e) }

func decodeInode(rd *reader, prev uint64, in *Inode) error {
	d := rd.uvarint()
	if d == 0 && !rd.bad {
		return decodeErr("inode numbers not ascending")
	}
	in.Ino = prev + d
	if in.Ino < prev {
		return decodeErr("inode number overflows")
	}
	m := rd.uvarint()
	in.Mode = uint32(m)
	in.Size = rd.nonneg()
	nl := rd.uvarint()
	in.Nlink = uint32(nl)
	in.Mtime = rd.varint()
	in.Ctime = rd.varint()
	in.Parent = rd.uvarint()
	n := rd.uvarint()
	if rd.bad || m > 0xffffffff || nl > 0xffffffff {
		return decodeErr("truncated or malformed attributes")
	}
	if fs.FileMode(in.Mode).IsDir() {
		if n > uint64(rd.remaining())/2 {
			return decodeErr("too many directory entries")
		}
		in.Entries = make([]Dirent, n)
		for j := range in.Entries {
			in.Entries[j].Name = rd.str(NameMax)
			in.Entries[j].Ino = rd.uvarint()
		}
		if rd.bad {
			return decodeErr("truncated directory entries")
		}
		return nil
	}
	if n > uint64(rd.remaining())/4 {
		return decodeErr("too many extents")
	}
	if n == 0 {
		return nil
	}
	in.Extents = make([]Extent, n)
	var fend, dend int64
	for j := range in.Extents {
		e := &in.Extents[j]
		e.FileBlock = fend + rd.nonneg()
		e.DevBlock = dend + rd.varint()
		e.Count = rd.nonneg()
		e.State = rd.byte1()
		if rd.bad {
			return decodeErr("truncated extents")
		}
		if e.Count <= 0 || e.DevBlock < 0 || e.FileBlock < fend || e.FileBlock > 1<<62-e.Count ||
			e.DevBlock > 1<<62-e.Count || (e.State != StateUnwritten && e.State != StateWritten) {
			return decodeErr("malformed extent")
		}
		fend, dend = e.FileBlock+e.Count, e.DevBlock+e.Count
	}
	return nil
}
