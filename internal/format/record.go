package format

import (
	"encoding/binary"
	"fmt"
)

// RecordType names a journal record. Frozen: stored on devices.
type RecordType uint8

// Journal record types. Every record is a redo record: applying it to the
// state it was created on yields the state after the operation, and replay
// applies records in journal order. Records that allocate carry the device
// blocks chosen, so replay never runs the allocator.
const (
	// RecCreate links a new inode Ino (Mode, times = Time) as Name in directory Parent.
	RecCreate RecordType = 1
	// RecRemove unlinks Name from Parent (a file or an empty directory) and
	// frees its inode and blocks; Time is the parent's new mtime.
	RecRemove RecordType = 2
	// RecRename moves Parent/Name to Parent2/Name2, replacing (and freeing) an
	// existing target.
	RecRename RecordType = 3
	// RecSetSize sets Ino's size to Size; with Flags&FlagTruncate it also frees
	// every block at or past the block holding byte Size (ceil(Size/BlockSize)).
	RecSetSize RecordType = 4
	// RecAlloc maps file blocks [FileBlock, +Count) of Ino, a hole, to device
	// blocks [DevBlock, +Count) as unwritten.
	RecAlloc RecordType = 5
	// RecConvert marks the mapped blocks of [FileBlock, +Count) written and
	// raises the size to at least Size.
	RecConvert RecordType = 6
	// RecPunch unmaps (frees) the blocks of [FileBlock, +Count).
	RecPunch RecordType = 7
	// RecUnwrite turns written blocks of [FileBlock, +Count) back to unwritten.
	RecUnwrite RecordType = 8
	// RecSetAttr sets Ino's permission bits to Mode and its mtime to Time.
	RecSetAttr RecordType = 9
)

// FlagTruncate marks a RecSetSize that frees blocks past the new size.
const FlagTruncate = 1

// NameMax is the longest directory entry name in bytes.
const NameMax = 255

// Record is one journal record; which fields are used depends on Type.
type Record struct {
	Type      RecordType
	Flags     uint8
	Ino       uint64
	Parent    uint64
	Parent2   uint64
	Name      string
	Name2     string
	Mode      uint32
	FileBlock int64
	DevBlock  int64
	Count     int64
	Size      int64
	Time      int64 // unix nanoseconds
}

func (t RecordType) String() string {
	names := [...]string{"?", "create", "remove", "rename", "setsize", "alloc", "convert", "punch", "unwrite", "setattr"}
	if int(t) < len(names) {
		return names[t]
	}
	return fmt.Sprintf("record(%d)", uint8(t))
}

// AppendRecord appends r's encoding to dst.
func AppendRecord(dst []byte, r *Record) []byte {
	dst = append(dst, byte(r.Type))
	u := binary.AppendUvarint
	v := binary.AppendVarint
	switch r.Type {
	case RecCreate:
		dst = u(dst, r.Parent)
		dst = putStr(dst, r.Name)
		dst = u(dst, r.Ino)
		dst = u(dst, uint64(r.Mode))
		dst = v(dst, r.Time)
	case RecRemove:
		dst = u(dst, r.Parent)
		dst = putStr(dst, r.Name)
		dst = v(dst, r.Time)
	case RecRename:
		dst = u(dst, r.Parent)
		dst = putStr(dst, r.Name)
		dst = u(dst, r.Parent2)
		dst = putStr(dst, r.Name2)
		dst = v(dst, r.Time)
	case RecSetSize:
		dst = append(dst, r.Flags)
		dst = u(dst, r.Ino)
		dst = u(dst, uint64(r.Size))
		dst = v(dst, r.Time)
	case RecAlloc:
		dst = u(dst, r.Ino)
		dst = u(dst, uint64(r.FileBlock))
		dst = u(dst, uint64(r.DevBlock))
		dst = u(dst, uint64(r.Count))
	case RecConvert:
		dst = u(dst, r.Ino)
		dst = u(dst, uint64(r.FileBlock))
		dst = u(dst, uint64(r.Count))
		dst = u(dst, uint64(r.Size))
		dst = v(dst, r.Time)
	case RecPunch, RecUnwrite:
		dst = u(dst, r.Ino)
		dst = u(dst, uint64(r.FileBlock))
		dst = u(dst, uint64(r.Count))
		dst = v(dst, r.Time)
	case RecSetAttr:
		dst = u(dst, r.Ino)
		dst = u(dst, uint64(r.Mode))
		dst = v(dst, r.Time)
	}
	return dst
}

// DecodeRecord decodes the record at the start of b and returns it with its
// encoded length. Names are checked for length only; meaning is checked when
// the record is applied.
func DecodeRecord(b []byte) (Record, int, error) {
	var r Record
	if len(b) == 0 {
		return r, 0, errorf(ErrCorrupt, "empty record")
	}
	rd := reader{b: b, off: 1}
	r.Type = RecordType(b[0])
	switch r.Type {
	case RecCreate:
		r.Parent = rd.uvarint()
		r.Name = rd.str(NameMax)
		r.Ino = rd.uvarint()
		m := rd.uvarint()
		if m > 0xffffffff {
			rd.bad = true
		}
		r.Mode = uint32(m)
		r.Time = rd.varint()
	case RecRemove:
		r.Parent = rd.uvarint()
		r.Name = rd.str(NameMax)
		r.Time = rd.varint()
	case RecRename:
		r.Parent = rd.uvarint()
		r.Name = rd.str(NameMax)
		r.Parent2 = rd.uvarint()
		r.Name2 = rd.str(NameMax)
		r.Time = rd.varint()
	case RecSetSize:
		r.Flags = rd.byte1()
		r.Ino = rd.uvarint()
		r.Size = rd.nonneg()
		r.Time = rd.varint()
	case RecAlloc:
		r.Ino = rd.uvarint()
		r.FileBlock = rd.nonneg()
		r.DevBlock = rd.nonneg()
		r.Count = rd.nonneg()
	case RecConvert:
		r.Ino = rd.uvarint()
		r.FileBlock = rd.nonneg()
		r.Count = rd.nonneg()
		r.Size = rd.nonneg()
		r.Time = rd.varint()
	case RecPunch, RecUnwrite:
		r.Ino = rd.uvarint()
		r.FileBlock = rd.nonneg()
		r.Count = rd.nonneg()
		r.Time = rd.varint()
	case RecSetAttr:
		r.Ino = rd.uvarint()
		m := rd.uvarint()
		if m > 0xffffffff {
			rd.bad = true
		}
		r.Mode = uint32(m)
		r.Time = rd.varint()
	default:
		return Record{}, 0, errorf(ErrCorrupt, "unknown record type %d", b[0])
	}
	if rd.bad {
		return Record{}, 0, errorf(ErrCorrupt, "%v record truncated or malformed", r.Type)
	}
	return r, rd.off, nil
}

// DecodeRecords decodes a whole chunk payload holding want records.
func DecodeRecords(payload []byte, want int) ([]Record, error) {
	if want < 0 || want > len(payload) {
		return nil, errorf(ErrCorrupt, "chunk claims %d records in %d bytes", want, len(payload))
	}
	recs := make([]Record, 0, want)
	for off := 0; off < len(payload); {
		r, n, err := DecodeRecord(payload[off:])
		if err != nil {
			return nil, fmt.Errorf("record %d at offset %d: %w", len(recs), off, err)
		}
		recs = append(recs, r)
		off += n
	}
	if len(recs) != want {
		return nil, errorf(ErrCorrupt, "chunk holds %d records, header says %d", len(recs), want)
	}
	return recs, nil
}
