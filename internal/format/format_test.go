package format

import (
	"errors"
	"io/fs"
	"reflect"
	"syscall"
	"testing"
)

// sampleSuperblock is a valid layout used by tests and fuzz seeds.
func sampleSuperblock() Superblock {
	return Superblock{Version: Version, BlockSize: 4096, Seq: 7, UUID: [16]byte{1, 2, 3},
		TotalBlocks: 1000, JournalStart: 2, JournalBlocks: 100, CheckpointStart: [2]uint64{102, 202},
		CheckpointBlocks: 100, DataStart: 302, DataBlocks: 698, ActiveSlot: 1, Epoch: 9,
		CheckpointLen: 300, CheckpointCRC: 0xdeadbeef}
}

// TestSuperblockRoundTrip checks encode/decode symmetry and that a single
// flipped byte anywhere in the meaningful part is always detected.
func TestSuperblockRoundTrip(t *testing.T) {
	s := sampleSuperblock()
	buf := make([]byte, 4096)
	s.Encode(buf)
	got, err := DecodeSuperblock(buf)
	if err != nil || got != s {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for i := 0; i < SuperblockSize; i++ {
		b := append([]byte(nil), buf...)
		b[i] ^= 0x40
		if _, err := DecodeSuperblock(b); err == nil {
			t.Fatalf("flip at byte %d not detected", i)
		} else if !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("flip at %d: error %v does not match EINVAL", i, err)
		}
	}
}

// TestSuperblockForeign checks that foreign images are refused with a
// message naming what was found, and newer versions with ErrVersion.
func TestSuperblockForeign(t *testing.T) {
	zeros := make([]byte, 4096)
	_, err := DecodeSuperblock(zeros)
	if !errors.Is(err, ErrNotAiodio) || !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("zeros: %v", err)
	}
	if want := "not an aiodio volume: found zeros (not formatted)"; err.Error() != want {
		t.Fatalf("zeros: %q, want %q", err, want)
	}
	ext := make([]byte, 4096)
	ext[1080], ext[1081] = 0x53, 0xef
	if _, err := DecodeSuperblock(ext); err == nil || err.Error() != "not an aiodio volume: found an ext2/3/4 filesystem" {
		t.Fatalf("ext4: %v", err)
	}
	s := sampleSuperblock()
	s.Version = Version + 1
	buf := make([]byte, 4096)
	s.Encode(buf)
	if _, err := DecodeSuperblock(buf); !errors.Is(err, ErrVersion) {
		t.Fatalf("newer version: %v", err)
	}
	if _, err := DecodeSuperblock(buf[:100]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: %v", err)
	}
}

// TestSuperblockLayoutChecks checks that overlapping or out-of-range areas are refused.
func TestSuperblockLayoutChecks(t *testing.T) {
	for name, mut := range map[string]func(*Superblock){
		"blocksize":  func(s *Superblock) { s.BlockSize = 3000 },
		"overlap":    func(s *Superblock) { s.CheckpointStart[0] = 50 },
		"beyond":     func(s *Superblock) { s.DataBlocks = 1000 },
		"slot":       func(s *Superblock) { s.ActiveSlot = 2 },
		"cplen":      func(s *Superblock) { s.CheckpointLen = 1 << 40 },
		"nojournal":  func(s *Superblock) { s.JournalBlocks = 0 },
		"hugevolume": func(s *Superblock) { s.TotalBlocks = 1 << 62 },
	} {
		s := sampleSuperblock()
		mut(&s)
		buf := make([]byte, 512)
		s.Encode(buf)
		if _, err := DecodeSuperblock(buf); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func sampleRecords() []Record {
	return []Record{
		{Type: RecCreate, Parent: 1, Name: "a", Ino: 2, Mode: 0o644, Time: 12345},
		{Type: RecCreate, Parent: 1, Name: "d", Ino: 3, Mode: uint32(fs.ModeDir | 0o755), Time: -1},
		{Type: RecRemove, Parent: 1, Name: "a", Time: 5},
		{Type: RecRename, Parent: 1, Name: "x", Parent2: 3, Name2: "y", Time: 5},
		{Type: RecSetSize, Flags: FlagTruncate, Ino: 2, Size: 1 << 40, Time: 5},
		{Type: RecAlloc, Ino: 2, FileBlock: 10, DevBlock: 300, Count: 7},
		{Type: RecConvert, Ino: 2, FileBlock: 10, Count: 3, Size: 50000, Time: 9},
		{Type: RecPunch, Ino: 2, FileBlock: 11, Count: 1, Time: 9},
		{Type: RecUnwrite, Ino: 2, FileBlock: 12, Count: 1, Time: 9},
		{Type: RecSetAttr, Ino: 2, Mode: 0o600, Time: 9},
	}
}

// TestRecordsRoundTrip checks every record type survives encoding.
func TestRecordsRoundTrip(t *testing.T) {
	recs := sampleRecords()
	var p []byte
	for i := range recs {
		p = AppendRecord(p, &recs[i])
	}
	got, err := DecodeRecords(p, len(recs))
	if err != nil || !reflect.DeepEqual(got, recs) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, got, recs)
	}
	if _, err := DecodeRecords(p, len(recs)+1); err == nil {
		t.Fatal("wrong record count accepted")
	}
	if _, err := DecodeRecords(p[:len(p)-1], len(recs)); err == nil {
		t.Fatal("truncated payload accepted")
	}
}

// TestChunkRoundTrip checks chunk encoding and that any flipped byte is detected.
func TestChunkRoundTrip(t *testing.T) {
	recs := sampleRecords()
	var p []byte
	for i := range recs {
		p = AppendRecord(p, &recs[i])
	}
	buf := make([]byte, 8192)
	c := EncodeChunk(buf, 512, 3, 4, len(recs), p)
	h, err := DecodeChunkHeader(c, 512)
	if err != nil || h.Epoch != 3 || h.Seq != 4 || int(h.Blocks)*512 != len(c) {
		t.Fatalf("header %+v %v", h, err)
	}
	if got, err := ChunkPayload(h, c); err != nil || string(got) != string(p) {
		t.Fatalf("payload %v", err)
	}
	for i := 0; i < ChunkHeaderSize+len(p); i++ {
		b := append([]byte(nil), c...)
		b[i] ^= 1
		h, err := DecodeChunkHeader(b, 512)
		if err == nil {
			_, err = ChunkPayload(h, b)
		}
		if err == nil {
			t.Fatalf("flip at %d not detected", i)
		}
	}
}

func sampleCheckpoint() []byte {
	inodes := []Inode{
		{Ino: 1, Mode: uint32(fs.ModeDir | 0o755), Nlink: 3, Parent: 1, Entries: []Dirent{{"f", 2}, {"d", 5}}},
		{Ino: 2, Mode: 0o644, Size: 40960, Nlink: 1, Mtime: 1, Ctime: 2,
			Extents: []Extent{{0, 500, 4, StateWritten}, {4, 100, 2, StateUnwritten}, {100, 900, 1, StateWritten}}},
		{Ino: 5, Mode: uint32(fs.ModeDir | 0o700), Nlink: 2, Parent: 1},
	}
	var p []byte
	var prev uint64
	for i := range inodes {
		p = AppendInode(p, prev, &inodes[i])
		prev = inodes[i].Ino
	}
	b := make([]byte, CheckpointHeaderSize+len(p))
	EncodeCheckpointHeader(b, CheckpointHeader{Epoch: 4, NextIno: 6, Inodes: uint64(len(inodes))}, p)
	copy(b[CheckpointHeaderSize:], p)
	return b
}

// TestCheckpointRoundTrip checks checkpoint encoding and flipped-byte detection.
func TestCheckpointRoundTrip(t *testing.T) {
	b := sampleCheckpoint()
	c, err := DecodeCheckpoint(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Inodes) != 3 || c.NextIno != 6 || c.Inodes[1].Extents[1] != (Extent{4, 100, 2, StateUnwritten}) ||
		c.Inodes[0].Entries[1] != (Dirent{"d", 5}) || c.Inodes[1].Size != 40960 {
		t.Fatalf("decoded %+v", c)
	}
	for i := range b {
		bb := append([]byte(nil), b...)
		bb[i] ^= 0x10
		if _, err := DecodeCheckpoint(bb); err == nil {
			t.Fatalf("flip at %d not detected", i)
		}
	}
}
